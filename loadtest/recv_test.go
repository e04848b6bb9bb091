package loadtest

import (
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func rtpBytes(t testing.TB, seq uint16, marker bool, payload []byte) []byte {
	t.Helper()
	p := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Marker: marker, SSRC: 1, PayloadType: 96}, Payload: payload}
	// A header extension, as the server's TWCC adds, must not confuse the
	// payload's end.
	if err := p.Header.SetExtension(3, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStreamStatsLossWrapAndRetransmission(t *testing.T) {
	var s streamStats
	now := time.Unix(0, 0)
	// 200 packets across the 16-bit wrap; every 10th lost, then half of the
	// lost ones arrive late (NACK recovery), plus one duplicate.
	var late []uint16
	for i := 0; i < 200; i++ {
		seq := uint16(65500 + i)
		if i%10 == 5 {
			late = append(late, seq)
			continue
		}
		s.onPacket(now, rtpBytes(t, seq, false, []byte{1}), false, nil)
	}
	for i, seq := range late {
		if i%2 == 0 {
			s.onPacket(now, rtpBytes(t, seq, false, []byte{1}), false, nil)
		}
	}
	s.onPacket(now, rtpBytes(t, late[0], false, []byte{1}), false, nil)
	if got, want := s.lossRate(), 10.0/200; got < want-1e-9 || got > want+1e-9 {
		t.Fatalf("loss = %v, want %v", got, want)
	}
	if s.dups != 1 {
		t.Fatalf("dups = %d, want 1", s.dups)
	}
}

// TestStreamStatsREDRebuildsLostAudio: a lost Opus packet whose copy
// comes in a later RED payload counts as received, as a browser plays it;
// one no payload carried stays lost.
func TestStreamStatsREDRebuildsLostAudio(t *testing.T) {
	s := streamStats{red: true}
	now := time.Unix(0, 0)
	// RED with one earlier packet (offset 960, 2 bytes), then the primary.
	red := func(withPrevious bool) []byte {
		if !withPrevious {
			return []byte{111, 9, 9, 9}
		}
		return []byte{0x80 | 111, byte(960 >> 6), byte(960<<2&0xff) | 0, 2, 111, 7, 7, 9, 9, 9}
	}
	for i := 0; i < 100; i++ {
		seq := uint16(65500 + i)
		switch i {
		case 10, 40: // lost on the link
			continue
		case 11: // carries 10
			s.onPacket(now, rtpBytes(t, seq, false, red(true)), false, nil)
		default: // carries nothing (41 does not rebuild 40)
			s.onPacket(now, rtpBytes(t, seq, false, red(false)), false, nil)
		}
	}
	if s.rebuilt != 1 {
		t.Fatalf("rebuilt %d packets, want 1", s.rebuilt)
	}
	if got, want := s.lossRate(), 1.0/100; got < want-1e-9 || got > want+1e-9 {
		t.Fatalf("loss after RED = %v, want %v", got, want)
	}
}

func TestStreamStatsFreezesDelayAndLayer(t *testing.T) {
	book := newStampBook()
	var s streamStats
	t0 := time.Unix(100, 0)
	frame := func(i int) []byte { return []byte{0x90, byte(i), byte(i >> 8), 7, 7, 7, 7, 7, 7, 7, 7, byte(i)} }
	at := t0
	for i := 0; i < 60; i++ {
		gap := 33 * time.Millisecond
		if i == 30 {
			gap = 1200 * time.Millisecond // one long freeze
		}
		if i == 40 {
			gap = 700 * time.Millisecond // one short freeze
		}
		at = at.Add(gap)
		book.record(fingerprintOf(frame(i)), 2, at.Add(-4*time.Millisecond))
		s.onPacket(at, rtpBytes(t, uint16(i), true, frame(i)), true, book)
	}
	if s.frames != 60 || s.freezes != 2 || s.longFreezes != 1 {
		t.Fatalf("frames %d freezes %d long %d, want 60, 2, 1", s.frames, s.freezes, s.longFreezes)
	}
	if s.maxGap != 1200*time.Millisecond {
		t.Fatalf("max gap %v", s.maxGap)
	}
	if s.layer != 2 || s.layerFrames[2] != 60 {
		t.Fatalf("layer %d frames %v", s.layer, s.layerFrames)
	}
	if p := s.delay.quantile(0.99); p < 4*time.Millisecond || p > 5*time.Millisecond {
		t.Fatalf("delay p99 = %v, want 4 ms (bucket edge)", p)
	}
	s.finish(at.Add(2 * time.Second))
	if s.longFreezes != 2 {
		t.Fatalf("a stall at the end is a freeze too: long = %d", s.longFreezes)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	if p := h.quantile(0.5); p < 495*time.Millisecond || p > 510*time.Millisecond {
		t.Fatalf("p50 = %v", p)
	}
	if p := h.quantile(0.99); p < 985*time.Millisecond || p > 1000*time.Millisecond {
		t.Fatalf("p99 = %v", p)
	}
	if h.max != time.Second {
		t.Fatalf("max = %v", h.max)
	}
}

func FuzzParseRTP(f *testing.F) {
	f.Add(rtpBytes(f, 1, true, []byte{1, 2, 3}))
	f.Add([]byte{0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0xbf, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, ok := parseRTP(b)
		if ok && len(v.payload) > len(b) {
			t.Fatalf("payload longer than packet")
		}
		var s streamStats
		s.onPacket(time.Now(), b, true, newStampBook())
	})
}

func TestParseProcAndMetrics(t *testing.T) {
	cpu, err := parseStatCPU("4242 (podium (x) y) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0 12 0")
	if err != nil || cpu != 4*time.Second {
		t.Fatalf("cpu = %v, %v; want 4s", cpu, err)
	}
	if _, err := parseStatCPU("garbage"); err == nil {
		t.Fatal("garbage stat accepted")
	}
	if rss := parseStatusRSS("Name:\tpodium\nVmRSS:\t  2048 kB\n"); rss != 2048*1024 {
		t.Fatalf("rss = %d", rss)
	}
	m := parseMetrics(strings.NewReader(`# HELP process_cpu_seconds_total x
process_cpu_seconds_total 12.5
process_resident_memory_bytes 1.048576e+08
podium_sfu_packets_total{kind="video"} 10
podium_sfu_packets_total{kind="audio"} 5
other_metric 3
bad line
`))
	if m.cpu != 12500*time.Millisecond || m.rss != 104857600 || m.podium["podium_sfu_packets_total"] != 15 || len(m.podium) != 1 {
		t.Fatalf("metrics = %+v", m)
	}
}

func FuzzParseMetrics(f *testing.F) {
	f.Add("process_cpu_seconds_total 1\npodium_x{a=\"b c\"} 2\n")
	f.Fuzz(func(t *testing.T, s string) {
		_ = parseMetrics(strings.NewReader(s))
		_, _ = parseStatCPU(s)
		_ = parseStatusRSS(s)
	})
}
