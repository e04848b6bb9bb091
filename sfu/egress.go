package sfu

import (
	"context"
	"encoding/binary"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// egress is one subscriber connection's send path (docs/SENDPATH.md). It
// decouples the publishers' read goroutines from the subscriber's network
// writes: a down-track copies each rewritten packet once into the next slot
// of a ring and returns; the egress goroutine sends the slots in order. A
// sent slot stays in the ring as the retransmission history, so a NACK is
// answered from the same copy: there is no second buffer per stream.
//
// The egress stamps every packet it sends (media, padding, retransmission)
// with the next transport-wide sequence number (the negotiated TWCC header
// extension) and notes its send time in a fixed array indexed by that
// number, which GCC (gcc.go) reads on the same goroutine when feedback
// comes; one clock read serves a whole drained batch. None of pion's
// interceptors is on this path.
//
// When a subscriber cannot keep up (a TCP connection that backs up), its
// queue fills and its own packets are dropped: a slow classroom never slows
// the teacher or anyone else.
type egress struct {
	mu    sync.Mutex
	slots []egressSlot
	head  uint64 // next slot to send; advanced by the egress goroutine only
	tail  uint64 // next slot to fill
	// retransmit holds ring positions NACKed and not yet resent; they go
	// out ahead of queued media.
	retransmit []uint64
	resendRate rateWindow // bytes queued for retransmission lately

	wake    chan struct{}
	dropped atomic.Uint64
	packets atomic.Uint64
	bytes   atomic.Uint64
	resent  atomic.Uint64

	// feedback carries TWCC feedback from the subscriber's RTCP readers
	// to the egress goroutine, where the estimator runs.
	feedback chan *rtcp.TransportLayerCC
	// The estimator's outputs, for the allocator and the NACK budget.
	target      atomic.Int64 // bit/s: the lower of delay- and loss-based
	delayTarget atomic.Int64 // bit/s
	lossQ16     atomic.Uint32

	// batch, when set, sends each drained batch in one sendmmsg (the
	// subscriber's socket, batchconn.go).
	batch *batchConn

	// Owned by the egress goroutine.
	twccSeq uint16
	sent    [sentHistory]sentPacket
	rtx     egressSlot // scratch for building a retransmission
	gcc     *gccEstimator
}

// Ring geometry. ringSlots bounds the retransmission history (about 3 s of
// a 1.5 Mbit/s layer with its audio, longer than any round trip a NACK is
// still worth answering on); maxQueued bounds what may wait to be sent
// (about 0.3 s of a 3 Mbit/s subscriber) and keeps the rest of the ring as
// history.
const (
	ringSlots    = 512
	maxQueued    = 128
	maxBatch     = 64
	maxRetrans   = 64 // NACKed packets waiting; more are not worth a backlog
	sentHistory  = 8192
	minResendGap = 10 * time.Millisecond
	// resendWindow is the window over which retransmissions may not
	// exceed the bandwidth estimate (libwebrtc's, and pion's responder's).
	resendWindow = 500 * time.Millisecond
	// defaultResendGap spaces retransmissions of one packet while no
	// round trip has been measured.
	defaultResendGap = 100 * time.Millisecond
)

// maxPayload is the largest RTP payload a slot holds; larger packets (which
// do not occur below a 1500-byte MTU) are dropped.
const maxPayload = 1500

// egressSlot is one packet: the send queue entry and, once sent, its
// retransmission history.
type egressSlot struct {
	stream   *egressStream
	hdr      rtp.Header
	n        int
	twcc     [2]byte // the transport-wide sequence number's extension payload
	resentAt int64   // unix ns of the last retransmission; 0 none
	buf      [maxPayload + 2]byte
}

// sentPacket is what the estimator needs of a sent packet, by transport-wide
// sequence number.
type sentPacket struct {
	at   int64 // unix ns; 0: nothing sent under this index yet
	size int32 // bytes on the wire before SRTP: header and payload
	seq  uint16
}

// egressStream is one down-track's stream on the connection, as negotiated
// when the down-track was bound.
type egressStream struct {
	writer  webrtc.TrackLocalWriter
	ssrc    uint32
	rtxSSRC uint32 // 0: resend the original packet
	rtxPT   uint8
	twccID  uint8 // 0: the subscriber did not negotiate TWCC
	// pos maps a sequence number to the ring position it was queued at,
	// plus one (0: none); written under egress.mu.
	pos    [ringSlots]uint64
	rtxSeq uint16 // owned by the egress goroutine
}

func newEgress() *egress {
	e := &egress{
		slots:      make([]egressSlot, ringSlots),
		wake:       make(chan struct{}, 1),
		retransmit: make([]uint64, 0, maxRetrans),
		feedback:   make(chan *rtcp.TransportLayerCC, 16),
		gcc:        newGCCEstimator(bweInitialBitrate, bweMinBitrate, bweMaxBitrate, time.Now()),
	}
	e.target.Store(bweInitialBitrate)
	e.delayTarget.Store(bweInitialBitrate)
	// Room for the TWCC extension in every slot up front, so stamping
	// never allocates.
	exts := make([]rtp.Extension, ringSlots+1)
	for i := range e.slots {
		e.slots[i].hdr.Extensions = exts[i : i : i+1]
	}
	e.rtx.hdr.Extensions = exts[ringSlots:ringSlots:len(exts)]
	return e
}

// newEgressStream describes a bound down-track's stream from its binding:
// the writer, SSRC, the RTX SSRC and payload type for its codec pt, and the
// TWCC extension id when negotiated.
func newEgressStream(ctx webrtc.TrackLocalContext, pt uint8) *egressStream {
	st := &egressStream{writer: ctx.WriteStream(), ssrc: uint32(ctx.SSRC()), rtxSSRC: uint32(ctx.SSRCRetransmission())}
	if st.rtxSSRC != 0 {
		st.rtxPT, st.rtxSSRC = rtxPayloadType(pt, ctx.CodecParameters()), 0
		if st.rtxPT != 0 {
			st.rtxSSRC = uint32(ctx.SSRCRetransmission())
		}
	}
	for _, e := range ctx.HeaderExtensions() {
		if e.URI == sdp.TransportCCURI && e.ID > 0 && e.ID < 15 {
			st.twccID = uint8(e.ID)
		}
	}
	return st
}

// rtxPayloadType is the negotiated RTX payload type for pt (apt=pt), 0 when
// there is none.
func rtxPayloadType(pt uint8, codecs []webrtc.RTPCodecParameters) uint8 {
	apt := "apt=" + strconv.Itoa(int(pt))
	for _, c := range codecs {
		if strings.EqualFold(c.MimeType, webrtc.MimeTypeRTX) && strings.Contains(c.SDPFmtpLine, apt) {
			for _, f := range strings.Split(c.SDPFmtpLine, ";") {
				if strings.TrimSpace(f) == apt {
					return uint8(c.PayloadType)
				}
			}
		}
	}
	return 0
}

// push copies one packet into the ring and applies the VP8 id rewrite to
// the copy. It never blocks and reports false when the packet was dropped.
func (e *egress) push(st *egressStream, hdr *rtp.Header, payload []byte, vp8 *vp8Rewrite) bool {
	if st == nil {
		return false
	}
	if len(payload) >= maxPayload { // room for a widened VP8 picture id
		e.dropped.Add(1)
		return false
	}
	e.mu.Lock()
	if e.tail-e.head >= maxQueued {
		e.mu.Unlock()
		e.dropped.Add(1)
		return false
	}
	pos := e.tail
	s := &e.slots[pos%ringSlots]
	s.stream = st
	ext := s.hdr.Extensions[:0]
	s.hdr = *hdr
	s.hdr.Extensions = ext // keep the slot's capacity for the TWCC extension
	s.resentAt = 0
	if vp8 != nil && vp8.apply {
		s.n = rewriteVP8(s.buf[:maxPayload], payload, &vp8.desc, vp8.pictureID, vp8.tl0PicIdx)
	} else {
		s.n = copy(s.buf[:maxPayload], payload)
	}
	st.pos[hdr.SequenceNumber%ringSlots] = pos + 1
	e.tail++
	e.mu.Unlock()
	e.signal()
	return true
}

func (e *egress) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// nack queues the retransmission of the stream's packets seqs that are
// still in the history, each at most once per gap (the round trip: a
// receiver repeating its NACK before the first answer could arrive gets
// nothing twice), and all of them together at no more than maxBps over
// resendWindow (a receiver that keeps asking cannot crowd out the media).
// It reports how many were queued.
func (e *egress) nack(st *egressStream, seqs []uint16, gap time.Duration, maxBps float64, now time.Time) int {
	if st == nil {
		return 0
	}
	gap = max(gap, minResendGap)
	at := now.UnixNano()
	queued := 0
	e.mu.Lock()
	for _, seq := range seqs {
		p := st.pos[seq%ringSlots]
		if p == 0 {
			continue
		}
		p--
		s := &e.slots[p%ringSlots]
		if p >= e.head || e.tail-p > ringSlots || s.stream != st || s.hdr.SequenceNumber != seq {
			continue // not sent yet (it will be), or no longer held
		}
		if s.resentAt != 0 && at-s.resentAt < int64(gap) {
			continue
		}
		if len(e.retransmit) == cap(e.retransmit) || !e.resendRate.allow(at, s.n+rtpHeaderSize, maxBps) {
			break
		}
		s.resentAt = at
		e.retransmit = append(e.retransmit, p)
		queued++
	}
	e.mu.Unlock()
	if queued > 0 {
		e.signal()
	}
	return queued
}

// run sends queued packets and runs the estimator on feedback until ctx
// ends.
func (e *egress) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
			e.drain()
		case fb := <-e.feedback:
			e.onFeedback(fb, time.Now())
		}
	}
}

// addFeedback hands TWCC feedback to the egress goroutine; it never blocks
// (feedback arrives every 50-100 ms: a full channel means the egress is
// stuck, and older feedback is then worth nothing).
func (e *egress) addFeedback(fb *rtcp.TransportLayerCC) {
	select {
	case e.feedback <- fb:
	default:
	}
}

func (e *egress) onFeedback(fb *rtcp.TransportLayerCC, now time.Time) {
	e.gcc.onFeedback(fb, e.sentPacket, now)
	e.target.Store(int64(e.gcc.target))
	e.delayTarget.Store(int64(e.gcc.delayTarget))
	e.lossQ16.Store(uint32(min(e.gcc.loss.averageLoss, 1) * 65535))
}

// sentPacket looks a transport-wide sequence number up in the send
// history. Egress goroutine only.
func (e *egress) sentPacket(seq uint16) (at int64, size int, ok bool) {
	p := &e.sent[seq%sentHistory]
	if p.at == 0 || p.seq != seq {
		return 0, 0, false
	}
	return p.at, int(p.size), true
}

// estimates returns GCC's target, its delay-based part and the average
// loss it sees.
func (e *egress) estimates() (target, delayTarget float64, loss float64) {
	return float64(e.target.Load()), float64(e.delayTarget.Load()), float64(e.lossQ16.Load()) / 65535
}

// drain sends retransmissions, then up to maxBatch queued packets, until
// nothing waits.
func (e *egress) drain() {
	for {
		select { // a subscriber kept busy by media still hears its feedback
		case fb := <-e.feedback:
			e.onFeedback(fb, time.Now())
		default:
		}
		e.mu.Lock()
		resend := len(e.retransmit) > 0
		n := min(e.tail-e.head, maxBatch)
		first := e.head
		e.mu.Unlock()
		if !resend && n == 0 {
			return
		}
		now := time.Now().UnixNano() // one clock read per batch
		if e.batch != nil {
			e.batch.begin()
		}
		if resend {
			e.sendRetransmissions(now)
		}
		for p := first; p < first+n; p++ {
			// The slot is ours until head moves: push never fills it before.
			s := &e.slots[p%ringSlots]
			e.send(s.stream, &s.hdr, s.buf[:s.n], &s.twcc, now)
		}
		if e.batch != nil {
			e.batch.end()
		}
		e.mu.Lock()
		e.head += n
		e.mu.Unlock()
	}
}

// sendRetransmissions builds each NACKed packet into the scratch slot (as
// RTX when negotiated: the original sequence number ahead of the payload,
// RFC 4588) and sends it.
func (e *egress) sendRetransmissions(now int64) {
	for {
		e.mu.Lock()
		if len(e.retransmit) == 0 {
			e.mu.Unlock()
			return
		}
		p := e.retransmit[0]
		e.retransmit = append(e.retransmit[:0], e.retransmit[1:]...)
		s := &e.slots[p%ringSlots]
		if e.tail-p > ringSlots || s.stream == nil { // overwritten meanwhile
			e.mu.Unlock()
			continue
		}
		st := s.stream
		r := &e.rtx
		ext := r.hdr.Extensions[:0]
		r.hdr = s.hdr
		r.hdr.Extension, r.hdr.Extensions = false, ext
		if st.rtxSSRC != 0 {
			binary.BigEndian.PutUint16(r.buf[:2], s.hdr.SequenceNumber)
			r.n = 2 + copy(r.buf[2:], s.buf[:s.n])
		} else {
			r.n = copy(r.buf[:], s.buf[:s.n])
		}
		e.mu.Unlock()
		if st.rtxSSRC != 0 {
			r.hdr.SSRC, r.hdr.PayloadType, r.hdr.SequenceNumber = st.rtxSSRC, st.rtxPT, st.rtxSeq
			st.rtxSeq++
		}
		e.send(st, &r.hdr, r.buf[:r.n], &r.twcc, now)
		e.resent.Add(1)
	}
}

// send stamps the packet's transport-wide sequence number, notes its send
// time and writes it.
func (e *egress) send(st *egressStream, hdr *rtp.Header, payload []byte, twcc *[2]byte, now int64) {
	if st.twccID != 0 {
		seq := e.twccSeq
		e.twccSeq++
		binary.BigEndian.PutUint16(twcc[:], seq)
		if err := hdr.SetExtension(st.twccID, twcc[:]); err == nil {
			e.sent[seq%sentHistory] = sentPacket{at: now, size: int32(hdr.MarshalSize() + len(payload)), seq: seq}
		}
	}
	if n, err := st.writer.WriteRTP(hdr, payload); err == nil {
		e.packets.Add(1)
		e.bytes.Add(uint64(n))
	}
}

// rtpHeaderSize is a packet's header with the TWCC extension, for
// budgeting retransmissions.
const rtpHeaderSize = 12 + 8

// rateWindow counts bytes over the last resendWindow in ten buckets.
type rateWindow struct {
	buckets [10]int64
	last    int64 // bucket number (time / bucket length) last written
	total   int64
}

// allow adds size bytes at time at (unix ns) if the window then holds no
// more than bps allows, and reports whether it did.
func (w *rateWindow) allow(at int64, size int, bps float64) bool {
	const bucket = int64(resendWindow) / int64(len(w.buckets))
	n := at / bucket
	if n-w.last >= int64(len(w.buckets)) {
		w.buckets, w.total = [len(w.buckets)]int64{}, 0
	} else {
		for b := w.last + 1; b <= n; b++ {
			i := b % int64(len(w.buckets))
			w.total -= w.buckets[i]
			w.buckets[i] = 0
		}
	}
	if n > w.last {
		w.last = n
	}
	if float64(w.total+int64(size))*8 > bps*resendWindow.Seconds() {
		return false
	}
	w.buckets[n%int64(len(w.buckets))] += int64(size)
	w.total += int64(size)
	return true
}
