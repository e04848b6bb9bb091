package loadtest

import (
	"context"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"podium/internal/testenv"
)

// Lean classrooms against a real podium: every one receives the teacher's
// video and sound, the delay fingerprints match (so the packets were
// decrypted whole), and with one video packet in 25 dropped before the
// classroom sees it, its NACKs bring the packets back by RTX: loss after
// NACK stays near zero although hundreds were dropped.
func TestLeanClassroomsAgainstPodium(t *testing.T) {
	testenv.RequireBinary(t, "ffmpeg")
	srv := testenv.StartPodium(t)
	loss := &leanLoss{every: 25}
	rep := runLean(t, Config{Server: srv.URL, Secret: srv.Secret, Subscribe: "ws", leanLoss: loss})
	if loss.dropped.Load() < 50 {
		t.Fatalf("only %d video packets dropped: the test's line lost too little to test NACK", loss.dropped.Load())
	}
	if rep.VideoLossPct.Max > 0.5 {
		t.Fatalf("video loss after NACK up to %.2f %% with 4 %% dropped: NACK/RTX do not repair through the lean path", rep.VideoLossPct.Max)
	}
	if rep.VideoDuplicates.Max > float64(loss.dropped.Load()) {
		t.Fatalf("%.0f duplicate video packets for %d dropped: NACKs for packets already here", rep.VideoDuplicates.Max, loss.dropped.Load())
	}
}

// Lean classrooms over Podium's WHEP: the classroom offers, nominates the
// ICE pair itself and is the DTLS client it asked to be.
func TestLeanClassroomsOverWHEP(t *testing.T) {
	testenv.RequireBinary(t, "ffmpeg")
	srv := testenv.StartPodium(t)
	runLean(t, Config{Server: srv.URL, Secret: srv.Secret, Subscribe: "whep"})
}

// runLean runs three lean classrooms of one lesson for 8 s and checks
// what every such run must show.
func runLean(t *testing.T, c Config) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c.Lessons, c.Classrooms, c.JoinRate, c.Duration = 1, 3, 10, 8*time.Second
	c.Codec, c.Publish, c.Receiver, c.LoopbackOnly = "vp8", "ws", ReceiverLean, true
	rep, err := Run(ctx, c, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	rep.WriteTable(&table)
	t.Log("\n" + table.String())
	if rep.Classrooms != 3 || rep.Failed != 0 || rep.Receiving != 3 {
		t.Fatalf("classrooms %d failed %d receiving %d (errors %v), want 3, 0, 3", rep.Classrooms, rep.Failed, rep.Receiving, rep.Errors)
	}
	if rep.VideoKbps.N != 3 || rep.VideoKbps.P50 <= 0 || rep.AudioKbps.N != 3 || rep.AudioKbps.P50 <= 0 {
		t.Fatalf("bitrates not measured: video %+v audio %+v", rep.VideoKbps, rep.AudioKbps)
	}
	if rep.DelayMs.N == 0 || rep.DelayHalfMs.N == 0 || rep.DelayHalfMs.N >= rep.DelayMs.N {
		t.Fatalf("delay measured for %d frames, %d of them in the second half: want some, and fewer than all", rep.DelayMs.N, rep.DelayHalfMs.N)
	}
	if rep.Tool.SteadyCPU <= 0 || rep.Tool.USPerPacket <= 0 {
		t.Fatalf("the tool's own cost not measured: %+v", rep.Tool)
	}
	if rep.Transports["udp"] != 3 {
		t.Fatalf("transports %v, want udp for 3", rep.Transports)
	}
	known := 0
	for _, l := range []string{"q", "h", "f"} {
		known += rep.SettledLayer[l]
	}
	if known != 3 {
		t.Fatalf("settled layers %v: want a known layer for each classroom", rep.SettledLayer)
	}
	return rep
}

func TestLeanConfigRefusesWhatItCannotDo(t *testing.T) {
	base := Config{Server: "http://127.0.0.1:1", Secret: "0123456789abcdef0123", Lessons: 1, Classrooms: 1,
		JoinRate: 1, Duration: time.Second, Codec: "vp8", Publish: "ws", Subscribe: "ws", Receiver: ReceiverLean}
	if err := base.validate(); err != nil {
		t.Fatalf("plain lean config refused: %v", err)
	}
	link, _ := ParseLinkProfile("1mbit,3%")
	for name, mutate := range map[string]func(*Config){
		"link":      func(c *Config) { c.Link = link },
		"reconnect": func(c *Config) { c.Reconnect = true },
		"tcp":       func(c *Config) { c.Transport = TransportTCP },
		"receiver":  func(c *Config) { c.Receiver = "chromium" },
	} {
		c := base
		mutate(&c)
		if c.validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestNackLogAsksForWhatIsMissing(t *testing.T) {
	var n nackLog
	if got := n.missing(); got != nil {
		t.Fatalf("nothing received, asked for %v", got)
	}
	for _, seq := range []uint16{65530, 65531, 65533, 65534, 1, 2} { // across the wrap
		n.add(seq)
	}
	want := []uint16{65532, 65535, 0}
	if got := n.missing(); !slices.Equal(got, want) {
		t.Fatalf("missing %v, want %v", got, want)
	}
	n.add(65535) // came by RTX
	want = []uint16{65532, 0}
	if got := n.missing(); !slices.Equal(got, want) {
		t.Fatalf("after a repair: missing %v, want %v", got, want)
	}
	for range nackTries {
		n.missing()
	}
	if got := n.missing(); got != nil {
		t.Fatalf("asked again after %d tries: %v", nackTries, got)
	}
	n.add(1000) // a jump past the window: the old gaps are forgotten
	if got := n.missing(); len(got) != 511 || got[0] != 1000-511 || got[510] != 999 {
		t.Fatalf("after a jump: %d missing from %v", len(got), got[:min(3, len(got))])
	}
	n.add(65000) // far older than the window: ignored
	if n.max != 1000 {
		t.Fatalf("an old packet moved the window to %d", n.max)
	}
}

// A Podium offer (as `podium serve` sends it to a classroom) is read
// whole, and the answer receives both sections, BUNDLEd, as the DTLS
// client, with transport-wide congestion control and NACK.
func TestLeanAnswersAPodiumOffer(t *testing.T) {
	d, err := parseRemoteDesc(podiumOffer)
	if err != nil {
		t.Fatal(err)
	}
	if d.ufrag != "ZfKNBvRDboZeDVMh" || d.pwd != "gzoROlVJCwWRvzmNKKPWQPbSqGwcqJtC" || !strings.HasPrefix(d.fingerprint, "36:6E:D4") {
		t.Fatalf("credentials %q %q %q", d.ufrag, d.pwd, d.fingerprint)
	}
	if len(d.media) != 2 || d.media[0].kind != "video" || d.media[1].kind != "audio" {
		t.Fatalf("media %+v", d.media)
	}
	v, a := d.media[0], d.media[1]
	if v.twccID != 2 || v.rtx[2799125612] != 1292614970 || v.ssrcs[1292614970] != "teacher-1e913816ea89" {
		t.Fatalf("video: twcc %d rtx %v ssrcs %v", v.twccID, v.rtx, v.ssrcs)
	}
	if len(v.formats) != 4 || v.formats[0].codec != "vp8" || v.formats[1].fmtp != "apt=96" {
		t.Fatalf("video formats %+v", v.formats)
	}
	if len(a.formats) != 2 || a.formats[1].codec != "red" || a.ssrcs[253395539] == "" {
		t.Fatalf("audio %+v", a)
	}
	if len(d.candidates) != 1 || d.candidates[0].String() != "192.0.2.2:7882" {
		t.Fatalf("candidates %v", d.candidates)
	}
	l := localDesc{ufrag: "abcd", pwd: "0123456789012345678901", fingerprint: "AA:BB", addr: netip4(t, "127.0.0.1:5000")}
	ans := l.answer(d)
	for _, line := range []string{
		"a=group:BUNDLE 0 1", "m=video 5000 UDP/TLS/RTP/SAVPF 96 97 106 107", "m=audio 5000 UDP/TLS/RTP/SAVPF 111 63",
		"a=setup:active", "a=recvonly", "a=rtcp-fb:96 nack", "a=rtcp-fb:96 transport-cc", "a=fmtp:97 apt=96",
		"a=extmap:2 " + twccURI, "a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host", "a=ice-ufrag:abcd",
	} {
		if !strings.Contains(ans, line+"\r\n") {
			t.Errorf("answer lacks %q:\n%s", line, ans)
		}
	}
	if _, err := parseRemoteDesc(strings.Replace(podiumOffer, "a=fingerprint:sha-256", "a=fingerprint:sha-1", 1)); err == nil {
		t.Error("an offer without a sha-256 fingerprint was taken")
	}
	if _, err := parseRemoteDesc("v=0\r\nnonsense"); err == nil {
		t.Error("a broken offer was taken")
	}
}

func netip4(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// podiumOffer is an offer `podium serve` sent a classroom (trimmed of
// the H.264 profile 42001f it also offers).
var podiumOffer = strings.ReplaceAll(`v=0
o=- 1514951286661105046 1795696757 IN IP4 0.0.0.0
s=-
t=0 0
a=msid-semantic:WMS *
a=fingerprint:sha-256 36:6E:D4:F9:B1:6C:A4:2B:EF:2A:CF:79:82:31:27:0E:EE:EB:25:0C:E7:A9:84:1C:C8:C8:88:71:1B:75:4F:20
a=extmap-allow-mixed
a=cryptex
a=group:BUNDLE 0 1
m=video 9 UDP/TLS/RTP/SAVPF 96 97 106 107
c=IN IP4 0.0.0.0
a=setup:actpass
a=mid:0
a=ice-ufrag:ZfKNBvRDboZeDVMh
a=ice-pwd:gzoROlVJCwWRvzmNKKPWQPbSqGwcqJtC
a=rtcp-mux
a=rtcp-rsize
a=rtpmap:96 VP8/90000
a=rtcp-fb:96 goog-remb
a=rtcp-fb:96 ccm fir
a=rtcp-fb:96 nack
a=rtcp-fb:96 nack pli
a=rtcp-fb:96 transport-cc
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=rtcp-fb:97 nack
a=rtcp-fb:97 nack pli
a=rtcp-fb:97 transport-cc
a=rtpmap:106 H264/90000
a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f
a=rtcp-fb:106 goog-remb
a=rtcp-fb:106 ccm fir
a=rtcp-fb:106 nack
a=rtcp-fb:106 nack pli
a=rtcp-fb:106 transport-cc
a=rtpmap:107 rtx/90000
a=fmtp:107 apt=106
a=rtcp-fb:107 nack
a=rtcp-fb:107 nack pli
a=rtcp-fb:107 transport-cc
a=extmap:2 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id
a=extmap:5 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id
a=ssrc-group:FID 1292614970 2799125612
a=ssrc:1292614970 cname:teacher-1e913816ea89
a=ssrc:1292614970 msid:teacher-1e913816ea89 teacher-1e913816ea89-camera
a=ssrc:1292614970 mslabel:teacher-1e913816ea89
a=ssrc:1292614970 label:teacher-1e913816ea89-camera
a=ssrc:2799125612 cname:teacher-1e913816ea89
a=ssrc:2799125612 msid:teacher-1e913816ea89 teacher-1e913816ea89-camera
a=ssrc:2799125612 mslabel:teacher-1e913816ea89
a=ssrc:2799125612 label:teacher-1e913816ea89-camera
a=msid:teacher-1e913816ea89 teacher-1e913816ea89-camera
a=sendrecv
a=candidate:3332321798 1 tcp 1671430143 192.0.2.2 7881 typ host tcptype passive ufrag ZfKNBvRDboZeDVMh generation 0
a=candidate:3332321798 2 tcp 1671430143 192.0.2.2 7881 typ host tcptype passive ufrag ZfKNBvRDboZeDVMh generation 0
a=candidate:2070692838 1 udp 2130706431 192.0.2.2 7882 typ host ufrag ZfKNBvRDboZeDVMh generation 0
a=candidate:2070692838 2 udp 2130706431 192.0.2.2 7882 typ host ufrag ZfKNBvRDboZeDVMh generation 0
a=end-of-candidates
m=audio 9 UDP/TLS/RTP/SAVPF 111 63
c=IN IP4 0.0.0.0
a=setup:actpass
a=mid:1
a=ice-ufrag:ZfKNBvRDboZeDVMh
a=ice-pwd:gzoROlVJCwWRvzmNKKPWQPbSqGwcqJtC
a=rtcp-mux
a=rtcp-rsize
a=rtpmap:111 opus/48000/2
a=fmtp:111 minptime=10;useinbandfec=1
a=rtcp-fb:111 transport-cc
a=rtpmap:63 red/48000/2
a=fmtp:63 111/111
a=rtcp-fb:63 transport-cc
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=extmap:2 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=ssrc:253395539 cname:teacher-1e913816ea89
a=ssrc:253395539 msid:teacher-1e913816ea89 teacher-1e913816ea89-microphone
a=ssrc:253395539 mslabel:teacher-1e913816ea89
a=ssrc:253395539 label:teacher-1e913816ea89-microphone
a=msid:teacher-1e913816ea89 teacher-1e913816ea89-microphone
a=sendrecv
`, "\n", "\r\n")
