package clients

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// waitFor is how long a page gets to show what a user would wait for.
const waitFor = 25 * time.Second

// inbound is one received RTP stream as the page's stats hook reports it
// (from RTCPeerConnection.getStats, inbound-rtp).
type inbound struct {
	Kind                 string  `json:"kind"`
	TrackID              string  `json:"trackId"`
	ParticipantID        string  `json:"participantId"`
	Role                 string  `json:"role"`
	Source               string  `json:"source"`
	BytesReceived        float64 `json:"bytesReceived"`
	FramesDecoded        float64 `json:"framesDecoded"`
	FrameWidth           float64 `json:"frameWidth"`
	TotalSamplesReceived float64 `json:"totalSamplesReceived"`
}

type pageStats struct {
	Inbound []inbound `json:"inbound"`
	State   string    `json:"state"`
}

// page is one browser tab showing a Podium page.
type page struct {
	name string
	ctx  context.Context
}

func openPage(t *testing.T, browser context.Context, name, url string) *page {
	t.Helper()
	tab, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	if err := chromedp.Do(tab, chromedp.Navigate(url)); err != nil {
		t.Fatalf("%s: open %s: %v", name, url, err)
	}
	return &page{name: name, ctx: tab}
}

// eval runs a JS expression (awaiting a promise) and decodes its JSON value.
func (p *page) eval(expr string, out any) error {
	return p.evalWithin(10*time.Second, expr, out)
}

// evalWithin evaluates expr, awaiting its promise for at most d.
func (p *page) evalWithin(d time.Duration, expr string, out any) error {
	ctx, cancel := context.WithTimeout(p.ctx, d)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

// do runs a page action to its end. Actions such as going live wait for
// the camera, an offer and an answer: on a loaded machine that outlasts a
// plain evaluation's 10 s, so an action gets as long as any wait.
func (p *page) do(t *testing.T, expr string) {
	t.Helper()
	if err := p.evalWithin(waitFor, "Promise.resolve("+expr+").then(() => true)", nil); err != nil {
		t.Fatalf("%s: %s: %v", p.name, expr, err)
	}
}

// waitUntil polls cond until it returns true or the deadline passes; the
// failure message includes what was last seen.
func (p *page) waitUntil(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	last := ""
	for time.Now().Before(deadline) {
		ok, seen := cond()
		if ok {
			return
		}
		last = seen
		time.Sleep(250 * time.Millisecond)
	}
	var history []string
	_ = p.eval(`window.podium && window.podium.session ? window.podium.session.history : []`, &history)
	t.Fatalf("%s: waited %v for %s; last seen: %s\nstate history:\n  %s", p.name, waitFor, what, last, strings.Join(history, "\n  "))
}

func (p *page) waitState(t *testing.T, want string) {
	t.Helper()
	p.waitUntil(t, "state "+want, func() (bool, string) {
		var s string
		if err := p.eval(`window.podium ? window.podium.state : ''`, &s); err != nil {
			return false, err.Error()
		}
		return s == want, s
	})
}

func (p *page) waitVisible(t *testing.T, sel string) {
	t.Helper()
	p.waitUntil(t, sel+" visible", func() (bool, string) {
		var vis bool
		err := p.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden' })()`, sel), &vis)
		if err != nil {
			return false, err.Error()
		}
		return vis, fmt.Sprint(vis)
	})
}

func (p *page) stats(t *testing.T) pageStats {
	var s pageStats
	if err := p.eval(`window.podium.stats()`, &s); err != nil {
		t.Logf("%s: stats: %v", p.name, err)
	}
	return s
}

func find(s pageStats, match func(inbound) bool) (inbound, bool) {
	for _, i := range s.Inbound {
		if match(i) {
			return i, true
		}
	}
	return inbound{}, false
}

// waitVideo waits until a received video stream matching match decodes
// frames, and keeps decoding: framesDecoded grows by 10 more after the
// first frames, so a frozen picture fails.
func (p *page) waitVideo(t *testing.T, what string, match func(inbound) bool) {
	t.Helper()
	var first float64
	p.waitUntil(t, what+" decoding frames", func() (bool, string) {
		i, ok := find(p.stats(t), func(i inbound) bool { return i.Kind == "video" && match(i) })
		if !ok {
			return false, "no such inbound video"
		}
		if first == 0 && i.FramesDecoded > 0 {
			first = i.FramesDecoded
		}
		return first > 0 && i.FramesDecoded >= first+10, fmt.Sprintf("framesDecoded=%v (first %v) width=%v", i.FramesDecoded, first, i.FrameWidth)
	})
}

// waitAudio waits until received audio from a matching stream keeps
// arriving (bytes) and keeps being played out (samples).
func (p *page) waitAudio(t *testing.T, what string, match func(inbound) bool) {
	t.Helper()
	var firstBytes, firstSamples float64
	p.waitUntil(t, what+" audio arriving", func() (bool, string) {
		i, ok := find(p.stats(t), func(i inbound) bool { return i.Kind == "audio" && match(i) })
		if !ok {
			return false, "no such inbound audio"
		}
		if firstBytes == 0 && i.BytesReceived > 0 && i.TotalSamplesReceived > 0 {
			firstBytes, firstSamples = i.BytesReceived, i.TotalSamplesReceived
		}
		ok = firstBytes > 0 && i.BytesReceived > firstBytes+1000 && i.TotalSamplesReceived > firstSamples+48000
		return ok, fmt.Sprintf("bytes=%v samples=%v (first %v/%v)", i.BytesReceived, i.TotalSamplesReceived, firstBytes, firstSamples)
	})
}

func (p *page) screenshot(t *testing.T, path string) {
	t.Helper()
	// A common laptop / smart-board size.
	if err := chromedp.Do(p.ctx, chromedp.EmulateViewport(1440, 900), chromedp.Sleep(time.Second)); err != nil {
		t.Fatalf("%s: viewport: %v", p.name, err)
	}
	png, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("%s: screenshot: %v", p.name, err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

func fromTeacher(source string) func(inbound) bool {
	return func(i inbound) bool { return i.Role == "teacher" && i.Source == source }
}

// runLesson plays a whole lesson in real browser pages against a running
// Podium: a teacher goes live with camera, microphone and screen; two
// classrooms see and hear the teacher; one goes on stage and the other
// sees it; a raised hand reaches the teacher; a dropped link and a server
// restart heal by themselves; ending the lesson ends every page.
func runLesson(t *testing.T, browser context.Context, baseURL string, token func(role, name string) string, restartServer func()) {
	// A big screen switched on before the teacher arrives waits, and joins
	// by itself once the lesson starts.
	hill := openPage(t, browser, "Hill School", baseURL+"/classroom#token="+token("classroom", "Hill School"))
	hill.waitState(t, "waiting")

	teacher := openPage(t, browser, "teacher", baseURL+"/teacher#token="+token("teacher", "Ms Rivera"))
	teacher.waitState(t, "ready")
	teacher.do(t, `window.podium.goLive()`)
	teacher.do(t, `window.podium.shareScreen({canvasFallback: true})`)
	teacher.waitState(t, "live")
	var screenSource string
	_ = teacher.eval(`window.podium.screenSource`, &screenSource)
	t.Logf("teacher screen share comes from %s", screenSource)

	river := openPage(t, browser, "River School", baseURL+"/classroom#token="+token("classroom", "River School"))

	t.Run("classrooms see and hear the teacher", func(t *testing.T) {
		for _, c := range []*page{hill, river} {
			c.waitState(t, "live")
			c.waitVideo(t, "teacher camera", fromTeacher("camera"))
			c.waitVideo(t, "teacher screen", fromTeacher("screen"))
			c.waitAudio(t, "teacher microphone", fromTeacher("microphone"))
			// The teacher's voice comes as RED (the server adds copies of
			// earlier packets by the classroom's loss; none on loopback),
			// and the page decodes it: sound, not concealment.
			var a struct{ Samples, Concealed, Level float64 }
			c.waitUntil(t, "the teacher's voice decoded", func() (bool, string) {
				_ = c.eval(`(async () => {
					const st = await window.podium.session.sub.getStats();
					let out = { samples: 0, concealed: 0, level: 0 };
					st.forEach((r) => { if (r.type === 'inbound-rtp' && r.kind === 'audio' && r.totalSamplesReceived > out.samples)
						out = { samples: r.totalSamplesReceived, concealed: r.concealedSamples, level: r.audioLevel || 0 }; });
					return out;
				})()`, &a)
				return a.Samples > 48000 && a.Concealed < a.Samples/4, fmt.Sprintf("%+v", a)
			})
			t.Logf("%s: %.0f samples of the teacher's voice, %.0f concealed, level %.3f", c.name, a.Samples, a.Concealed, a.Level)
			// Chromium opens the node's sender reports (sealed and sent by
			// the classroom's egress itself, sfu.egress.sendRTCP): every
			// stream it receives has them (remote-outbound-rtp), the lip
			// sync's clock mapping.
			var r struct{ Streams, Reported float64 }
			c.waitUntil(t, "sender reports on every stream", func() (bool, string) {
				_ = c.eval(`(async () => {
					const st = await window.podium.session.sub.getStats();
					const out = { streams: 0, reported: 0 };
					st.forEach((s) => {
						if (s.type !== 'inbound-rtp') return;
						out.streams++;
						const ro = s.remoteId && st.get(s.remoteId);
						if (ro && ro.reportsSent >= 2) out.reported++;
					});
					return out;
				})()`, &r)
				return r.Streams >= 3 && r.Reported == r.Streams, fmt.Sprintf("%+v", r)
			})
			c.waitVisible(t, "#pip") // camera as picture-in-picture beside the screen
			c.waitUntil(t, "network badge graded", func() (bool, string) {
				var level string
				_ = c.eval(`document.getElementById('netbars').dataset.level || ''`, &level)
				return level != "", level
			})
		}
	})

	var hillID, riverID string
	if err := hill.eval(`window.podium.session.self.id`, &hillID); err != nil {
		t.Fatal(err)
	}
	if err := river.eval(`window.podium.session.self.id`, &riverID); err != nil {
		t.Fatal(err)
	}
	tile := func(id string) string { return fmt.Sprintf(`.tile[data-participant=%q]`, id) }

	t.Run("teacher sees every classroom", func(t *testing.T) {
		teacher.waitVisible(t, tile(hillID))
		teacher.waitVisible(t, tile(riverID))
		teacher.waitUntil(t, "classroom link quality shown", func() (bool, string) {
			var level string
			_ = teacher.eval(fmt.Sprintf(`document.querySelector('%s .bars').dataset.level || ''`, tile(hillID)), &level)
			return level != "", level
		})
		teacher.waitVideo(t, "Hill School camera", func(i inbound) bool { return i.ParticipantID == hillID })
		teacher.waitAudio(t, "Hill School microphone", func(i inbound) bool { return i.ParticipantID == hillID })
	})

	t.Run("classroom on stage reaches the other classroom", func(t *testing.T) {
		if err := chromedp.Do(teacher.ctx, chromedp.Click(chromedp.CSS(tile(hillID)+" .stage-btn"))); err != nil {
			t.Fatal(err)
		}
		teacher.waitVisible(t, tile(hillID)+".onstage")
		river.waitVisible(t, "#stage")
		river.waitVideo(t, "Hill School on stage", func(i inbound) bool { return i.ParticipantID == hillID })
	})

	t.Run("raised hand reaches the teacher", func(t *testing.T) {
		if err := chromedp.Do(river.ctx, chromedp.Click(chromedp.ID("hand"))); err != nil {
			t.Fatal(err)
		}
		teacher.waitVisible(t, tile(riverID)+" .hand")
	})

	// The classroom's picture (1920x1080, a smart board) is
	// TestClassroomBigScreen's; the teacher's, with twenty classrooms,
	// TestRosterTwentyClassrooms's.

	t.Run("classroom reconnects by itself after its link drops", func(t *testing.T) {
		river.do(t, `window.podium.dropLink()`)
		river.waitState(t, "reconnecting")
		river.waitState(t, "live")
		river.waitVideo(t, "teacher camera after reconnect", fromTeacher("camera"))
	})

	t.Run("every page rejoins by itself after the server restarts", func(t *testing.T) {
		restartServer()
		teacher.waitState(t, "live")
		for _, c := range []*page{hill, river} {
			c.waitState(t, "live")
			c.waitVideo(t, "teacher camera after restart", fromTeacher("camera"))
			c.waitVideo(t, "teacher screen after restart", fromTeacher("screen"))
		}
	})

	t.Run("ending the lesson ends every page", func(t *testing.T) {
		// Two clicks: the first only arms the button, so a stray click
		// cannot end a lesson for every classroom.
		if err := chromedp.Do(teacher.ctx, chromedp.Click(chromedp.ID("end"))); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(teacher.ctx, chromedp.Click(chromedp.ID("end"))); err != nil {
			t.Fatal(err)
		}
		for _, p := range []*page{teacher, hill, river} {
			p.waitState(t, "ended")
			p.waitVisible(t, "#overlay")
			var text string
			_ = p.eval(`document.getElementById('overlay-title').textContent`, &text)
			if !strings.Contains(text, "ended") {
				t.Errorf("%s: overlay says %q", p.name, text)
			}
		}
	})
}
