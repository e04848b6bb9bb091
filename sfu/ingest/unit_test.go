package ingest

import (
	"encoding/binary"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"podium/sfu"
)

func TestBackoff(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 10 * time.Second}
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {4, 8 * time.Second}, {5, 10 * time.Second}, {50, 10 * time.Second}} {
		if got := b.next(tc.failures); got != tc.want {
			t.Errorf("next(%d) = %v, want %v", tc.failures, got, tc.want)
		}
	}
	if d := (Backoff{}).withDefaults(); d.Min != time.Second || d.Max != 30*time.Second {
		t.Errorf("defaults = %+v", d)
	}
}

func TestTimelineContinuousAcrossSessions(t *testing.T) {
	epoch := time.Unix(1000, 0)
	tl := newTimeline(90000, epoch)
	now := epoch.Add(2 * time.Second)
	first := tl.out(123456, now)
	if first != 180000 {
		t.Fatalf("first output %d, want wall-clock anchor 180000", first)
	}
	if got := tl.out(123456+3600, now); got != first+3600 {
		t.Fatalf("media time not followed: %d", got)
	}
	// The camera restarts with a random timestamp, earlier wall time (clock
	// skew): output still moves forward.
	tl.restart()
	got := tl.out(5, epoch.Add(time.Second))
	if int32(got-(first+3600)) <= 0 {
		t.Fatalf("output went back across a restart: %d after %d", got, first+3600)
	}
	// A wild jump inside a session re-anchors instead of leaping hours ahead.
	now = epoch.Add(3 * time.Second)
	a := tl.out(1000, now)
	b := tl.out(1000+90000*3600, now.Add(40*time.Millisecond))
	if d := int32(b - a); d <= 0 || d > 90000 {
		t.Fatalf("jump not contained: %d", d)
	}
	if tl.jumps != 1 {
		t.Fatalf("jumps = %d", tl.jumps)
	}
	// Wrap-around of the 32-bit input clock is ordinary media time.
	tl2 := newTimeline(90000, epoch)
	x := tl2.out(0xffffff00, now)
	if y := tl2.out(0x00000100, now); y-x != 0x200 {
		t.Fatalf("wrap: %d", y-x)
	}
}

func TestRedaction(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"rtsp://admin:p%40ss@10.0.0.5:554/Streaming/101", "rtsp://redacted:redacted@10.0.0.5:554/Streaming/101"},
		{"rtsp://cam.local/live", "rtsp://cam.local/live"},
		{"rtsps://user@cam/x", "rtsps://redacted:redacted@cam/x"},
	} {
		c := SourceConfig{URL: tc.in}
		u, err := c.normalize()
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if got := redactURL(u); got != tc.want {
			t.Errorf("redact(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	u, _ := url.Parse("rtsp://admin:hunter22@cam/x")
	sc := newScrubber(u)
	if got := sc.scrub("dial rtsp://admin:hunter22@cam/x: refused (pw hunter22)"); strings.Contains(got, "hunter22") {
		t.Fatalf("scrub left the password: %s", got)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, c := range []SourceConfig{
		{URL: ""},
		{URL: "http://cam/x"},
		{URL: "rtsp:///nohost"},
		{URL: "rtsp://cam/x", Kind: "tv"},
		{URL: "rtsp://cam/x", Transport: "quic"},
		{URL: "rtsp://cam/x", Name: strings.Repeat("n", 101)},
		{URL: "rtsp://cam/x", Name: "bad\nname"},
	} {
		if _, err := c.normalize(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	c := SourceConfig{URL: "rtsp://cam.example/x"}
	if _, err := c.normalize(); err != nil || c.Kind != KindCamera || c.Transport != TransportAuto || c.Name != "cam.example" {
		t.Fatalf("defaults: %+v %v", c, err)
	}
}

// checkSink asserts the output contract on every packet a fuzzed stream
// produces: size, and parameter sets before every IDR.
type checkSink struct {
	t         testing.TB
	lastType  [2]byte
	idrs      int
	maxPacket int
}

func (s *checkSink) WriteRTP(_ int, pkt *rtp.Packet) {
	if n := pkt.Header.MarshalSize() + len(pkt.Payload); n > maxPacketSize {
		s.t.Fatalf("packet of %d bytes", n)
	}
	if len(pkt.Payload) == 0 {
		s.t.Fatal("empty payload")
	}
	typ := pkt.Payload[0] & 0x1f
	if typ == naluFUA && len(pkt.Payload) > 1 && pkt.Payload[1]&0x80 != 0 {
		typ = pkt.Payload[1] & 0x1f
	} else if typ == naluFUA {
		return
	}
	if typ == naluIDR && (s.lastType[0] != naluSPS || s.lastType[1] != naluPPS) && !(s.lastType[1] == naluIDR) {
		s.t.Fatalf("IDR not preceded by SPS, PPS (last %v)", s.lastType)
	}
	s.lastType[0], s.lastType[1] = s.lastType[1], typ
}

// newPipeForTest builds the depacketize/retime/forward path with a
// checking sink, without a camera.
func newPipeForTest(t testing.TB) (*videoPipe, *checkSink) {
	track := sfu.NewTrack(sfu.TrackInfo{ID: "v", Kind: sfu.KindVideo, Codec: h264Codec}, nil)
	sink := &checkSink{t: t}
	track.AddSink("check", sink)
	s := &Source{log: testLoggerTB(), epoch: time.Now()}
	s.vclock = newTimeline(90000, s.epoch)
	out := newVideoOut(track)
	return s.newVideoPipe(out), sink
}

// FuzzVideoPipe feeds arbitrary RTP packets (as a camera sending garbage
// would) through the H.264 path: nothing may panic, and what comes out must
// keep the output contract.
func FuzzVideoPipe(f *testing.F) {
	sps := []byte{0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8}
	pps := []byte{0x68, 0xce, 0x3c, 0x80}
	idr := append([]byte{0x65, 0x88, 0x84}, make([]byte, 3000)...)
	var seed []byte
	pz := newH264Packetizer()
	pz.send([][]byte{sps, pps, idr, {0x41, 0x9a, 0x02}}, 3000, func(p *rtp.Packet) {
		raw, _ := p.Marshal()
		seed = binary.BigEndian.AppendUint16(seed, uint16(len(raw)))
		seed = append(seed, raw...)
	})
	f.Add(seed)
	f.Add([]byte{0, 14, 0x80, 0xe0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0x7c, 0x85})
	f.Add([]byte{0, 13, 0x80, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0x18})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		vp, _ := newPipeForTest(t)
		for len(data) >= 2 {
			n := int(binary.BigEndian.Uint16(data))
			data = data[2:]
			if n > len(data) {
				n = len(data)
			}
			var pkt rtp.Packet
			if pkt.Unmarshal(append([]byte(nil), data[:n]...)) == nil {
				vp.push(&pkt)
			}
			data = data[n:]
		}
	})
}

// FuzzSourceConfig: whatever an operator posts, validation never panics
// and the shown URL never contains the password.
func FuzzSourceConfig(f *testing.F) {
	f.Add("rtsp://admin:hunter22@10.0.0.5:554/live", "camera", "Back wall", "tcp")
	f.Add("rtsp://[::1]:8554/x", "whiteboard", "", "auto")
	f.Add("rtsp://a:b@c@d/e", "", "", "")
	f.Fuzz(func(t *testing.T, rawURL, kind, name, transport string) {
		c := SourceConfig{URL: rawURL, Kind: Kind(kind), Name: name, Transport: Transport(transport)}
		u, err := c.normalize()
		if err != nil {
			return
		}
		shown := redactURL(u)
		if p, ok := u.User.Password(); ok && len(p) >= 4 && strings.Contains(shown, p) && !strings.Contains("redacted", p) {
			if !strings.Contains(redactURL(&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawQuery: u.RawQuery, Fragment: u.Fragment}), p) {
				t.Fatalf("password %q shown in %q", p, shown)
			}
		}
	})
}
