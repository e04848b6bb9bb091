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

// redBlock is an earlier primary kept for redundancy.
type redBlock struct {
	ts  uint32
	n   int
	buf [redBlockMax]byte
}

// redWrapper builds RED payloads for one down-track.
type redWrapper struct {
	pt   uint8       // the negotiated Opus payload type inside RED
	prev [2]redBlock // the last two primaries
	last int         // index in prev of the newest
	out  [maxPayload]byte
}

// wrap returns a RED payload carrying primary (timestamp ts) after up to
// distance earlier primaries, oldest first. Blocks too old for a 14-bit
// offset, or too long, are left out. The result aliases w.out.
func (w *redWrapper) wrap(ts uint32, primary []byte, distance int) []byte {
	var blocks [2]*redBlock
	nb, size := 0, 1+len(primary)
	for k := min(distance, 2) - 1; k >= 0; k-- { // oldest first
		b := &w.prev[(w.last-k+2)%2]
		off := ts - b.ts
		if b.n == 0 || off == 0 || off >= 1<<14 || size+4+b.n > maxPayload {
			continue
		}
		blocks[nb] = b
		nb++
		size += 4 + b.n
	}
	out := w.out[:0]
	for _, b := range blocks[:nb] {
		off := ts - b.ts
		out = append(out, 0x80|w.pt, byte(off>>6), byte(off<<2)|byte(b.n>>8), byte(b.n))
	}
	out = append(out, w.pt&0x7f)
	for _, b := range blocks[:nb] {
		out = append(out, b.buf[:b.n]...)
	}
	if len(out)+len(primary) > maxPayload {
		out = append(out[:0], w.pt&0x7f) // primary alone
	}
	out = append(out, primary...)
	// Keep this primary for the next packets.
	w.last = (w.last + 1) % 2
	b := &w.prev[w.last]
	if len(primary) <= redBlockMax {
		b.ts, b.n = ts, copy(b.buf[:], primary)
	} else {
		b.n = 0
	}
	return out
}

// reset forgets earlier primaries (a new run of the stream).
func (w *redWrapper) reset() { w.prev[0].n, w.prev[1].n = 0, 0 }
