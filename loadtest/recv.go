package loadtest

import (
	"encoding/binary"
	"sync"
	"time"
)

// freezeGap is the gap between two received frames that counts as a freeze.
const freezeGap = 500 * time.Millisecond

// streamStats counts one received RTP stream from headers alone: the tool
// never decodes, so a classroom costs a read, a header parse and a map
// lookup per frame.
type streamStats struct {
	mu sync.Mutex

	packets uint64
	bytes   uint64

	// Loss after NACK recovery: distinct sequence numbers seen against the
	// span from the first to the highest.
	started  bool
	baseSeq  uint64 // extended
	maxSeq   uint64 // extended
	seen     [1024]uint64
	distinct uint64
	dups     uint64
	// Earlier runs of the stream (before a rejoin, which starts a new
	// sequence space): how many packets they should have had and had.
	priorExpected, priorDistinct uint64

	// Video frames (a frame ends with the marker bit).
	// red: the stream is Opus in RED (RFC 2198); rebuilt counts packets
	// lost on the link and rebuilt from a later packet's redundancy, as a
	// browser's RED decoder does (they count as received).
	red     bool
	rebuilt uint64

	frames      uint64
	firstFrame  time.Time
	lastFrame   time.Time
	freezes     int
	longFreezes int // longer than 1 s
	freezeTime  time.Duration
	maxGap      time.Duration
	layerFrames [4]uint64
	layer       int
	delay       histogram
	// delayHalf is the delay in the second half of the measuring time
	// (from markHalf on): forwarding in the steady state, past the joins.
	delayHalf     histogram
	delayHalfOpen bool
}

// seq accounts a sequence number and reports whether it is new (not a
// duplicate, not too old to tell).
func (s *streamStats) seq(seq uint16) bool {
	if !s.started {
		s.started = true
		s.baseSeq = 1<<32 + uint64(seq)
		s.maxSeq = s.baseSeq
		return s.mark(s.baseSeq)
	}
	// Extend against the highest seen so far.
	diff := int16(seq - uint16(s.maxSeq))
	ext := uint64(int64(s.maxSeq) + int64(diff))
	if ext < s.baseSeq {
		return false // older than the first packet
	}
	if ext > s.maxSeq {
		// Clear the window slots we move past.
		for x := s.maxSeq + 1; x <= ext && x-s.maxSeq <= uint64(len(s.seen)*64); x++ {
			s.seen[(x/64)%uint64(len(s.seen))] &^= 1 << (x % 64)
		}
		s.maxSeq = ext
	} else if s.maxSeq-ext >= uint64(len(s.seen)*64) {
		return false // too old to tell
	}
	return s.mark(ext)
}

// opusPacketTicks is the Opus packet length the publishers send (20 ms at
// 48 kHz): a RED block's timestamp offset in packets.
const opusPacketTicks = 960

// rebuildFromRED marks the earlier packets a RED payload carries copies of
// as received, when they were not.
func (s *streamStats) rebuildFromRED(seq uint16, p []byte) {
	for i := 0; i+4 <= len(p) && p[i]&0x80 != 0; i += 4 {
		off := (binary.BigEndian.Uint32(p[i:]) >> 10) & 0x3fff
		if off == 0 || off%opusPacketTicks != 0 || off/opusPacketTicks > 8 {
			continue
		}
		if s.markEarlier(seq - uint16(off/opusPacketTicks)) {
			s.rebuilt++
		}
	}
}

// markEarlier marks a sequence number at or below the highest seen as
// received if it was not; it reports whether it did.
func (s *streamStats) markEarlier(seq uint16) bool {
	if !s.started {
		return false
	}
	ext := uint64(int64(s.maxSeq) + int64(int16(seq-uint16(s.maxSeq))))
	if ext < s.baseSeq || ext > s.maxSeq || s.maxSeq-ext >= uint64(len(s.seen)*64) {
		return false
	}
	w, b := (ext/64)%uint64(len(s.seen)), ext%64
	if s.seen[w]&(1<<b) != 0 {
		return false
	}
	s.seen[w] |= 1 << b
	s.distinct++
	return true
}

func (s *streamStats) mark(ext uint64) bool {
	w, b := (ext/64)%uint64(len(s.seen)), ext%64
	if s.seen[w]&(1<<b) != 0 {
		s.dups++
		return false
	}
	s.seen[w] |= 1 << b
	s.distinct++
	return true
}

// lossRate is the share of packets never received, retransmissions
// (and packets rebuilt from RED) included.
func (s *streamStats) lossRate() float64 {
	expected, distinct := s.priorExpected, s.priorDistinct
	if s.started {
		expected += s.maxSeq - s.baseSeq + 1
		distinct += s.distinct
	}
	if expected == 0 || distinct >= expected {
		return 0
	}
	return float64(expected-distinct) / float64(expected)
}

// counts returns how many packets the stream should have had so far and
// how many distinct ones it had, for a loss rate over a window.
func (s *streamStats) counts() (expected, distinct uint64) {
	expected, distinct = s.priorExpected, s.priorDistinct
	if s.started {
		expected += s.maxSeq - s.baseSeq + 1
		distinct += s.distinct
	}
	return expected, distinct
}

// lossSince is the loss rate since counts returned expected0, distinct0.
func (s *streamStats) lossSince(expected0, distinct0 uint64) (float64, bool) {
	expected, distinct := s.counts()
	if expected <= expected0 {
		return 0, false
	}
	e, d := expected-expected0, distinct-distinct0
	if d >= e {
		return 0, true
	}
	return float64(e-d) / float64(e), true
}

// expected is how many packets the stream should have had so far.
func (s *streamStats) expected() uint64 {
	n := s.priorExpected
	if s.started {
		n += s.maxSeq - s.baseSeq + 1
	}
	return n
}

// newRun starts a new sequence space (the stream of a new connection after
// a rejoin); loss so far is kept. Frame gaps run on: the outage is a
// freeze the classroom saw.
func (s *streamStats) newRun() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		return
	}
	s.priorExpected += s.maxSeq - s.baseSeq + 1
	s.priorDistinct += s.distinct
	s.started, s.distinct = false, 0
	s.seen = [len(s.seen)]uint64{}
}

// rtpView is the part of an RTP packet the tool looks at.
type rtpView struct {
	seq     uint16
	marker  bool
	payload []byte
}

// parseRTP reads the fixed header, CSRCs, extension and padding without
// copying or allocating; ok is false for anything that is not RTP.
func parseRTP(b []byte) (v rtpView, ok bool) {
	if len(b) < 12 || b[0]>>6 != 2 {
		return v, false
	}
	n := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 {
		if len(b) < n+4 {
			return v, false
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(b[n+2:]))
	}
	end := len(b)
	if b[0]&0x20 != 0 && end > 0 {
		end -= int(b[end-1])
	}
	if n > end {
		return v, false
	}
	return rtpView{seq: binary.BigEndian.Uint16(b[2:]), marker: b[1]&0x80 != 0, payload: b[n:end]}, true
}

// onPacket accounts one received packet. book is the teacher's stamp book
// (video only, nil when unknown, e.g. a foreign WHEP server's own media).
func (s *streamStats) onPacket(now time.Time, b []byte, video bool, book *stampBook) {
	v, ok := parseRTP(b)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.packets++
	s.bytes += uint64(len(b))
	// A duplicate (a retransmission of a packet already here) is counted
	// in the bytes but is no new frame and says nothing about delay.
	fresh := s.seq(v.seq)
	if s.red && !video {
		s.rebuildFromRED(v.seq, v.payload)
	}
	if !fresh || !video || !v.marker || len(v.payload) == 0 {
		return
	}
	s.frames++
	if s.firstFrame.IsZero() {
		s.firstFrame = now
	} else {
		s.gap(now.Sub(s.lastFrame))
	}
	s.lastFrame = now
	if book != nil {
		if st, ok := book.lookup(fingerprintOf(v.payload)); ok {
			if d := now.UnixNano() - st.at; d >= 0 {
				s.delay.add(time.Duration(d))
				if s.delayHalfOpen {
					s.delayHalf.add(time.Duration(d))
				}
			}
			if st.layer >= 0 && int(st.layer) < len(s.layerFrames) {
				s.layerFrames[st.layer]++
				s.layer = int(st.layer)
			}
		}
	}
}

func (s *streamStats) gap(g time.Duration) {
	if g > s.maxGap {
		s.maxGap = g
	}
	if g > freezeGap {
		s.freezes++
		s.freezeTime += g
		if g > time.Second {
			s.longFreezes++
		}
	}
}

// finish counts a freeze still going on at the end of the run.
func (s *streamStats) finish(end time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.lastFrame.IsZero() {
		s.gap(end.Sub(s.lastFrame))
		s.lastFrame = end
	}
}

// histogram keeps durations in fixed buckets: 100 µs wide up to 100 ms,
// 10 ms wide up to 10 s; enough for percentiles of delay and join time.
type histogram struct {
	fine   [1000]uint32
	coarse [1000]uint32
	over   uint32
	n      uint64
	sum    time.Duration
	max    time.Duration
}

func (h *histogram) add(d time.Duration) {
	h.n++
	h.sum += d
	if d > h.max {
		h.max = d
	}
	switch {
	case d < 100*time.Millisecond:
		h.fine[d/(100*time.Microsecond)]++
	case d < 10*time.Second:
		h.coarse[d/(10*time.Millisecond)]++
	default:
		h.over++
	}
}

func (h *histogram) merge(o *histogram) {
	for i := range h.fine {
		h.fine[i] += o.fine[i]
		h.coarse[i] += o.coarse[i]
	}
	h.over += o.over
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the upper edge of the bucket holding quantile q.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n-1)) + 1
	var c uint64
	for i, v := range h.fine {
		c += uint64(v)
		if c >= rank {
			return min(time.Duration(i+1)*100*time.Microsecond, h.max)
		}
	}
	for i, v := range h.coarse {
		c += uint64(v)
		if c >= rank {
			return min(time.Duration(i+1)*10*time.Millisecond, h.max)
		}
	}
	return h.max
}

func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}
