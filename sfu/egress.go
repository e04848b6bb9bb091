package sfu

import (
	"context"
	"encoding/binary"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// egress is one subscriber connection's send path (docs/SENDPATH.md). It
// decouples the publishers' read goroutines from the subscriber's network
// writes: a down-track queues each rewritten packet's header into the next
// slot of a ring, with a hold on the track's one shared copy of the payload
// (payload.go), and returns; the egress goroutine sends the slots in order.
// A sent slot stays in the ring as the retransmission history, so a NACK is
// answered from the same payload: there is no copy per classroom.
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
	slots []egressSlot // a power of two long; grown, never shrunk
	// bodies holds each slot's payload, beside the slots: a push lets go
	// of the payload a slot held without reading the slot, which is cold
	// by then (written 512 packets ago), and writes the slot whole.
	bodies []*sharedPayload
	mask   uint64 // len(slots) - 1
	head   uint64 // next slot to send; advanced by the sender only
	tail   uint64 // next slot to fill
	// queuedBytes is what waits between head and tail, for the pacer.
	queuedBytes int
	// retransmit holds ring positions NACKed and not yet resent; they go
	// out ahead of queued media.
	retransmit []uint64
	// feedbackWaiting counts what addFeedback put in feedback and nobody
	// took yet: a drain reads it here, beside the lock it took, instead of
	// polling the channel, a cold cache line of its own at each
	// classroom's turn in a fan-out.
	feedbackWaiting atomic.Int32

	wake    chan struct{}
	dropped atomic.Uint64
	packets atomic.Uint64
	bytes   atomic.Uint64
	resent  atomic.Uint64

	// feedback carries TWCC feedback from the subscriber's RTCP readers
	// to the egress goroutine, where the estimator runs.
	feedback chan *twccFeedback
	// The estimator's outputs, for the allocator and the NACK budget.
	target      atomic.Int64 // bit/s: the lower of delay- and loss-based
	delayTarget atomic.Int64 // bit/s
	lossQ16     atomic.Uint32

	// batch, when set, sends each drained batch in one sendmmsg (the
	// subscriber's socket, batchconn.go).
	batch *batchConn

	// Direct sending (sendDirect): the SRTP sender that protects what
	// the node sends, once the DTLS handshake's keys are known
	// (srtpkeys.go), and the classroom's address while the selected pair
	// is UDP on the node's socket. While either is nil, packets go
	// through pion's SRTP session and ICE connection.
	srtpOut atomic.Pointer[srtpSender]
	dest    atomic.Uint64 // a udp4Dest; 0: none
	direct  atomic.Uint64 // packets sent directly
	reports atomic.Uint64 // RTCP packets sent directly (sendRTCP)

	// rttNs is the subscriber's round trip (from its receiver reports):
	// it spaces retransmissions and sizes their history.
	rttNs atomic.Int64
	// heardAtNs is when TWCC feedback last came (send-path clock ns, clock.go; 0: never) and
	// heardEstimate the estimate it left (the allocator's, gccEstimate):
	// what the line carried, before any cut for silence
	// (linememory.go).
	heardAtNs     atomic.Int64
	heardEstimate atomic.Int64

	// inline: a down-track's push sends what it queued itself (kick);
	// set before the egress runs.
	inline bool
	// sending is held by the sender: the egress goroutine, or a
	// publisher's read goroutine that sends inline (kick). What follows
	// is the sender's only.
	sending   sync.Mutex
	pace      pacer
	paceTimer *time.Timer // drains again when the pacer allows; stopped when idle
	sizedAt   int64       // clock ns (clock.go) of the last look at the ring's size
	sizedPos  uint64      // tail then
	twccSeq   uint16
	tally     sentTally
	// heardAt is when TWCC feedback last came (clock ns, clock.go; or when the first
	// stamped packet after a pause went out), stampedAt when stamped
	// packets last went out, silenceCutAt when checkFeedback last cut.
	heardAt, stampedAt, silenceCutAt int64
	hdr                              rtp.Header // scratch: a slot's header as it is sent
	twcc                             [2]byte    // scratch: its TWCC extension's payload
	viaPion                          bool       // pion carried a packet after the keys were known: no direct sends
	reportsVia                       uint8      // how RTCP goes: reportsUndecided, reportsDirect or reportsViaPion
	plain                            []byte     // scratch: a packet before SRTP
	sealed                           *packetBuf // scratch while draining (sealScratch): a packet after SRTP, when it cannot be sealed in the batch
	gcc                              *gccEstimator
	// planned is the estimate the allocator plans with (gccEstimate),
	// kept beside the pacer that reads it each drain: the estimator's
	// own fields are cold by then.
	planned float64
	// What a packet's way out does not touch, and the large arrays, come
	// last, so the fields above share a few cache lines and a page.
	resendRate rateWindow // bytes queued for retransmission lately
	sealedHdr  rtp.Header // scratch for the SRTP context's parse
	rtx        rtxScratch // scratch for building a retransmission
	sent       [sentHistory]sentPacket
}

// Ring geometry. The ring starts at minRingSlots (about 3 s of a 1.5 Mbit/s
// layer with its audio) and is grown by the egress goroutine so that it
// holds historySpan of the subscriber's packets: on a satellite link a lost
// packet may need three round trips of 600 ms before it gets through, and
// a packet gone from the history is lost for good (maxRingSlots bounds the
// memory: 2048 slots are about 130 KiB, and the payloads they hold are the
// track's, shared). maxQueued bounds what may wait to
// be sent (about 0.3 s of a 3 Mbit/s subscriber) and keeps the rest of the
// ring as history.
const (
	minRingSlots = 512
	maxRingSlots = 2048
	// posSlots is how many of one stream's latest sequence numbers can be
	// looked up: as many as the largest ring holds.
	posSlots     = maxRingSlots
	ringCheck    = time.Second
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
// retransmission history. It keeps the header fields a down-track sets,
// and its payload is prefix, then the bytes from to of its body
// (egress.bodies): the prefix is the VP8 payload descriptor with this
// classroom's picture ids, the body the publisher's bytes shared by every
// classroom.
type egressSlot struct {
	stream          *egressStream
	resentAt        int64 // clock ns (clock.go) of the last retransmission; 0 none
	ts, ssrc        uint32
	from, to        int32
	seq             uint16
	pt              uint8
	marker, padding bool
	prefixLen       uint8
	prefix          [vp8MaxPrefix]byte
}

// vp8MaxPrefix holds a VP8 payload descriptor (at most 6 bytes) widened by
// one for a 15-bit picture id.
const vp8MaxPrefix = 8

// size is the slot's payload length.
func (s *egressSlot) size() int { return int(s.prefixLen) + int(s.to-s.from) }

// header is the slot's RTP header, before its transport-wide stamp.
func (s *egressSlot) header() wireHeader {
	return wireHeader{ssrc: s.ssrc, ts: s.ts, seq: s.seq, pt: s.pt, marker: s.marker, padding: s.padding}
}

// wireHeader is an RTP header (RFC 3550) of the one shape the egress
// sends: no CSRCs, and at most one header extension, the transport-wide
// sequence number (twccID and twccSeq; RFC 8285's one-byte form, which
// pion's SetExtension also picks for it). It is written straight into the
// packet: pion's generic header, its extension slice and its marshalling
// were a few cold cache lines and a few hundred instructions for each
// classroom's every packet. The paths pion carries get pion's header
// (asRTP).
type wireHeader struct {
	ssrc, ts        uint32
	seq, twccSeq    uint16
	pt, twccID      uint8 // twccID 0: no extension
	marker, padding bool
}

// size is the header's length on the wire.
func (h *wireHeader) size() int {
	if h.twccID != 0 {
		return 12 + 8 // the extension's own header, the element and a byte of padding
	}
	return 12
}

// put writes the header at the start of b, which holds at least size()
// bytes, and returns its length.
func (h *wireHeader) put(b []byte) int {
	_ = b[11]
	b[0] = 2 << 6 // version 2
	if h.padding {
		b[0] |= 1 << 5
	}
	b[1] = h.pt & 0x7f
	if h.marker {
		b[1] |= 1 << 7
	}
	binary.BigEndian.PutUint16(b[2:], h.seq)
	binary.BigEndian.PutUint32(b[4:], h.ts)
	binary.BigEndian.PutUint32(b[8:], h.ssrc)
	if h.twccID == 0 {
		return 12
	}
	_ = b[19]
	b[0] |= 1 << 4 // extension
	binary.BigEndian.PutUint16(b[12:], rtp.ExtensionProfileOneByte)
	binary.BigEndian.PutUint16(b[14:], 1) // one 32-bit word follows
	b[16] = h.twccID<<4 | (2 - 1)         // id, and length less one
	binary.BigEndian.PutUint16(b[17:], h.twccSeq)
	b[19] = 0
	return 20
}

// asRTP sets hdr to the header as pion's; its extension's payload is
// twcc, which must outlive hdr's use.
func (h *wireHeader) asRTP(hdr *rtp.Header, twcc *[2]byte) {
	*hdr = rtp.Header{Version: 2, Padding: h.padding, Marker: h.marker, PayloadType: h.pt,
		SequenceNumber: h.seq, Timestamp: h.ts, SSRC: h.ssrc, Extensions: hdr.Extensions[:0]}
	if h.twccID != 0 {
		binary.BigEndian.PutUint16(twcc[:], h.twccSeq)
		_ = hdr.SetExtension(h.twccID, twcc[:]) // cannot fail: the id is 1 to 14 (newEgressStream)
	}
}

// rtxScratch is where a retransmission is built: the original sequence
// number (for RTX, RFC 4588) and the slot's payload.
type rtxScratch struct {
	n   int
	buf [2 + vp8MaxPrefix + maxPayload]byte
}

// sentPacket is what the estimator needs of a sent packet, by transport-wide
// sequence number.
type sentPacket struct {
	at   int64 // clock ns (clock.go); 0: nothing sent under this index yet
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
	pos    [posSlots]uint64
	rtxSeq uint16 // the sender's only
}

func newEgress() *egress {
	e := &egress{
		wake:       make(chan struct{}, 1),
		retransmit: make([]uint64, 0, maxRetrans),
		feedback:   make(chan *twccFeedback, 16),
	}
	e.startAt(bweInitialBitrate)
	e.slots, e.bodies, e.mask = make([]egressSlot, minRingSlots), make([]*sharedPayload, minRingSlots), minRingSlots-1
	e.paceTimer = time.NewTimer(time.Hour)
	e.paceTimer.Stop()
	e.hdr.Extensions = make([]rtp.Extension, 0, 1)
	e.plain = make([]byte, maxPacket+srtpOverhead)
	return e
}

// startAt sets the estimate the egress starts from; before it runs.
func (e *egress) startAt(bps int) {
	e.gcc = newGCCEstimator(bps, bweMinBitrate, bweMaxBitrate, time.Now())
	e.publishEstimate()
}

// historySpan is how long the ring should keep sent packets for a round
// trip: a first NACK comes after about one, and each retransmission lost
// again costs another.
func historySpan(rtt time.Duration) time.Duration {
	return max(2*time.Second, 3*rtt+time.Second)
}

// sizeRing doubles the ring, at most up to maxRingSlots, when it holds less
// than historySpan at the rate packets were queued over the last second.
// Sender only, between batches.
func (e *egress) sizeRing(now int64) {
	if e.sizedAt == 0 {
		e.mu.Lock()
		e.sizedAt, e.sizedPos = now, e.tail // tail is push's, under mu
		e.mu.Unlock()
		return
	}
	if now-e.sizedAt < int64(ringCheck) {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	perSec := float64(e.tail-e.sizedPos) / time.Duration(now-e.sizedAt).Seconds()
	e.sizedAt, e.sizedPos = now, e.tail
	want := perSec * historySpan(time.Duration(e.rttNs.Load())).Seconds()
	n := len(e.slots)
	for float64(n) < want && n < maxRingSlots {
		n *= 2
	}
	if n == len(e.slots) {
		return
	}
	// Positions stay what they are; each held slot moves to its index in
	// the larger ring.
	slots, bodies, mask := make([]egressSlot, n), make([]*sharedPayload, n), uint64(n-1)
	first := e.tail - min(e.tail, uint64(len(e.slots)))
	for p := first; p < e.tail; p++ {
		slots[p&mask], bodies[p&mask] = e.slots[p&e.mask], e.bodies[p&e.mask]
	}
	e.slots, e.bodies, e.mask = slots, bodies, mask
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

// push queues one packet into the ring, with the VP8 id rewrite as the
// slot's prefix. body, when not nil, is the track's shared copy of the
// packet's payload, holding payload as its tail (the whole payload, or a
// RED packet's primary); otherwise payload is copied. It never blocks and
// reports false when the packet was dropped.
//
// wake says whether the egress goroutine should send it now: a down-track
// wakes it with a picture's last packet (the marker) and with every sound
// packet, not with the packets before a picture's last. A classroom shows
// a picture only once all of it has arrived, so sending its first packets
// earlier gains nothing, and one wake-up then sends the whole picture (one
// GSO message) instead of one wake-up per packet; the classroom's sound,
// every 20 ms, or the next picture sends what a lost marker left behind,
// and so does a queue that reaches wakeBacklog.
func (e *egress) push(st *egressStream, hdr *rtp.Header, payload []byte, body *sharedPayload, vp8 *vp8Rewrite, wake bool) bool {
	e.mu.Lock()
	queued, backlog := e.pushLocked(st, hdr, payload, body, vp8)
	e.mu.Unlock()
	if wake || backlog {
		e.kick()
	}
	return queued
}

// pushLocked is push under e.mu, without the wake-up: backlog reports
// whether the queue reached wakeBacklog, which wakes the sender whether
// or not the packet ends a picture.
func (e *egress) pushLocked(st *egressStream, hdr *rtp.Header, payload []byte, body *sharedPayload, vp8 *vp8Rewrite) (queued, backlog bool) {
	if st == nil {
		return false, false
	}
	if e.tail-e.head >= maxQueued {
		e.dropped.Add(1)
		return false, false
	}
	if body == nil {
		if body = newSharedPayload(payload); body == nil {
			e.dropped.Add(1)
			return false, false
		}
	} else {
		body.hold()
	}
	from := body.n - len(payload)
	pos := e.tail
	i := pos & e.mask
	if old := e.bodies[i]; old != nil {
		old.release() // the oldest packet of the history
	}
	e.bodies[i] = body
	s := &e.slots[i]
	*s = egressSlot{stream: st, ts: hdr.Timestamp, ssrc: hdr.SSRC, from: int32(from), to: int32(body.n),
		seq: hdr.SequenceNumber, pt: hdr.PayloadType, marker: hdr.Marker, padding: hdr.Padding}
	if vp8 != nil && vp8.apply {
		if d := &vp8.desc; d.size <= len(payload) {
			if n := rewriteVP8(s.prefix[:], payload[:d.size], d, vp8.pictureID, vp8.tl0PicIdx); n > 0 {
				s.prefixLen, s.from = uint8(n), int32(from+d.size)
			}
		}
	}
	st.pos[hdr.SequenceNumber%posSlots] = pos + 1
	e.tail++
	e.queuedBytes += s.size() + rtpHeaderSize
	return true, e.tail-e.head >= wakeBacklog
}

// kick sends what push queued: inline, the caller (a publisher's read
// goroutine, in its fan-out) sends it here unless this classroom's sender
// is busy or the packets would go through pion (over TCP, whose write may
// block the fan-out for every classroom); otherwise it wakes the egress
// goroutine.
func (e *egress) kick() {
	if e.inline && e.sending.TryLock() {
		if out, _ := e.directPath(); out != nil {
			e.drain()
			e.sending.Unlock()
			return
		}
		e.sending.Unlock()
	}
	e.signal()
}

// wakeBacklog is how many queued packets wake the egress goroutine even
// without a picture's last packet (a quarter of what may wait).
const wakeBacklog = maxQueued / 4

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
	at := monoNs(now)
	queued := 0
	e.mu.Lock()
	for _, seq := range seqs {
		p := st.pos[seq%posSlots]
		if p == 0 {
			continue
		}
		p--
		s := &e.slots[p&e.mask]
		if p >= e.head || e.tail-p > uint64(len(e.slots)) || s.stream != st || s.seq != seq {
			continue // not sent yet (it will be), or no longer held
		}
		if s.resentAt != 0 && at-s.resentAt < int64(gap) {
			continue
		}
		if len(e.retransmit) == cap(e.retransmit) || !e.resendRate.allow(at, s.size()+rtpHeaderSize, maxBps) {
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
			e.sending.Lock()
			e.drain()
			e.sending.Unlock()
		case <-e.paceTimer.C:
			e.sending.Lock()
			e.drain()
			e.sending.Unlock()
		case fb := <-e.feedback:
			e.feedbackWaiting.Add(-1)
			e.sending.Lock()
			e.onFeedback(fb, time.Now())
			e.sending.Unlock()
		}
	}
}

// addFeedback hands TWCC feedback to the sender: inline, the caller (the
// RTCP reader) runs the estimator itself unless the sender is busy;
// otherwise the egress goroutine does. It never blocks (feedback arrives
// every 50-100 ms: a full channel means the egress is stuck, and older
// feedback is then worth nothing).
func (e *egress) addFeedback(fb *twccFeedback) {
	if e.inline && e.sending.TryLock() {
		e.onFeedback(fb, time.Now())
		e.sending.Unlock()
		return
	}
	e.feedbackWaiting.Add(1)
	select {
	case e.feedback <- fb:
	default:
		e.feedbackWaiting.Add(-1)
		twccPool.Put(fb)
	}
}

// onFeedback runs the estimator on fb and gives fb back to twccPool.
func (e *egress) onFeedback(fb *twccFeedback, now time.Time) {
	e.heardAt = monoNs(now)
	e.gcc.onFeedback(fb, e.sentPacket, now)
	twccPool.Put(fb)
	e.publishEstimate()
	e.heardEstimate.Store(int64(e.planned))
	e.heardAtNs.Store(e.heardAt)
}

// publishEstimate takes the estimator's outputs after it moved: for the
// allocator and the NACK budget, and for the pacer (planned). Sender only.
func (e *egress) publishEstimate() {
	e.planned = gccEstimate(float64(e.gcc.target), float64(e.gcc.delayTarget), e.gcc.loss.averageLoss)
	e.target.Store(int64(e.gcc.target))
	e.delayTarget.Store(int64(e.gcc.delayTarget))
	e.lossQ16.Store(uint32(min(e.gcc.loss.averageLoss, 1) * 65535))
}

// feedbackTimeout is how long an egress that sends TWCC-stamped packets
// waits for feedback before it halves its estimate, and then again each
// time as long; at least two round trips. Browsers send feedback every
// 50-100 ms.
func feedbackTimeout(rtt time.Duration) time.Duration {
	return max(time.Second, 2*rtt)
}

// checkFeedback halves the estimate when packets stamped for TWCC have
// gone out and no feedback has come for feedbackTimeout (gcc.onSilence).
// Sender only; now is on the send path's clock (clock.go).
func (e *egress) checkFeedback(now int64) {
	wait := int64(feedbackTimeout(time.Duration(e.rttNs.Load())))
	if e.heardAt == 0 || now-e.stampedAt > wait {
		// The first stamped packet, or the first after a pause (the
		// teacher away: nothing to send, nothing to report), starts the
		// wait.
		e.heardAt = now
	}
	e.stampedAt = now
	if now-e.heardAt < wait || now-e.silenceCutAt < wait {
		return
	}
	e.silenceCutAt = now
	e.gcc.onSilence()
	e.publishEstimate()
}

// sentPacket looks a transport-wide sequence number up in the send
// history. Sender only.
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
// nothing waits or the pacer says wait; then the pace timer drains again.
func (e *egress) drain() {
	e.mu.Lock()
	for {
		// mu is held here: taken once to both move head past what was
		// sent and see what waits next.
		resend := len(e.retransmit) > 0
		n := min(e.tail-e.head, maxBatch)
		first := e.head
		queued := e.queuedBytes
		e.mu.Unlock()
		if e.feedbackWaiting.Load() > 0 {
			select { // a subscriber kept busy by media still hears its feedback
			case fb := <-e.feedback:
				e.feedbackWaiting.Add(-1)
				e.onFeedback(fb, time.Now())
			default:
			}
		}
		if !resend && n == 0 {
			return
		}
		now := nanotime() // one clock read per batch
		rate := e.paceRate(queued)
		if !e.pace.refill(now, rate) {
			e.paceTimer.Reset(e.pace.wait(rate))
			return
		}
		if e.batch != nil {
			e.batch.begin()
		}
		if resend {
			e.sendRetransmissions(now)
		}
		sent, sentBytes := uint64(0), 0
		for p := first; p < first+n && e.pace.budget > 0; p++ {
			// The slot is ours until head moves: push never fills it before.
			s := &e.slots[p&e.mask]
			h := s.header()
			e.send(s.stream, &h, s.prefix[:s.prefixLen], e.bodies[p&e.mask].buf[s.from:s.to], now)
			size := s.size() + rtpHeaderSize
			e.pace.budget -= float64(size)
			sent++
			sentBytes += size
		}
		if e.sealed != nil {
			sealScratch.Put(e.sealed)
			e.sealed = nil
		}
		if e.batch != nil {
			e.batch.end()
		}
		e.publishSent()
		e.sizeRing(now)
		if e.twccSeq != 0 { // the classroom negotiated TWCC: feedback is due
			e.checkFeedback(now)
		}
		e.mu.Lock()
		e.head += sent
		e.queuedBytes -= sentBytes
	}
}

// Pacing. A keyframe (tens of packets) or a loss burst's retransmissions
// written at once arrive at a classroom's bottleneck at once: a 1 Mbit/s
// satellite link with a 200 ms router queue holds 25 kB, about one 360p
// keyframe, and drops whatever comes behind it, audio and retransmissions
// included. So each connection's packets leave at no more than paceFactor
// times its estimate, after a burst of paceBurst at that rate. On a link
// that carries the estimate, only keyframes and retransmission bursts ever
// wait, and only for the part of them above the burst.
const (
	paceFactor = 2.5 // libwebrtc's pacing factor
	// Below paceNarrow the factor falls towards paceFactorNarrow: on a
	// narrow link a keyframe is as large as the router's whole queue (a
	// 180p keyframe of ~5 kB against 3.75 kB at 150 kbit/s and 200 ms),
	// and sent at 2.5 times the link's rate it pushed the audio behind it
	// out of that queue.
	paceNarrow       = 1_000_000
	paceFactorNarrow = 1.25
	paceBurst        = 40 * time.Millisecond
	// paceMaxDelay bounds how long a packet waits in the pacer: when more
	// is queued, the rate rises to send it within this (a classroom would
	// rather lose a packet on its link, where a NACK can still get it back,
	// than have its queue here overflow, where nothing can).
	paceMaxDelay = 250 * time.Millisecond
)

// paceRate is the pacing rate in bit/s: paceFactor times the estimate the
// allocator plans with, or faster when queued bytes would otherwise wait
// longer than paceMaxDelay. Sender only.
func (e *egress) paceRate(queued int) float64 {
	est := e.planned
	factor := paceFactor
	if est < paceNarrow {
		factor = paceFactorNarrow + (paceFactor-paceFactorNarrow)*max(0, est-paceNarrow/4)/(paceNarrow*3/4)
	}
	return max(factor*est, float64(queued)*8/paceMaxDelay.Seconds())
}

// pacer is a byte budget refilled at the pacing rate; a packet may leave
// while the budget is positive and takes its size from it.
type pacer struct {
	budget float64 // bytes; negative after a packet larger than what was left
	at     int64   // clock ns (clock.go) of the last refill
}

// refill adds what rate (bit/s) allows since the last refill, up to the
// burst, and reports whether a packet may leave.
func (p *pacer) refill(now int64, rate float64) bool {
	if p.at == 0 {
		p.budget = rate / 8 * paceBurst.Seconds()
	} else {
		p.budget += rate / 8 * time.Duration(now-p.at).Seconds()
		p.budget = min(p.budget, rate/8*paceBurst.Seconds())
	}
	p.at = now
	return p.budget > 0
}

// wait is how long until the budget is positive again at rate.
func (p *pacer) wait(rate float64) time.Duration {
	return max(time.Millisecond, time.Duration((-p.budget+1)*8/rate*float64(time.Second)))
}

// sendRetransmissions builds each NACKed packet into the scratch slot (as
// RTX when negotiated: the original sequence number ahead of the payload,
// RFC 4588) and sends it.
func (e *egress) sendRetransmissions(now int64) {
	for e.pace.budget > 0 {
		e.mu.Lock()
		if len(e.retransmit) == 0 {
			e.mu.Unlock()
			return
		}
		p := e.retransmit[0]
		e.retransmit = append(e.retransmit[:0], e.retransmit[1:]...)
		s, body := &e.slots[p&e.mask], e.bodies[p&e.mask]
		if e.tail-p > uint64(len(e.slots)) || body == nil { // overwritten meanwhile
			e.mu.Unlock()
			continue
		}
		st := s.stream
		r := &e.rtx
		h := s.header()
		r.n = 0
		if st.rtxSSRC != 0 {
			binary.BigEndian.PutUint16(r.buf[:2], s.seq)
			r.n = 2
		}
		r.n += copy(r.buf[r.n:], s.prefix[:s.prefixLen])
		r.n += copy(r.buf[r.n:], body.buf[s.from:s.to])
		e.mu.Unlock()
		if st.rtxSSRC != 0 {
			h.ssrc, h.pt, h.seq = st.rtxSSRC, st.rtxPT, st.rtxSeq
			st.rtxSeq++
		}
		e.send(st, &h, nil, r.buf[:r.n], now)
		e.pace.budget -= float64(r.n + rtpHeaderSize)
		e.resent.Add(1)
	}
}

// send stamps the packet's transport-wide sequence number, notes its send
// time and writes it. Its payload is prefix, then body.
func (e *egress) send(st *egressStream, h *wireHeader, prefix, body []byte, now int64) {
	if st.twccID != 0 {
		seq := e.twccSeq
		e.twccSeq++
		h.twccID, h.twccSeq = st.twccID, seq
		e.sent[seq%sentHistory] = sentPacket{at: now, size: int32(h.size() + len(prefix) + len(body)), seq: seq}
	}
	if out, dst := e.directPath(); out != nil {
		e.sendDirect(out, dst, h, prefix, body)
		return
	}
	if e.srtpOut.Load() != nil {
		// pion's SRTP context and the egress's each count the rollovers
		// of a stream's sequence numbers from what they encrypted: once
		// pion has carried a packet (the pair moved to TCP), the two
		// could disagree, so pion keeps the connection.
		e.viaPion = true
	}
	payload := body
	if len(prefix) > 0 {
		payload = e.plain[:copy(e.plain, prefix)+copy(e.plain[len(prefix):], body)]
	}
	h.asRTP(&e.hdr, &e.twcc)
	if n, err := st.writer.WriteRTP(&e.hdr, payload); err == nil {
		e.tally.packets++
		e.tally.bytes += uint64(n)
	}
}

// directPath is the SRTP sender and the classroom's address when the egress
// sends itself (sendDirect): the keys are known, the pair is UDP on the
// node's socket, and pion has not carried a packet since the keys came.
// Sender only.
func (e *egress) directPath() (*srtpSender, udp4Dest) {
	out, dst := e.srtpOut.Load(), e.destination()
	if out == nil || dst == 0 || e.batch == nil || e.viaPion {
		return nil, 0
	}
	return out, dst
}

// sendRTCP sends an RTCP compound packet (the down-tracks' sender
// reports) to the classroom itself, sealed with the connection's SRTCP
// context, while the egress sends the media itself (sendDirect), and
// reports whether it took the packet; the caller otherwise writes it
// through pion. Through pion, each report passed its SRTCP session, mux,
// ICE connection and UDP mux to a sendto of its own: ~27 µs, 3 % of a
// node's CPU at fanout200, for one report a second per classroom.
//
// pion's SRTCP context and the egress's each number what they seal from 1
// (the SRTCP index, RFC 3711 section 3.4), and a classroom drops an index
// it has seen as a replay: so whichever way carries a connection's first
// report once the keys are known carries all of them. A report due while
// the pair is not UDP on the node's socket (it moved to TCP) is dropped:
// through pion it would be dropped at the classroom.
func (e *egress) sendRTCP(compound []byte) bool {
	e.sending.Lock()
	defer e.sending.Unlock()
	out, dst := e.directPath()
	if e.reportsVia == reportsUndecided && e.srtpOut.Load() != nil {
		e.reportsVia = reportsViaPion
		if out != nil {
			e.reportsVia = reportsDirect
		}
	}
	if e.reportsVia != reportsDirect {
		return false
	}
	if out == nil {
		return true
	}
	sealed, err := out.rtcp.EncryptRTCP(nil, compound, nil)
	if err != nil {
		return true
	}
	if _, err := e.batch.writeTo4(sealed, dst); err == nil {
		e.reports.Add(1)
	}
	return true
}

// How an egress's RTCP goes (sendRTCP).
const (
	reportsUndecided = iota
	reportsDirect
	reportsViaPion
)

// destination is the classroom's address while its selected pair is UDP
// on the node's socket, 0 otherwise; setDestination changes it.
func (e *egress) destination() udp4Dest     { return udp4Dest(e.dest.Load()) }
func (e *egress) setDestination(d udp4Dest) { e.dest.Store(uint64(d)) }

// Sizes for direct sending: the largest RTP packet a slot makes (header
// with CSRCs and extensions, an RTX sequence number, payload with its VP8
// prefix) and what SRTP adds (an authentication tag of at most 16 bytes).
const (
	maxPacket    = maxPayload + 2 + vp8MaxPrefix + 128
	srtpOverhead = 16
)

// packetBuf holds one packet as sent, SRTP included.
type packetBuf [maxPacket + srtpOverhead]byte

// sealScratch lends a drain the buffer its packets are sealed in when they
// cannot be sealed in the batch (AES-CM, IPv6). A buffer of each
// classroom's own was cold at every fan-out (200 classrooms' are 320 KiB);
// one from the pool was just used on this core.
var sealScratch = sync.Pool{New: func() any { return new(packetBuf) }}

// sendDirect protects the packet and writes it to the classroom's address
// on the node's UDP socket, into the batch that is open: what pion's SRTP
// session, ICE connection and mux would do, without their locks, hand-offs
// and copies. With an AES-GCM profile the packet is marshalled and sealed
// in one buffer: the batch's own, where it can be. Nothing is allocated.
func (e *egress) sendDirect(out *srtpSender, dst udp4Dest, h *wireHeader, prefix, body []byte) {
	size := h.size() + len(prefix) + len(body)
	if out.gcm != nil && size+srtpOverhead <= maxDatagramSize {
		n := e.batch.writeInPlace(dst, func(room []byte) int { return sealGCMInto(out, room, h, prefix, body) })
		if n > 0 {
			e.sentDirect(size)
		}
		if n >= 0 {
			return
		}
	}
	if e.sealed == nil {
		e.sealed = sealScratch.Get().(*packetBuf)
	}
	var sealed []byte
	if out.gcm != nil {
		n := sealGCMInto(out, e.sealed[:], h, prefix, body)
		if n == 0 {
			return
		}
		sealed = e.sealed[:n]
	} else {
		buf := e.plain
		if size > len(buf) {
			return
		}
		n := h.put(buf)
		n += copy(buf[n:], prefix)
		n += copy(buf[n:], body)
		var err error
		if sealed, err = out.ctx.EncryptRTP(e.sealed[:0], buf[:n], &e.sealedHdr); err != nil {
			return
		}
	}
	if _, err := e.batch.writeTo4(sealed, dst); err == nil {
		e.sentDirect(size)
	}
}

// sealGCMInto marshals the packet into buf and seals it there (AES-GCM),
// and returns its length; 0 if it does not fit. Without a prefix the body
// is encrypted straight from where it is held into buf.
func sealGCMInto(out *srtpSender, buf []byte, h *wireHeader, prefix, body []byte) int {
	if h.size()+len(prefix)+len(body)+srtpOverhead > len(buf) {
		return 0
	}
	n := h.put(buf)
	payload := body
	if len(prefix) > 0 {
		size := n + copy(buf[n:], prefix)
		size += copy(buf[size:], body)
		payload = buf[n:size]
	}
	return len(out.sealGCM(buf, n, payload, h.ssrc, h.seq))
}

// sentDirect counts a packet of size bytes (before SRTP) sent directly.
func (e *egress) sentDirect(size int) {
	e.tally.packets++
	e.tally.bytes += uint64(size)
	e.tally.direct++
}

// sentTally is what a drain sent, counted by the sender and added to the
// egress's counters once at its end (publishSent): three atomic adds for
// each packet were three locked instructions each time.
type sentTally struct{ packets, bytes, direct uint64 }

func (e *egress) publishSent() {
	t := &e.tally
	if t.packets == 0 {
		return
	}
	e.packets.Add(t.packets)
	e.bytes.Add(t.bytes)
	if t.direct > 0 {
		e.direct.Add(t.direct)
	}
	*t = sentTally{}
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

// allow adds size bytes at time at (clock ns, clock.go) if the window then holds no
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
