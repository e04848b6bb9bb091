package sfu

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
)

// link is a simulated downlink: a bottleneck of rate bit/s (0: none) with
// a tail-drop queue, random loss and a fixed delay. Over tcp, a lost
// packet is not lost: it is resent a round trip later, and every packet
// behind it waits (head-of-line blocking).
type link struct {
	rate     float64
	queue    time.Duration
	loss     float64
	delay    time.Duration
	tcp      bool
	rng      *rand.Rand
	lastDone time.Time
}

// arrive returns when a packet of size bytes sent at t arrives, or false
// when it is lost.
func (l *link) arrive(t time.Time, size int) (time.Time, bool) {
	resent := false
	if l.rng.Float64() < l.loss {
		if !l.tcp {
			return time.Time{}, false
		}
		resent = true
	}
	start := t
	if l.lastDone.After(start) {
		start = l.lastDone
	}
	if resent {
		start = start.Add(2 * l.delay)
	}
	if l.rate > 0 {
		if start.Sub(t) > l.queue {
			return time.Time{}, false
		}
		l.lastDone = start.Add(time.Duration(float64(size*8) / l.rate * float64(time.Second)))
	} else {
		l.lastDone = start
	}
	return l.lastDone.Add(l.delay), true
}

// simulateGCC sends 1200-byte packets through an egress for d of simulated
// time over l, with a real TWCC recorder (pion's, as a receiver uses)
// sending feedback every 100 ms, and returns the egress. The sender sends
// bps, or follows the estimate up to bps when follow is set (as the
// allocator does).
func simulateGCC(t *testing.T, initial int, bps float64, follow bool, l *link, d time.Duration) *egress {
	t.Helper()
	w := &wireWriter{}
	e := newEgress()
	e.gcc = newGCCEstimator(initial, bweMinBitrate, bweMaxBitrate, time.Now().Add(-1000*time.Second))
	e.publishEstimate()
	st := &egressStream{writer: w, ssrc: 1, twccID: 3}
	rec := twcc.NewRecorder(0)
	type pending struct {
		at  time.Time
		seq uint16
	}
	var inFlight []pending
	start := time.Now()
	nextFeedback := start.Add(100 * time.Millisecond)
	var seq uint16
	payload := make([]byte, 1200-12-8)
	for now := start; now.Before(start.Add(d)); {
		rate := bps
		if follow {
			target, _, _ := e.estimates()
			rate = min(max(target, 150e3), bps)
		}
		now = now.Add(time.Duration(1200 * 8 / rate * float64(time.Second)))
		hdr := wireHeader{seq: seq, ssrc: 1}
		seq++
		e.send(st, &hdr, nil, payload, monoNs(now))
		pkts := w.packets()
		sent := pkts[len(pkts)-1]
		if at, ok := l.arrive(now, sent.MarshalSize()); ok {
			inFlight = append(inFlight, pending{at: at, seq: binary.BigEndian.Uint16(sent.GetExtension(3))})
		}
		w.pkts = w.pkts[:0]
		for len(inFlight) > 0 && !inFlight[0].at.After(now) {
			rec.Record(1, inFlight[0].seq, inFlight[0].at.UnixMicro())
			inFlight = inFlight[1:]
		}
		if !now.Before(nextFeedback) {
			for _, p := range rec.BuildFeedbackPacket() {
				if fb, ok := p.(*rtcp.TransportLayerCC); ok {
					e.onFeedback(twccOf(t, fb), now.Add(l.delay))
				}
			}
			nextFeedback = nextFeedback.Add(100 * time.Millisecond)
		}
	}
	return e
}

func TestGCCFindsTheBottleneck(t *testing.T) {
	l := &link{rate: 1e6, queue: 300 * time.Millisecond, delay: 20 * time.Millisecond, rng: rand.New(rand.NewPCG(1, 2))}
	e := simulateGCC(t, 2_500_000, 3e6, true, l, 30*time.Second)
	target, delay, loss := e.estimates()
	t.Logf("a sender following the estimate over 1 Mbit/s: target %.0f, delay-based %.0f, loss %.3f", target, delay, loss)
	if target > 1.2e6 || target < 400e3 {
		t.Errorf("estimate %.0f bit/s for a 1 Mbit/s bottleneck", target)
	}
}

// TestGCCFindsAFullTwoMegabitLine: through a full 2 Mbit/s line packets
// arrive less than 5 ms apart, which pion's grouping took for one endless
// burst: the estimate stayed at its 2.5 Mbit/s start with a fifth of the
// packets lost. Over UDP and over TCP (where a lost segment is resent and
// holds the queue a round trip), the estimate must come down to the line.
func TestGCCFindsAFullTwoMegabitLine(t *testing.T) {
	for _, tcp := range []bool{false, true} {
		l := &link{rate: 2e6, queue: 300 * time.Millisecond, loss: 0.005, delay: 40 * time.Millisecond, tcp: tcp, rng: rand.New(rand.NewPCG(1, 2))}
		e := simulateGCC(t, 2_500_000, 3e6, true, l, 30*time.Second)
		target, delay, loss := e.estimates()
		t.Logf("over tcp %v: target %.0f, delay-based %.0f, loss %.3f", tcp, target, delay, loss)
		if target > 2.3e6 || target < 1.2e6 {
			t.Errorf("over tcp %v: estimate %.0f bit/s for a 2 Mbit/s line", tcp, target)
		}
		if loss > 0.05 {
			t.Errorf("over tcp %v: %.3f of the packets lost following the estimate", tcp, loss)
		}
	}
}

func TestGCCRisesOnAFreeLink(t *testing.T) {
	l := &link{delay: 20 * time.Millisecond, rng: rand.New(rand.NewPCG(1, 2))}
	e := simulateGCC(t, 300_000, 1e6, false, l, 20*time.Second)
	target, delay, loss := e.estimates()
	t.Logf("1 Mbit/s on a free link from 300 kbit/s: target %.0f, delay-based %.0f, loss %.3f", target, delay, loss)
	if target < 1.2e6 {
		t.Errorf("estimate stayed at %.0f bit/s on a link that carries all of 1 Mbit/s", target)
	}
}

func TestGCCUnderRandomLoss(t *testing.T) {
	l := &link{delay: 20 * time.Millisecond, loss: 0.05, rng: rand.New(rand.NewPCG(1, 2))}
	e := simulateGCC(t, 1_000_000, 1e6, false, l, 20*time.Second)
	target, delay, loss := e.estimates()
	t.Logf("5 %% random loss: target %.0f, delay-based %.0f, loss %.3f", target, delay, loss)
	if loss == 0 || loss > 0.2 {
		t.Errorf("average loss %.3f at 5 %% loss", loss)
	}
	if got := gccEstimate(target, delay, loss); got < 1e6 {
		t.Errorf("random loss brought the allocator's estimate to %.0f, below the 1 Mbit/s the link carries", got)
	}

	l = &link{delay: 20 * time.Millisecond, loss: 0.25, rng: rand.New(rand.NewPCG(1, 2))}
	e = simulateGCC(t, 1_000_000, 1e6, false, l, 10*time.Second)
	target, delay, loss = e.estimates()
	t.Logf("25 %% loss: target %.0f, delay-based %.0f, loss %.3f", target, delay, loss)
	if target > 500_000 || gccEstimate(target, delay, loss) != target {
		t.Errorf("25 %% loss left the estimate at %.0f (allocator %.0f)", target, gccEstimate(target, delay, loss))
	}
}

// TestGCCIgnoresMalformedFeedback: feedback that reports more arrivals
// than it carries deltas is not read, so it changes nothing.
func TestGCCIgnoresMalformedFeedback(t *testing.T) {
	w := &wireWriter{}
	e := newEgress()
	st := &egressStream{writer: w, ssrc: 1, twccID: 3}
	pushSeqs(t, e, st, 0, 10)
	e.drain()
	fb := &rtcp.TransportLayerCC{
		BaseSequenceNumber: 0,
		PacketStatusCount:  10,
		PacketChunks:       []rtcp.PacketStatusChunk{&rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketReceivedSmallDelta, RunLength: 10}},
		RecvDeltas:         []*rtcp.RecvDelta{{Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 1000}},
	}
	raw := marshalTCC(t, fb)
	var parsed twccFeedback
	if parsed.parse(raw) == nil {
		t.Fatalf("feedback of 10 arrivals with 1 delta was read: %+v", parsed)
	}
	fb.PacketStatusCount, fb.PacketChunks[0].(*rtcp.RunLengthChunk).RunLength = 1, 1
	fb.Header = rtcp.Header{}
	if acks := e.gcc.parse(twccOf(t, fb), e.sentPacket); len(acks) != 1 || acks[0].arrival == 0 || acks[0].size == 0 {
		t.Fatalf("well-formed feedback of one packet gave %+v", acks)
	}
}

// TestGCCStartIsRaisedByTheFirstTrain: 1,200-byte packets sent together
// arrive as fast as the line lets them through. While the estimate is
// young, a train of ten that came through whole raises it to 95 % of that
// rate (2 Mbit/s: ~1.9), at most to the ceiling (720p's start); one that
// says less than the start (1 Mbit/s), a short one through a slow line
// (5 packets: jitter could make it read fast), one that lost a packet and
// one after the start change nothing.
func TestGCCStartIsRaisedByTheFirstTrain(t *testing.T) {
	start := time.Now()
	train := func(lineBps float64, lost, n int) []gccAck {
		acks := make([]gccAck, n)
		gap := time.Duration(1200 * 8 / lineBps * float64(time.Second))
		for i := range acks {
			acks[i] = gccAck{departure: monoNs(start), arrival: monoNs(start.Add(40*time.Millisecond + time.Duration(i)*gap)), size: 1200}
			if i == lost {
				acks[i].arrival = 0
			}
		}
		return acks
	}
	for _, c := range []struct {
		what      string
		line      float64
		lost, n   int
		after     time.Duration
		low, high int
	}{
		{"a free line", 1e9, -1, 10, 0, bweTrainCeiling, bweTrainCeiling},
		{"a free line, 5 packets", 1e9, -1, 5, 0, bweTrainCeiling, bweTrainCeiling},
		{"a 2 Mbit/s line", 2e6, -1, 10, 0, 1_850_000, 1_950_000},
		{"a 2 Mbit/s line, 5 packets", 2e6, -1, 5, 0, bweInitialBitrate, bweInitialBitrate},
		{"a 1 Mbit/s line", 1e6, -1, 10, 0, bweInitialBitrate, bweInitialBitrate},
		{"a train that lost a packet", 1e9, 4, 10, 0, bweInitialBitrate, bweInitialBitrate},
		{"a train after the start", 1e9, -1, 10, startWindow + time.Second, bweInitialBitrate, bweInitialBitrate},
	} {
		g := newGCCEstimator(bweInitialBitrate, bweMinBitrate, bweMaxBitrate, start)
		g.measureTrains(train(c.line, -1, 1), start) // the first feedback
		g.measureTrains(train(c.line, c.lost, c.n), start.Add(c.after))
		if g.target < c.low || g.target > c.high || g.delayTarget != g.target {
			t.Errorf("%s: estimate %d (delay-based %d), want %d to %d", c.what, g.target, g.delayTarget, c.low, c.high)
		}
	}
}
