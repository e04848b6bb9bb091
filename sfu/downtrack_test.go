package sfu

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// recordingWriter is a webrtc.TrackLocalWriter that keeps what it is given.
type recordingWriter struct {
	mu   sync.Mutex
	pkts []rtp.Packet
}

func (w *recordingWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.mu.Lock()
	w.pkts = append(w.pkts, rtp.Packet{Header: *h, Payload: append([]byte(nil), payload...)})
	w.mu.Unlock()
	return len(payload), nil
}

func (w *recordingWriter) Write(b []byte) (int, error) { return len(b), nil }

func (w *recordingWriter) packets() []rtp.Packet {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]rtp.Packet(nil), w.pkts...)
}

// discardWriter counts and drops.
type discardWriter struct{ n atomic.Int64 }

func (w *discardWriter) WriteRTP(_ *rtp.Header, p []byte) (int, error) {
	w.n.Add(1)
	return len(p), nil
}
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

// boundDownTrack makes a down-track as Bind would, writing to w through a
// running send queue.
func boundDownTrack(tb testing.TB, t *Track, w interface {
	WriteRTP(*rtp.Header, []byte) (int, error)
	Write([]byte) (int, error)
}) *DownTrack {
	tb.Helper()
	q := newEgress()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); q.run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	ready := &atomic.Bool{}
	ready.Store(true)
	d := newDownTrack(t, q, ready, nil)
	d.bound, d.stream, d.ssrc, d.pt, d.resync = true, &egressStream{writer: w, ssrc: 1234}, 1234, 96, true
	return d
}

// TestDownTrackForwardsLongRuns: a run of packets longer than half the
// sequence number space (an hour's sound is 180,000 packets; a picture
// that never switches layers, 500,000) is forwarded whole, across
// sequence number wraps, and a packet late by more than runLookback is
// not.
func TestDownTrackForwardsLongRuns(t *testing.T) {
	track := NewTrack(TrackInfo{ID: "mic", Kind: KindAudio, Codec: Codec{MimeType: "audio/opus", ClockRate: 48000}, Layers: []string{""}}, nil)
	w := &discardWriter{}
	e := newEgress()
	ready := &atomic.Bool{}
	ready.Store(true)
	d := newDownTrack(track, e, ready, nil)
	d.bound, d.stream, d.ssrc, d.pt, d.resync = true, &egressStream{writer: w, ssrc: 1234}, 1234, 111, true
	const packets = 150_000
	seq, ts := uint16(60_000), uint32(1)
	for range packets {
		d.WriteRTP(0, &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: ts, SSRC: 9},
			Payload: []byte{0xfc, 0xff, 0xfe}})
		seq++
		ts += 960
		e.pace.at = 0 // a fresh pacer: the loop is faster than any link
		e.drain()
	}
	if got := w.n.Load(); got != packets {
		t.Fatalf("%d of %d packets of one run forwarded", got, packets)
	}
	d.WriteRTP(0, &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq - 3*runLookback, Timestamp: 1, SSRC: 9},
		Payload: []byte{0xfc, 0xff, 0xfe}})
	e.pace.at = 0
	e.drain()
	if got := w.n.Load(); got != packets {
		t.Errorf("a packet from %d packets back was forwarded", 3*runLookback)
	}
}

// vp8Frame is a one-packet VP8 frame with a 15-bit picture id.
func vp8Frame(seq uint16, ts uint32, pic uint16, key bool) *rtp.Packet {
	hdr := byte(0x01)
	if key {
		hdr = 0x00
	}
	return &rtp.Packet{
		Header:  rtp.Header{Version: 2, Marker: true, PayloadType: 100, SequenceNumber: seq, Timestamp: ts, SSRC: 99},
		Payload: []byte{0x90, 0x80, 0x80 | byte(pic>>8), byte(pic), hdr, 0xaa, 0xbb},
	}
}

// layerSource produces the frames of one simulcast layer with its own
// sequence, timestamp and picture id bases, as a browser does.
type layerSource struct {
	seq uint16
	ts  uint32
	pic uint16
}

func (l *layerSource) next(key bool) *rtp.Packet {
	p := vp8Frame(l.seq, l.ts, l.pic&0x7fff, key)
	l.seq++
	l.ts += 3000
	l.pic++
	return p
}

func waitPackets(t *testing.T, w *recordingWriter, n int) []rtp.Packet {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if p := w.packets(); len(p) >= n {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d packets, want %d", len(w.packets()), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDownTrackSwitchesOnKeyframesContinuously(t *testing.T) {
	var asked []int
	var mu sync.Mutex
	track := NewTrack(TrackInfo{ID: "t", Kind: KindVideo, Codec: Codec{MimeType: "video/VP8", ClockRate: 90000}, Layers: []string{"q", "h", "f"}},
		func(l int) { mu.Lock(); asked = append(asked, l); mu.Unlock() })
	w := &recordingWriter{}
	d := boundDownTrack(t, track, w)
	track.AddSink("sub", d)
	d.setTarget(0)

	layers := []*layerSource{{seq: 100, ts: 1000, pic: 7}, {seq: 30000, ts: 5_000_000, pic: 32000}, {seq: 65500, ts: 4_294_000_000, pic: 300}}
	send := func(frames int, keyAt map[int]bool) {
		for i := 0; i < frames; i++ {
			for l, src := range layers {
				track.WriteRTP(l, src.next(keyAt[i]))
			}
		}
	}
	send(10, map[int]bool{0: true})
	d.setTarget(2)
	send(5, nil) // no keyframe yet: stay on q
	if got := d.CurrentLayer(); got != 0 {
		t.Fatalf("switched to %d before a keyframe", got)
	}
	send(10, map[int]bool{0: true}) // keyframe on every layer: switch to f
	if got := d.CurrentLayer(); got != 2 {
		t.Fatalf("current layer %d, want 2", got)
	}
	d.setTarget(1)
	send(10, map[int]bool{3: true})
	if got := d.CurrentLayer(); got != 1 {
		t.Fatalf("current layer %d, want 1", got)
	}

	pkts := waitPackets(t, w, 10+5+10+7)
	parsed, _ := parseVP8(pkts[0].Payload)
	if !parsed.keyframe {
		t.Error("first packet is not a keyframe")
	}
	for i := 1; i < len(pkts); i++ {
		a, b := pkts[i-1], pkts[i]
		if b.SequenceNumber != a.SequenceNumber+1 {
			t.Fatalf("packet %d: sequence %d after %d", i, b.SequenceNumber, a.SequenceNumber)
		}
		if int32(b.Timestamp-a.Timestamp) <= 0 {
			t.Fatalf("packet %d: timestamp %d after %d", i, b.Timestamp, a.Timestamp)
		}
		da, _ := parseVP8(a.Payload)
		db, _ := parseVP8(b.Payload)
		if db.pictureID != (da.pictureID+1)&0x7fff {
			t.Fatalf("packet %d: picture id %d after %d", i, db.pictureID, da.pictureID)
		}
		if b.SSRC != 1234 || b.PayloadType != 96 {
			t.Fatalf("packet %d: ssrc %d pt %d", i, b.SSRC, b.PayloadType)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(asked) != "[0 2 1]" {
		t.Errorf("keyframe requests %v: want one per target change (0, 2, 1)", asked)
	}
}

func TestMutedTrackStopsAndResumesOnKeyframe(t *testing.T) {
	var asked atomic.Int32
	track := NewTrack(TrackInfo{ID: "t", Kind: KindVideo, Codec: Codec{MimeType: "video/VP8", ClockRate: 90000}},
		func(int) { asked.Add(1) })
	w := &recordingWriter{}
	d := boundDownTrack(t, track, w)
	track.AddSink("sub", d)
	src := &layerSource{seq: 1, ts: 1, pic: 1}
	track.WriteRTP(0, src.next(true))
	track.WriteRTP(0, src.next(false))
	waitPackets(t, w, 2)

	track.SetMuted(true)
	for i := 0; i < 5; i++ {
		track.WriteRTP(0, src.next(i == 2))
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(w.packets()); n != 2 {
		t.Fatalf("%d packets forwarded, want none while muted", n-2)
	}
	before := asked.Load()
	track.SetMuted(false)
	if asked.Load() == before {
		t.Error("unmute did not ask for a keyframe")
	}
	track.WriteRTP(0, src.next(false)) // not a keyframe: wait
	track.WriteRTP(0, src.next(true))
	track.WriteRTP(0, src.next(false))
	pkts := waitPackets(t, w, 4)
	if len(pkts) != 4 {
		t.Fatalf("forwarded %d packets after unmute, want 2", len(pkts)-2)
	}
	if d, _ := parseVP8(pkts[2].Payload); !d.keyframe {
		t.Error("first packet after unmute is not a keyframe")
	}
	if pkts[2].SequenceNumber != pkts[1].SequenceNumber+1 {
		t.Errorf("sequence %d after %d across the mute", pkts[2].SequenceNumber, pkts[1].SequenceNumber)
	}
}

func TestREDStrippedForOpusSubscriber(t *testing.T) {
	track := NewTrack(TrackInfo{ID: "a", Kind: KindAudio, Codec: Codec{MimeType: "audio/red", ClockRate: 48000, Channels: 2}}, nil)
	w := &recordingWriter{}
	d := boundDownTrack(t, track, w)
	d.stripRE, d.pt = true, 111
	track.AddSink("sub", d)
	red := []byte{0x80 | 111, 0x00, 0x40, 2, 111, 1, 2, 7, 8, 9}
	track.WriteRTP(0, &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 63, SequenceNumber: 5, Timestamp: 960}, Payload: red})
	p := waitPackets(t, w, 1)[0]
	if p.PayloadType != 111 || string(p.Payload) != string([]byte{7, 8, 9}) {
		t.Errorf("got pt %d payload %v, want Opus primary [7 8 9]", p.PayloadType, p.Payload)
	}
}

func TestAllocate(t *testing.T) {
	rates := []float64{150e3, 500e3, 1500e3}
	tests := []struct {
		name   string
		budget float64
		items  []allocItem
		want   []int
		keep   float64 // keepBudget when above budget
	}{
		{"plenty", 10e6, []allocItem{{priority: priorityStage, rates: rates, maxLayer: -1, current: 2}}, []int{2}, 0},
		{"tight keeps lowest", 50e3, []allocItem{{priority: priorityStage, rates: rates, maxLayer: -1, current: 2}}, []int{0}, 0},
		{"cap respected", 10e6, []allocItem{{priority: priorityStage, rates: rates, maxLayer: 1, current: -1}}, []int{1}, 0},
		{"screen first", 2e6, []allocItem{
			{priority: priorityGrid, rates: rates, maxLayer: -1, current: 0},
			{priority: priorityScreen, rates: rates, maxLayer: -1, current: 2},
		}, []int{0, 2}, 0},
		{"upgrade needs headroom", 1.6e6, []allocItem{{priority: priorityStage, rates: rates, maxLayer: -1, current: 1}}, []int{1}, 0},
		{"keep current without headroom", 1.6e6, []allocItem{{priority: priorityStage, rates: rates, maxLayer: -1, current: 2}}, []int{2}, 0},
		{"keep current a little short", 1.3e6, []allocItem{{priority: priorityStage, rates: rates, maxLayer: -1, current: 2}}, []int{2}, 0},
		{"keep current through one back-off", 1.2e6, []allocItem{{priority: priorityStage, rates: rates, maxLayer: -1, current: 2}}, []int{2}, 0},
		{"give up current far short", 1.0e6, []allocItem{{priority: priorityStage, rates: rates, maxLayer: -1, current: 2}}, []int{1}, 0},
		{"no discount for a layer not held", 1.3e6, []allocItem{{priority: priorityStage, rates: rates, maxLayer: -1, current: 1}}, []int{1}, 0},
		{"unmeasured uses defaults", 1e6, []allocItem{{priority: priorityStage, rates: []float64{0, 0, 0}, maxLayer: -1, current: -1}}, []int{1}, 0},
		{"a dip shorter than the hold keeps the layer", 1.0e6, []allocItem{{priority: priorityStage, rates: rates, maxLayer: -1, current: 2}}, []int{2}, 1.6e6},
		{"a spike shorter than the hold lifts nothing", 1.5e6, []allocItem{{priority: priorityStage, rates: rates, maxLayer: -1, current: 1}}, []int{1}, 2.0e6},
		{"missing layer skipped", 10e6, []allocItem{{priority: priorityStage, rates: []float64{150e3, 500e3, 0}, maxLayer: -1, current: -1}}, []int{1}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := allocate(tt.budget, max(tt.budget, tt.keep), tt.items)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRoomSpeaking(t *testing.T) {
	rs := NewRooms(nil)
	r, _, _ := rs.GetOrCreateRoom("speak")
	got := make(chan []string, 10)
	r.OnEvent(func(e Event) {
		if e.Type == EventSpeaking {
			got <- e.Speakers
		}
	})
	_ = r.AddParticipant(ParticipantInfo{ID: "a", Role: RoleClassroom})
	_ = r.AddParticipant(ParticipantInfo{ID: "b", Role: RoleClassroom})
	r.SetSpeaking("a", true)
	r.SetSpeaking("a", true) // no change, no event
	r.SetSpeaking("b", true)
	r.RemoveParticipant("b", "left")
	for _, want := range []string{"[a]", "[b a]", "[a]"} {
		select {
		case s := <-got:
			if fmt.Sprint(s) != want {
				t.Fatalf("speakers %v, want %s", s, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no speaking event, want %s", want)
		}
	}
	m := &levelMeter{}
	for i := 0; i < speakingPackets; i++ {
		m.observe(30)
		m.observe(127)
	}
	if !m.takeSpeaking() || m.takeSpeaking() {
		t.Error("level meter: want speaking once, then silence")
	}
	r.End("done")
}

func FuzzDownTrackForward(f *testing.F) {
	f.Add([]byte{0x00, 0x10, 0x01, 0x02, 0x12, 0x00})
	f.Fuzz(func(t *testing.T, ops []byte) {
		track := NewTrack(TrackInfo{ID: "t", Kind: KindVideo, Codec: Codec{MimeType: "video/VP8", ClockRate: 90000}, Layers: []string{"q", "h", "f"}}, nil)
		d := boundDownTrack(t, track, &discardWriter{})
		var seq [3]uint16
		for i := 0; i+1 < len(ops); i += 2 {
			layer := int(ops[i] % 3)
			if ops[i]&0x80 != 0 {
				d.setTarget(int(ops[i+1] % 3))
				continue
			}
			seq[layer] += uint16(ops[i+1] % 4)
			payload := ops[i+1:]
			if len(payload) > 8 {
				payload = payload[:8]
			}
			d.WriteRTP(layer, &rtp.Packet{Header: rtp.Header{SequenceNumber: seq[layer], Timestamp: uint32(i) * 100}, Payload: payload})
		}
	})
}

// BenchmarkForward is the server's per-packet work from a publisher's
// packet to the network, for n subscribers: the Track's fan-out, each
// down-track's rewrite into its subscriber's egress ring, and each egress
// sending it (transport-wide sequence number and send history for GCC).
// With send=discard the egress hands the packet to a writer that drops it
// (what pion's SRTP session would get); with send=srtp+udp it protects the
// packet with AES-128-GCM SRTP and writes it into a sendmmsg batch of a
// loopback UDP socket (sendDirect), the system call included. The egresses
// are drained in the loop rather than by their goroutines, so ns/op is the
// whole cost. Each subscriber has keys and an address of its own, as
// classrooms do: at 200, what each one's packet touches is cold by its
// turn, as on a node.
func BenchmarkForward(b *testing.B) {
	for _, send := range []string{"discard", "srtp+udp"} {
		for _, n := range []int{1, 10, 100, 200} {
			b.Run(fmt.Sprintf("send=%s/subscribers=%d", send, n), func(b *testing.B) {
				benchmarkForward(b, n, send == "srtp+udp")
			})
		}
	}
}

func benchmarkForward(b *testing.B, n int, direct bool) {
	const framePackets = 4
	track := NewTrack(TrackInfo{ID: "t", Kind: KindVideo, Codec: Codec{MimeType: "video/VP8", ClockRate: 90000}, Layers: []string{"q", "h", "f"}}, nil)
	ready := &atomic.Bool{}
	ready.Store(true)
	var batch *batchConn
	if direct {
		udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		defer udp.Close()
		_, batch = newBatchConn(udp, slog.Default())
	}
	egresses := make([]*egress, n)
	for i := range egresses {
		e := newEgress()
		egresses[i] = e
		if direct {
			// Nobody reads the sink: the kernel drops what its buffer cannot hold.
			sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			defer sink.Close()
			e.batch = batch
			e.srtpOut.Store(testSRTPSender(b))
			e.setDestination(udp4DestOf(sink.LocalAddr().(*net.UDPAddr).AddrPort()))
		}
		d := newDownTrack(track, e, ready, nil)
		d.bound, d.ssrc, d.pt, d.resync = true, 1234, 96, true
		d.stream = &egressStream{writer: &discardWriter{}, ssrc: 1234, rtxSSRC: 5678, rtxPT: 97, twccID: 3}
		d.setTarget(0)
		track.AddSink(fmt.Sprint(i), d)
	}
	src := &layerSource{seq: 1, ts: 1, pic: 1}
	track.WriteRTP(0, src.next(true))
	pkt := vp8Frame(0, 0, 0, false)
	pkt.Payload = append(pkt.Payload, make([]byte, 1000)...)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// A picture of framePackets packets: its last one sends it, and
		// each classroom's run of packets leaves as one GSO message.
		pkt.SequenceNumber = src.seq
		pkt.Timestamp = src.ts
		pkt.Marker = i%framePackets == framePackets-1
		src.seq++
		track.WriteRTP(0, pkt)
		if !pkt.Marker && i != b.N-1 {
			continue
		}
		src.ts += 3000
		for _, e := range egresses {
			// The loop makes packets far faster than any link takes them:
			// a fresh pacer lets each one go at once instead of queueing
			// it until the queue is full and dropping the rest.
			e.pace.at = 0
			e.drain()
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/packet/subscriber")
	if direct && egresses[0].direct.Load() == 0 {
		b.Fatal("nothing was sent directly")
	}
}

func TestGCCEstimateTrustsDelayUnderRandomLoss(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		target, delayTarget, loss float64
		want                      float64
	}{
		{"no loss", 2e6, 2e6, 0, 2e6},
		{"3 % random loss holds the loss estimate low", 300e3, 900e3, 0.03, 900e3},
		{"heavy loss: the loss estimate rules", 300e3, 900e3, 0.15, 300e3},
		{"congestion: delay estimate is the lower", 400e3, 400e3, 0.03, 400e3},
	} {
		if got := gccEstimate(tc.target, tc.delayTarget, tc.loss); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
