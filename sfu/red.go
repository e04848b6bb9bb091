package sfu

import (
	"errors"
	"fmt"
)

// RFC 2198 redundant audio (audio/red): browsers wrap Opus packets with
// copies of earlier ones. A subscriber that did not negotiate RED gets only
// the primary (newest) block.

var errBadRED = errors.New("malformed RED payload")

// redMaxBlocks bounds how many block headers a RED payload may carry; real
// senders use two or three.
const redMaxBlocks = 16

// redPrimary returns the payload type and bytes of the primary block of a
// RED payload. The result aliases p.
func redPrimary(p []byte) (pt uint8, primary []byte, err error) {
	i := 0
	total := 0 // bytes of the redundant blocks
	for blocks := 0; ; blocks++ {
		if blocks >= redMaxBlocks {
			return 0, nil, fmt.Errorf("%w: more than %d blocks", errBadRED, redMaxBlocks)
		}
		if i >= len(p) {
			return 0, nil, fmt.Errorf("%w: truncated header", errBadRED)
		}
		if p[i]&0x80 == 0 { // last header: F=0, PT only
			pt = p[i] & 0x7f
			i++
			break
		}
		if i+4 > len(p) {
			return 0, nil, fmt.Errorf("%w: truncated block header", errBadRED)
		}
		total += int(p[i+2]&0x03)<<8 | int(p[i+3])
		i += 4
	}
	start := i + total
	if start > len(p) {
		return 0, nil, fmt.Errorf("%w: block lengths exceed payload", errBadRED)
	}
	return pt, p[start:], nil
}

// Server-made RED (RFC 2198) for classrooms on lossy links: a classroom
// that negotiated audio/red (browsers do) gets each Opus packet with
// copies of the one or two before it, as many as its measured loss calls
// for, whatever the publisher sent (a publisher's own RED is for its own
// uplink: the primary is taken out and wrapped again per classroom). A
// lost packet is then rebuilt from the next one, with no round trip:
// retransmission is too slow for audio on a satellite link.

// redDistanceFor is the redundancy for a fraction lost: none below 1 %, the
// previous packet up to 5 %, the previous two above.
func redDistanceFor(loss float64) int32 {
	switch {
	case loss < 0.01:
		return 0
	case loss < 0.05:
		return 1
	}
	return 2
}

// redBlockMax is the longest block RED can carry (a 10-bit length).
const redBlockMax = 1023

// redBlock is an earlier primary kept for redundancy. Its bytes are not
// copied: the block holds the RED payload it went out in as the primary,
// where they are the payload's last n bytes.
type redBlock struct {
	ts   uint32
	seq  uint16         // the publisher's sequence number of its packet
	body *sharedPayload // nil: none kept
	n    int
}

func (b *redBlock) bytes() []byte { return b.body.buf[b.body.n-b.n : b.body.n] }

// redWrapper builds RED payloads for one down-track.
type redWrapper struct {
	pt   uint8       // the negotiated Opus payload type inside RED
	prev [2]redBlock // the last two primaries
	last int         // index in prev of the newest
}

// redBuilds holds the RED payloads built during one fan-out of a
// publisher's audio packet (Track.WriteRTP), so that every classroom whose
// wrapper would build the same bytes (the same earlier packets carried,
// the same payload type) queues the same payload: one build and one
// buffer for 200 classrooms, as for video (payload.go), instead of one
// each. Owned by the layer's read goroutine.
type redBuilds struct {
	n     int
	built [4]redBuilt
}

type redBuilt struct {
	key  redKey
	body *sharedPayload
}

// redKey is what a RED payload's bytes depend on besides the packet: the
// payload type, whether the publisher's own RED was taken off the primary,
// and which earlier packets are carried (by sequence number, oldest first;
// within a run their timestamp offsets are the publisher's).
type redKey struct {
	pt     uint8
	strip  bool
	blocks int
	seqs   [2]uint16
}

func (r *redBuilds) find(k redKey) *sharedPayload {
	for i := range r.n {
		if r.built[i].key == k {
			return r.built[i].body
		}
	}
	return nil
}

func (r *redBuilds) add(k redKey, body *sharedPayload) {
	if r.n < len(r.built) {
		body.hold()
		r.built[r.n] = redBuilt{key: k, body: body}
		r.n++
	}
}

// release lets go of the fan-out's payloads.
func (r *redBuilds) release() {
	for i := range r.n {
		r.built[i].body.release()
		r.built[i] = redBuilt{}
	}
	r.n = 0
}

// wrap returns a RED payload, held once for the caller, carrying primary
// (the publisher's packet seq, timestamp ts here) after up to distance
// earlier primaries, oldest first. Blocks too old for a 14-bit offset, or
// too long, are left out. builds, when not nil, lends a payload another
// classroom's wrapper built for the same packet, and keeps the one built
// here for the others. nil if primary is too long for a packet.
func (w *redWrapper) wrap(ts uint32, seq uint16, primary []byte, distance int, strip bool, builds *redBuilds) *sharedPayload {
	var blocks [2]*redBlock
	key := redKey{pt: w.pt, strip: strip}
	size := 1 + len(primary)
	for k := min(distance, 2) - 1; k >= 0; k-- { // oldest first
		b := &w.prev[(w.last-k+2)%2]
		off := ts - b.ts
		if b.body == nil || off == 0 || off >= 1<<14 || size+4+b.n > maxPayload {
			continue
		}
		blocks[key.blocks] = b
		key.seqs[key.blocks] = b.seq
		key.blocks++
		size += 4 + b.n
	}
	var body *sharedPayload
	if builds != nil {
		if body = builds.find(key); body != nil {
			body.hold()
		}
	}
	if body == nil {
		if size >= maxPayload {
			return nil
		}
		body = payloadPool.Get().(*sharedPayload)
		body.refs.Store(1)
		out := body.buf[:0]
		for _, b := range blocks[:key.blocks] {
			off := ts - b.ts
			out = append(out, 0x80|w.pt, byte(off>>6), byte(off<<2)|byte(b.n>>8), byte(b.n))
		}
		out = append(out, w.pt&0x7f)
		for _, b := range blocks[:key.blocks] {
			out = append(out, b.bytes()...)
		}
		out = append(out, primary...)
		body.n = len(out)
		if builds != nil {
			builds.add(key, body)
		}
	}
	// Keep this primary, in the payload, for the next packets.
	w.last = (w.last + 1) % 2
	b := &w.prev[w.last]
	if b.body != nil {
		b.body.release()
	}
	*b = redBlock{}
	if len(primary) <= redBlockMax {
		body.hold()
		*b = redBlock{ts: ts, seq: seq, body: body, n: len(primary)}
	}
	return body
}

// reset forgets earlier primaries (a new run of the stream).
func (w *redWrapper) reset() {
	for i := range w.prev {
		if w.prev[i].body != nil {
			w.prev[i].body.release()
		}
		w.prev[i] = redBlock{}
	}
}
