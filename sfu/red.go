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
