package sfu

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// wireWriter keeps each packet as it would go on the wire (marshalled when
// written: the egress reuses its slots).
type wireWriter struct {
	mu   sync.Mutex
	pkts []rtp.Packet
}

func (w *wireWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	b, err := (&rtp.Packet{Header: *h, Payload: payload}).Marshal()
	if err != nil {
		return 0, err
	}
	var p rtp.Packet
	if err := p.Unmarshal(b); err != nil {
		return 0, err
	}
	w.mu.Lock()
	w.pkts = append(w.pkts, p)
	w.mu.Unlock()
	return len(b), nil
}

func (w *wireWriter) Write(b []byte) (int, error) { return len(b), nil }

func (w *wireWriter) packets() []rtp.Packet {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]rtp.Packet(nil), w.pkts...)
}

func pushSeqs(t *testing.T, e *egress, st *egressStream, from, to uint16) {
	t.Helper()
	for seq := from; seq != to; seq++ {
		hdr := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: uint32(seq) * 3000, SSRC: st.ssrc}
		if !e.push(st, &hdr, []byte{0xaa, byte(seq), byte(seq >> 8)}, nil, nil, true) {
			t.Fatalf("packet %d dropped", seq)
		}
	}
}

func twccSeq(t *testing.T, p rtp.Packet, id uint8) uint16 {
	t.Helper()
	ext := p.GetExtension(id)
	if len(ext) != 2 {
		t.Fatalf("packet ssrc %d seq %d: no transport-wide sequence number (extensions %v)", p.SSRC, p.SequenceNumber, p.GetExtensionIDs())
	}
	return binary.BigEndian.Uint16(ext)
}

// TestEgressAnswersNACKsFromItsRing drives the egress by hand (no
// goroutine), so the order of what it sends is exact.
func TestEgressAnswersNACKsFromItsRing(t *testing.T) {
	w := &wireWriter{}
	e := newEgress()
	e.sizedAt = math.MaxInt64 // the ring keeps its first size here (see TestEgressRingGrowsWithTheRoundTrip)
	st := &egressStream{writer: w, ssrc: 1234, rtxSSRC: 5678, rtxPT: 97, twccID: 3}
	pushSeqs(t, e, st, 100, 110)
	e.drain()

	t0 := time.Now()
	if n := e.nack(st, []uint16{102, 104, 200}, time.Second, 1e9, t0); n != 2 {
		t.Fatalf("NACK of two sent packets and one never sent queued %d retransmissions, want 2", n)
	}
	if n := e.nack(st, []uint16{102}, time.Second, 1e9, t0.Add(500*time.Millisecond)); n != 0 {
		t.Fatalf("a repeated NACK within the round trip queued %d, want 0", n)
	}
	pushSeqs(t, e, st, 110, 112)
	e.drain()

	pkts := w.packets()
	if len(pkts) != 14 {
		t.Fatalf("sent %d packets, want 10 + 2 retransmissions + 2", len(pkts))
	}
	for i, p := range pkts {
		if got := twccSeq(t, p, 3); got != uint16(i) {
			t.Errorf("packet %d has transport-wide sequence number %d, want %d", i, got, i)
		}
	}
	for i, want := range []uint16{102, 104} {
		r := pkts[10+i]
		if r.SSRC != 5678 || r.PayloadType != 97 {
			t.Fatalf("retransmission %d: ssrc %d pt %d, want RTX 5678/97", i, r.SSRC, r.PayloadType)
		}
		if r.SequenceNumber != uint16(i) {
			t.Errorf("retransmission %d: RTX sequence number %d, want %d", i, r.SequenceNumber, i)
		}
		if len(r.Payload) < 2 || binary.BigEndian.Uint16(r.Payload) != want || !bytes.Equal(r.Payload[2:], []byte{0xaa, byte(want), byte(want >> 8)}) {
			t.Errorf("retransmission %d: payload %x, want the original sequence number %d then the original payload", i, r.Payload, want)
		}
	}
	if pkts[12].SequenceNumber != 110 || pkts[13].SequenceNumber != 111 {
		t.Errorf("media queued behind the retransmissions went out as %d, %d", pkts[12].SequenceNumber, pkts[13].SequenceNumber)
	}
	for i := 0; i < len(pkts); i++ {
		if e.sent[i].at == 0 || int(e.sent[i].size) != pkts[i].MarshalSize() {
			t.Errorf("send history of transport-wide %d: %+v, packet size %d", i, e.sent[i], pkts[i].MarshalSize())
		}
	}

	if n := e.nack(st, []uint16{102}, time.Second, 1e9, t0.Add(1001*time.Millisecond)); n != 1 {
		t.Fatalf("a NACK after the round trip queued %d, want 1", n)
	}
	e.drain()
	if got := len(w.packets()); got != 15 {
		t.Fatalf("sent %d packets, want 15", got)
	}

	// Once the ring has moved on by its size, the packet is gone.
	for seq := uint16(112); seq != 112+minRingSlots; seq += 64 {
		pushSeqs(t, e, st, seq, seq+64)
		e.drain()
	}
	if n := e.nack(st, []uint16{104, 112 + minRingSlots - 1}, 0, 1e9, t0.Add(time.Hour)); n != 1 {
		t.Fatalf("NACK of an overwritten and a held packet queued %d, want 1", n)
	}
}

// TestEgressRingGrowsWithTheRoundTrip: at a satellite round trip the ring
// grows to hold three of them, and what it held before can still be
// retransmitted from the larger ring.
func TestEgressRingGrowsWithTheRoundTrip(t *testing.T) {
	w := &wireWriter{}
	e := newEgress()
	e.startAt(bweMaxBitrate) // a fast line: each drain lets its batch out
	st := &egressStream{writer: w, ssrc: 1234, twccID: 3}
	t0 := time.Now()
	e.sizeRing(monoNs(t0))

	// 400 packets a second at 40 ms: two seconds of history are 800
	// packets, so the ring doubles once.
	e.rttNs.Store(int64(40 * time.Millisecond))
	send := func(from, to uint16) { // in batches the queue takes
		for seq := from; seq < to; seq += 100 {
			pushSeqs(t, e, st, seq, min(seq+100, to))
			e.drain()
		}
	}
	send(0, 400)
	e.sizeRing(monoNs(t0.Add(time.Second)))
	if got := len(e.slots); got != 2*minRingSlots {
		t.Fatalf("ring of %d slots at 400 packets/s and 40 ms, want %d", got, 2*minRingSlots)
	}
	// At 600 ms, 3 RTT + 1 s = 2.8 s: 1,120 packets, and the ring stops at
	// its cap whatever the rate.
	e.rttNs.Store(int64(600 * time.Millisecond))
	send(400, 1400)
	e.sizeRing(monoNs(t0.Add(2 * time.Second)))
	if got := len(e.slots); got != maxRingSlots {
		t.Fatalf("ring of %d slots at 1000 packets/s and 600 ms, want the cap %d", got, maxRingSlots)
	}
	sent := len(w.packets())
	if n := e.nack(st, []uint16{400, 1399}, 0, 1e9, t0.Add(3*time.Second)); n != 2 {
		t.Fatalf("NACK of packets held across two resizes queued %d, want 2", n)
	}
	e.drain()
	got := w.packets()[sent:]
	if len(got) != 2 || got[0].SequenceNumber != 400 || got[1].SequenceNumber != 1399 {
		t.Fatalf("retransmitted %v, want 400 and 1399", got)
	}
}

// TestEgressResendsWithoutRTX: a stream without negotiated RTX gets the
// original packet again, and a full queue drops rather than blocks.
func TestEgressResendsWithoutRTX(t *testing.T) {
	w := &wireWriter{}
	e := newEgress()
	st := &egressStream{writer: w, ssrc: 1234}
	pushSeqs(t, e, st, 1, 3)
	e.drain()
	if n := e.nack(st, []uint16{1}, time.Second, 1e9, time.Now()); n != 1 {
		t.Fatalf("queued %d, want 1", n)
	}
	e.drain()
	pkts := w.packets()
	if len(pkts) != 3 || pkts[2].SSRC != 1234 || pkts[2].SequenceNumber != 1 || !bytes.Equal(pkts[2].Payload, pkts[0].Payload) {
		t.Fatalf("resent %+v, want the original packet 1", pkts[len(pkts)-1].Header)
	}
	if pkts[2].Extension {
		t.Errorf("a stream without TWCC got header extensions %v", pkts[2].GetExtensionIDs())
	}

	pushSeqs(t, e, st, 3, 3+maxQueued)
	hdr := rtp.Header{Version: 2, SequenceNumber: 999, SSRC: 1234}
	if e.push(st, &hdr, []byte{1}, nil, nil, true) {
		t.Fatal("push into a full queue succeeded")
	}
	if e.dropped.Load() != 1 {
		t.Fatalf("dropped = %d, want 1", e.dropped.Load())
	}
}

// TestEgressRetransmitsWithinTheEstimate: a receiver that NACKs everything
// gets retransmissions only up to the estimate over the window.
func TestEgressRetransmitsWithinTheEstimate(t *testing.T) {
	w := &wireWriter{}
	e := newEgress()
	st := &egressStream{writer: w, ssrc: 1234, rtxSSRC: 5678, rtxPT: 97, twccID: 3}
	pushSeqs(t, e, st, 0, 10)
	e.drain()
	size := 3 + rtpHeaderSize                         // each test packet as the budget counts it
	bps := float64(3*size*8) / resendWindow.Seconds() // room for three
	t0 := time.Now()
	all := []uint16{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	if n := e.nack(st, all, time.Millisecond, bps, t0); n != 3 {
		t.Fatalf("queued %d retransmissions, want the 3 the estimate allows", n)
	}
	if n := e.nack(st, all, time.Millisecond, bps, t0.Add(resendWindow/2)); n != 0 {
		t.Fatalf("queued %d more within the window, want 0", n)
	}
	if n := e.nack(st, all, time.Millisecond, bps, t0.Add(resendWindow+resendWindow/10)); n != 3 {
		t.Fatalf("queued %d after the window, want 3", n)
	}
}

// TestEgressWakesOncePerPicture: a picture's packets before its last wait
// in the ring without waking the egress goroutine; its last packet (the
// marker) wakes it once, and the drain then sends the whole picture. A
// backlog of wakeBacklog wakes it even without a marker.
func TestEgressWakesOncePerPicture(t *testing.T) {
	e := newEgress()
	w := &wireWriter{}
	st := &egressStream{writer: w, ssrc: 1}
	woken := func() bool {
		select {
		case <-e.wake:
			return true
		default:
			return false
		}
	}
	picture := func(from uint16, n int) {
		for i := range n {
			hdr := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: from + uint16(i), Timestamp: uint32(from), SSRC: 1, Marker: i == n-1}
			if !e.push(st, &hdr, []byte{0xaa}, nil, nil, hdr.Marker) {
				t.Fatalf("packet %d dropped", i)
			}
			if i < n-1 && woken() {
				t.Fatalf("packet %d of %d woke the egress before the picture's last", i+1, n)
			}
		}
		if !woken() {
			t.Fatal("the picture's last packet did not wake the egress")
		}
	}
	picture(100, 6)
	e.drain()
	if got := len(w.packets()); got != 6 {
		t.Fatalf("one wake-up sent %d packets, want the picture's 6", got)
	}
	for i := range wakeBacklog {
		hdr := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 200 + uint16(i), SSRC: 1}
		e.push(st, &hdr, []byte{0xaa}, nil, nil, false)
	}
	if !woken() {
		t.Errorf("%d queued packets without a marker did not wake the egress", wakeBacklog)
	}
}

// TestEgressLeavesSRTPToPionOnceItCarriedAPacket: the egress protects and
// sends packets itself while the pair is UDP; once the pair moved to TCP
// and pion carried a packet, it never sends directly again, even back on
// UDP (pion's SRTP context and its own would count rollovers apart).
func TestEgressLeavesSRTPToPionOnceItCarriedAPacket(t *testing.T) {
	udp := listenLoopback(t)
	sink := listenLoopback(t)
	_, batch := newBatchConn(udp, slog.Default())
	e := newEgress()
	e.batch = batch
	e.srtpOut.Store(testSRTPSender(t))
	w := &wireWriter{}
	st := &egressStream{writer: w, ssrc: 1}
	sendOne := func(seq uint16) {
		hdr := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, SSRC: 1, Marker: true}
		e.push(st, &hdr, []byte{0xaa}, nil, nil, true)
		e.pace.at = 0
		e.drain()
	}
	e.setDestination(udp4DestOf(sink.LocalAddr().(*net.UDPAddr).AddrPort()))
	sendOne(1)
	if e.direct.Load() != 1 || len(w.packets()) != 0 {
		t.Fatalf("on UDP: %d direct, %d through pion; want 1, 0", e.direct.Load(), len(w.packets()))
	}
	e.setDestination(0) // the pair moved to TCP
	sendOne(2)
	e.setDestination(udp4DestOf(sink.LocalAddr().(*net.UDPAddr).AddrPort())) // and back to UDP
	sendOne(3)
	if e.direct.Load() != 1 || len(w.packets()) != 2 {
		t.Fatalf("after TCP: %d direct, %d through pion; want 1, 2", e.direct.Load(), len(w.packets()))
	}
}

// TestEgressHalvesItsEstimateWhenFeedbackStops: packets stamped for TWCC
// go out and no feedback comes back (a line so bad that the classroom's
// reports are lost): after feedbackTimeout the estimate halves, and again
// each time as long, down to the minimum; feedback that comes again
// resets the wait.
func TestEgressHalvesItsEstimateWhenFeedbackStops(t *testing.T) {
	e := newEgress()
	start := nanotime()
	second := int64(time.Second)
	e.checkFeedback(start) // the first stamped packet
	if got := e.target.Load(); got != bweInitialBitrate {
		t.Fatalf("estimate %d before any wait, want %d", got, bweInitialBitrate)
	}
	e.checkFeedback(start + second/2)
	if got := e.target.Load(); got != bweInitialBitrate {
		t.Fatalf("estimate %d after 0.5 s without feedback, want it kept", got)
	}
	e.checkFeedback(start + second + 1)
	if got := e.target.Load(); got != bweInitialBitrate/2 {
		t.Fatalf("estimate %d after 1 s without feedback, want %d", got, bweInitialBitrate/2)
	}
	e.checkFeedback(start + second + second/2)
	if got := e.target.Load(); got != bweInitialBitrate/2 {
		t.Fatalf("estimate %d: cut twice within a second", got)
	}
	for at := start + 2*second; at < start+20*second; at += second / 4 {
		e.checkFeedback(at)
	}
	if got := e.target.Load(); got != bweMinBitrate {
		t.Fatalf("estimate %d after 20 s without feedback, want the minimum %d", got, bweMinBitrate)
	}

	// Feedback resets the wait; so does a pause in sending (nothing sent,
	// nothing to report), however long.
	e = newEgress()
	e.checkFeedback(start)
	e.heardAt = start + second/2 // feedback
	e.checkFeedback(start + second + second/4)
	if got := e.target.Load(); got != bweInitialBitrate {
		t.Fatalf("estimate %d 0.75 s after feedback, want it kept", got)
	}
	e.checkFeedback(start + 60*second) // the first packet after a minute's pause
	e.checkFeedback(start + 60*second + second/2)
	if got := e.target.Load(); got != bweInitialBitrate {
		t.Fatalf("estimate %d just after a pause in sending, want it kept", got)
	}
}

// testSRTPSender is an AES-128-GCM SRTP sender with an all-zero key, for
// benchmarks and tests of the direct path.
func testSRTPSender(tb testing.TB) *srtpSender {
	tb.Helper()
	key := make([]byte, 16+12)
	s, err := newSRTPSender(key[:16], key[16:], srtp.ProtectionProfileAeadAes128Gcm)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// TestFanOutSendsInlineInOneBatch: with inline sending (a node on one
// core), a picture's last packet fanned out to three classrooms is sent by
// the fan-out itself, without waking any egress goroutine, and the three
// datagrams leave in one sendmmsg of the fan-out's batch. A fourth
// classroom, on TCP (pion writes its packets, and may block), is left to
// its egress goroutine.
func TestFanOutSendsInlineInOneBatch(t *testing.T) {
	udp, sink := listenLoopback(t), listenLoopback(t)
	_, batch := newBatchConn(udp, slog.Default())
	track := NewTrack(TrackInfo{ID: "t", Kind: KindVideo, Codec: Codec{MimeType: "video/VP8", ClockRate: 90000}}, nil)
	ready := &atomic.Bool{}
	ready.Store(true)
	egresses := make([]*egress, 3)
	for i := range egresses {
		e := newEgress()
		e.inline, e.batch = true, batch
		e.srtpOut.Store(testSRTPSender(t))
		e.setDestination(udp4DestOf(sink.LocalAddr().(*net.UDPAddr).AddrPort()))
		d := newDownTrack(track, e, ready, nil)
		d.bound, d.ssrc, d.pt, d.resync = true, 1234, 96, true
		d.stream = &egressStream{writer: &discardWriter{}, ssrc: 1234}
		d.setTarget(0)
		track.AddSink(fmt.Sprint(i), d)
		egresses[i] = e
	}
	overTCP := newEgress()
	overTCP.inline, overTCP.batch = true, batch
	overTCP.srtpOut.Store(testSRTPSender(t))
	d := newDownTrack(track, overTCP, ready, nil)
	d.bound, d.ssrc, d.pt, d.resync = true, 1234, 96, true
	d.stream = &egressStream{writer: &discardWriter{}, ssrc: 1234}
	d.setTarget(0)
	track.AddSink("tcp", d)

	batch.begin()
	track.WriteRTP(0, vp8Frame(1, 3000, 5, true))
	if got := batch.calls.Load(); got != 0 {
		t.Fatalf("%d sendmmsg calls while the fan-out's batch was open, want 0", got)
	}
	batch.end()
	if calls, datagrams := batch.calls.Load(), batch.datagrams.Load(); calls != 1 || datagrams != 3 {
		t.Fatalf("%d sendmmsg calls with %d datagrams, want 1 with 3", calls, datagrams)
	}
	for i, e := range egresses {
		if e.direct.Load() != 1 {
			t.Errorf("classroom %d: %d packets sent, want 1", i, e.direct.Load())
		}
		select {
		case <-e.wake:
			t.Errorf("classroom %d: its egress goroutine was woken", i)
		default:
		}
	}
	select {
	case <-overTCP.wake:
	default:
		t.Error("the classroom on TCP was not left to its egress goroutine")
	}
	if overTCP.direct.Load() != 0 || overTCP.packets.Load() != 0 {
		t.Error("the classroom on TCP was sent to inline")
	}
	// Each classroom opens what it got (sealed in the batch's own
	// buffer) with pion's SRTP: the frame, with its picture id.
	buf := make([]byte, 1500)
	for i := range egresses {
		if err := sink.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		n, _, err := sink.ReadFrom(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		key := make([]byte, 16+12)
		receiver, err := srtp.CreateContext(key[:16], key[16:], srtp.ProtectionProfileAeadAes128Gcm)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := receiver.DecryptRTP(nil, buf[:n], nil)
		if err != nil {
			t.Fatalf("datagram %d does not open: %v", i, err)
		}
		var pkt rtp.Packet
		if err := pkt.Unmarshal(plain); err != nil {
			t.Fatal(err)
		}
		if want := vp8Frame(1, 3000, 5, true).Payload; pkt.SSRC != 1234 || !bytes.Equal(pkt.Payload[len(pkt.Payload)-3:], want[len(want)-3:]) {
			t.Fatalf("datagram %d: ssrc %d payload %x, want ssrc 1234 and the frame %x", i, pkt.SSRC, pkt.Payload, want)
		}
	}
}

// TestWireHeaderIsPionsMarshal: the header the egress writes itself is,
// byte for byte, what pion marshals for the same fields and transport-wide
// stamp, for every flag and extension id, and its size is pion's.
func TestWireHeaderIsPionsMarshal(t *testing.T) {
	for i := 0; i < 2000; i++ {
		h := wireHeader{ssrc: uint32(i) * 2654435761, ts: uint32(i) * 40503, seq: uint16(i * 7919), twccSeq: uint16(i * 104729),
			pt: uint8(i % 128), marker: i%3 == 0, padding: i%5 == 0}
		if i%4 != 0 {
			h.twccID = uint8(1 + i%14)
		}
		var twcc [2]byte
		var want rtp.Header
		want.Extensions = make([]rtp.Extension, 0, 1)
		h.asRTP(&want, &twcc)
		wantBytes, err := want.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 32)
		n := h.put(got)
		if !bytes.Equal(got[:n], wantBytes) || h.size() != n {
			t.Fatalf("%+v: wrote % x (size %d), pion marshals % x", h, got[:n], h.size(), wantBytes)
		}
		var back rtp.Header
		if _, err := back.Unmarshal(got[:n]); err != nil || back.SequenceNumber != h.seq || back.SSRC != h.ssrc ||
			back.Marker != h.marker || back.PayloadType != h.pt || back.Padding != h.padding {
			t.Fatalf("%+v: pion reads back %+v (%v)", h, back, err)
		}
		if h.twccID != 0 && binary.BigEndian.Uint16(back.GetExtension(h.twccID)) != h.twccSeq {
			t.Fatalf("%+v: transport-wide sequence number %x", h, back.GetExtension(h.twccID))
		}
	}
}
