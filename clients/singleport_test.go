package clients

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"podium/internal/testenv"
)

// receivePath is what a classroom page's subscriber connection uses, from
// its getStats: the selected pair's local candidate and the remote port,
// and the teacher's camera as it is decoded.
type receivePath struct {
	LocalType     string  `json:"localType"`
	LocalProtocol string  `json:"localProtocol"`
	RelayProtocol string  `json:"relayProtocol"`
	LocalURL      string  `json:"localURL"` // the TURN URL of a relay candidate
	RemotePort    float64 `json:"remotePort"`
	FrameWidth    float64 `json:"frameWidth"`
	FrameHeight   float64 `json:"frameHeight"`
	Bitrate       float64 `json:"availableIncomingBitrate"`
}

func (r receivePath) String() string {
	return fmt.Sprintf("%s/%s (relay %q via %q) to port %.0f, %.0fx%.0f", r.LocalType, r.LocalProtocol, r.RelayProtocol, r.LocalURL, r.RemotePort, r.FrameWidth, r.FrameHeight)
}

func (p *page) receivePath(t *testing.T) receivePath {
	var r receivePath
	if err := p.eval(`(async () => {
		const st = await window.podium.session.sub.getStats();
		const out = {};
		let pair;
		st.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = st.get(s.selectedCandidatePairId); });
		if (pair) {
			const l = st.get(pair.localCandidateId), r = st.get(pair.remoteCandidateId);
			Object.assign(out, { localType: l.candidateType, localProtocol: l.protocol, relayProtocol: l.relayProtocol || '', localURL: l.url || '',
				remotePort: r.port, availableIncomingBitrate: pair.availableIncomingBitrate || 0 });
		}
		st.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video' && (s.frameWidth || 0) > (out.frameWidth || 0))
			Object.assign(out, { frameWidth: s.frameWidth, frameHeight: s.frameHeight }); });
		return out;
	})()`, &r); err != nil {
		t.Logf("%s: receive path: %v", p.name, err)
	}
	return r
}

// tcpRelayOnly makes every RTCPeerConnection of a page use the relay, and
// only TURN URLs over TCP: the page cannot use UDP to reach the node, as
// behind a firewall that lets only TCP out. Chromium's own switch for it
// (--force-webrtc-ip-handling-policy=disable_non_proxied_udp) did not
// take hold here: the classroom still chose a UDP host pair.
const tcpRelayOnly = `(() => {
	const Native = window.RTCPeerConnection;
	const tcpOnly = (servers) => (servers || [])
		.map((s) => ({ ...s, urls: [].concat(s.urls).filter((u) => /^turns?:.*transport=tcp/.test(u)) }))
		.filter((s) => s.urls.length > 0);
	window.RTCPeerConnection = function (cfg) {
		return new Native({ ...(cfg || {}), iceServers: tcpOnly(cfg && cfg.iceServers), iceTransportPolicy: 'relay' });
	};
	window.RTCPeerConnection.prototype = Native.prototype;
})()`

// openPageWithScript is openPage with script run in the page before its
// own scripts.
func openPageWithScript(t *testing.T, browser context.Context, name, url, script string) *page {
	t.Helper()
	tab, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	if _, err := chromedp.Call(tab, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: script}); err != nil {
		t.Fatalf("%s: add script: %v", name, err)
	}
	if err := chromedp.Do(tab, chromedp.Navigate(url)); err != nil {
		t.Fatalf("%s: open %s: %v", name, url, err)
	}
	return &page{name: name, ctx: tab}
}

// TestClassroomWithoutUDPThroughOnePort: a classroom that may not use UDP
// (only the relay, only TURN over TCP) joins a `--single-port` node through
// its HTTP port alone (the page, the websocket, and media relayed by TURN
// over TCP on that port) and plays the teacher's video and audio.
func TestClassroomWithoutUDPThroughOnePort(t *testing.T) {
	node := testenv.StartPodium(t, "--single-port")
	u, err := url.Parse(node.URL)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	token := func(role, name string) string { return node.Token("one-port-1", role, name) }

	teacherBrowser := testenv.StartChromium(t)
	teacher := openPage(t, teacherBrowser, "teacher", node.URL+"/teacher#token="+token("teacher", "Ms Rivera"))
	teacher.waitState(t, "ready")
	teacher.do(t, `window.podium.goLive()`)
	teacher.waitState(t, "live")

	schoolBrowser := testenv.StartChromium(t, chromedp.Flag("force-webrtc-ip-handling-policy", "disable_non_proxied_udp"))
	hill := openPageWithScript(t, schoolBrowser, "Hill School", node.URL+"/classroom#token="+token("classroom", "Hill School"), tcpRelayOnly)
	hill.waitState(t, "live")
	hill.waitVideo(t, "teacher camera", fromTeacher("camera"))
	hill.waitAudio(t, "teacher microphone", fromTeacher("microphone"))

	var path receivePath
	hill.waitUntil(t, "a selected pair", func() (bool, string) {
		path = hill.receivePath(t)
		return path.LocalType != "", path.String()
	})
	iceTCP := path.LocalType != "relay" && path.LocalProtocol == "tcp" && int(path.RemotePort) == port
	relayed := path.LocalType == "relay" && (path.RelayProtocol == "tcp" || path.RelayProtocol == "tls") &&
		strings.Contains(path.LocalURL, fmt.Sprintf(":%d?", port))
	if !iceTCP && !relayed {
		t.Errorf("the classroom receives over %s, want ICE-TCP or TURN over TCP through port %d alone", path, port)
	}
	t.Logf("classroom without UDP: %s", path)

	// What the classroom settles at, for the 180p finding.
	time.Sleep(20 * time.Second)
	path = hill.receivePath(t)
	t.Logf("after 20 s: %s, available incoming bitrate %.0f bit/s", path, path.Bitrate)
	var teacherCam struct{ W, H float64 }
	_ = teacher.eval(`(async () => { let o = {w: 0, h: 0}; const st = await window.podium.session.pub.getStats();
		st.forEach((s) => { if (s.type === 'outbound-rtp' && s.kind === 'video' && (s.frameWidth || 0) > o.w) o = {w: s.frameWidth, h: s.frameHeight}; });
		return o; })()`, &teacherCam)
	t.Logf("teacher sends at most %.0fx%.0f", teacherCam.W, teacherCam.H)
}
