package sfu

import (
	"encoding/binary"
	"errors"
	"sync"
)

// twccFeedback is one transport-wide congestion control feedback packet
// (draft-holmer-rmcat-transport-wide-cc-extensions-01, section 3.1) as the
// estimator reads it: the status of each packet it reports and the arrival
// delta of each that arrived. A classroom sends one every 50-100 ms, most
// of the RTCP a node reads; pion's parser allocated a chunk per status
// chunk and a delta per packet, and pion's reader a 1,500-byte buffer per
// packet. This one reads in place into slices that are reused (twccPool),
// so 200 classrooms' feedback allocates nothing.
type twccFeedback struct {
	base    uint16 // transport-wide sequence number of the first packet
	refTime int64  // 24-bit reference time, in 64 ms units
	// symbols has a status per packet from base on: twccNotReceived,
	// twccSmallDelta, twccLargeDelta (or 3, received without a delta:
	// taken as lost, as pion does).
	symbols []uint8
	// deltas has, in order, the arrival delta in µs of each packet whose
	// status is twccSmallDelta or twccLargeDelta.
	deltas []int64
}

// Packet status symbols.
const (
	twccNotReceived = 0
	twccSmallDelta  = 1
	twccLargeDelta  = 2
)

var errTWCCMalformed = errors.New("twcc: malformed feedback")

// twccPool keeps parsed feedback between the RTCP reader that fills it
// and the egress that consumes it.
var twccPool = sync.Pool{New: func() any { return &twccFeedback{} }}

// isTWCC reports whether an RTCP packet (header first) is TWCC feedback:
// transport layer feedback (205), format 15.
func isTWCC(p []byte) bool { return len(p) >= 4 && p[1] == 205 && p[0]&0x1f == 15 }

// parse reads one feedback packet, its RTCP header included. A packet that
// announces more than it carries is an error and leaves nothing to use.
func (f *twccFeedback) parse(p []byte) error {
	f.symbols, f.deltas = f.symbols[:0], f.deltas[:0]
	if len(p) < 20 || p[0]>>6 != 2 || !isTWCC(p) {
		return errTWCCMalformed
	}
	end := (int(binary.BigEndian.Uint16(p[2:])) + 1) * 4
	if end > len(p) {
		return errTWCCMalformed
	}
	if p[0]&0x20 != 0 { // padding: its last octet counts it
		pad := int(p[end-1])
		if pad == 0 || end-pad < 20 {
			return errTWCCMalformed
		}
		end -= pad
	}
	f.base = binary.BigEndian.Uint16(p[12:])
	count := int(binary.BigEndian.Uint16(p[14:]))
	f.refTime = int64(p[16])<<16 | int64(p[17])<<8 | int64(p[18])
	at := 20
	for len(f.symbols) < count {
		if at+2 > end {
			return errTWCCMalformed
		}
		chunk := binary.BigEndian.Uint16(p[at:])
		at += 2
		switch {
		case chunk&0x8000 == 0: // run length: a symbol and how many
			symbol := uint8(chunk>>13) & 3
			for run := int(chunk & 0x1fff); run > 0 && len(f.symbols) < count; run-- {
				f.symbols = append(f.symbols, symbol)
			}
		case chunk&0x4000 == 0: // status vector of 14 one-bit symbols
			for i := 13; i >= 0 && len(f.symbols) < count; i-- {
				f.symbols = append(f.symbols, uint8(chunk>>i)&1)
			}
		default: // status vector of 7 two-bit symbols
			for i := 6; i >= 0 && len(f.symbols) < count; i-- {
				f.symbols = append(f.symbols, uint8(chunk>>(2*i))&3)
			}
		}
	}
	for _, s := range f.symbols {
		switch s {
		case twccSmallDelta:
			if at+1 > end {
				return errTWCCMalformed
			}
			f.deltas = append(f.deltas, int64(p[at])*250)
			at++
		case twccLargeDelta:
			if at+2 > end {
				return errTWCCMalformed
			}
			f.deltas = append(f.deltas, int64(int16(binary.BigEndian.Uint16(p[at:])))*250)
			at += 2
		}
	}
	return nil
}
