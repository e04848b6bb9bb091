package recorder

import (
	"encoding/binary"
	"errors"
)

// frame is one access unit (video) or packet (audio) rebuilt from RTP.
// data is only valid until the next call into the depacketizer.
type frame struct {
	rtpTime uint32
	key     bool
	data    []byte // H.264: AVCC (4-byte length prefixes); VP8, Opus: raw
}

// depacketizer turns RTP payloads into frames. push returns a finished frame
// when one completes; a lost packet drops the frame it belonged to (ok=false)
// and the caller waits for the next keyframe.
type depacketizer interface {
	push(seq uint16, ts uint32, marker bool, payload []byte) (f frame, ok bool, err error)
}

var errLost = errors.New("rtp packet lost inside a frame")

// maxFrameSize bounds one frame so a hostile publisher cannot grow memory.
const maxFrameSize = 8 << 20

// h264Depacketizer handles single NAL unit, STAP-A and FU-A packets
// (packetization-mode 0 and 1), the only ones WebRTC uses.
type h264Depacketizer struct {
	buf      []byte // AVCC of the frame being built
	ts       uint32
	started  bool
	broken   bool
	haveSeq  bool
	nextSeq  uint16
	fuStart  int // offset of the length prefix of the FU-A NALU being built, -1 when none
	key      bool
	sps, pps []byte
}

func newH264Depacketizer() *h264Depacketizer { return &h264Depacketizer{fuStart: -1} }

func (d *h264Depacketizer) reset(ts uint32) {
	d.buf = d.buf[:0]
	d.ts = ts
	d.started = true
	d.broken = false
	d.fuStart = -1
	d.key = false
}

func (d *h264Depacketizer) appendNALU(n []byte) {
	if len(n) == 0 {
		return
	}
	switch n[0] & 0x1f {
	case 5:
		d.key = true
	case 7:
		d.sps = append(d.sps[:0], n...)
	case 8:
		d.pps = append(d.pps[:0], n...)
	}
	d.buf = binary.BigEndian.AppendUint32(d.buf, uint32(len(n)))
	d.buf = append(d.buf, n...)
}

func (d *h264Depacketizer) push(seq uint16, ts uint32, marker bool, p []byte) (frame, bool, error) {
	var err error
	if !d.started || ts != d.ts {
		// A new timestamp starts a new frame; an unfinished one (lost
		// marker packet) is dropped.
		if d.started && len(d.buf) > 0 && !d.broken {
			err = errLost
		}
		if d.haveSeq && seq != d.nextSeq {
			err = errLost // a whole frame went missing
		}
		d.reset(ts)
	} else if seq != d.nextSeq {
		d.broken = true
		err = errLost
	}
	d.nextSeq = seq + 1
	d.haveSeq = true
	if len(p) < 1 {
		d.broken = true
		return frame{}, false, errors.New("h264: empty payload")
	}
	if !d.broken && d.fuStart >= 0 && (p[0]&0x1f != 28 || len(p) < 2 || p[1]&0x80 != 0) {
		// The end of the fragmented NAL unit being built was lost.
		d.broken = true
		err = errLost
	}
	if !d.broken {
		switch typ := p[0] & 0x1f; typ {
		case 24: // STAP-A
			rest := p[1:]
			for len(rest) > 0 {
				if len(rest) < 2 {
					d.broken = true
					return frame{}, false, errors.New("h264: truncated STAP-A")
				}
				n := int(binary.BigEndian.Uint16(rest))
				rest = rest[2:]
				if n == 0 || n > len(rest) {
					d.broken = true
					return frame{}, false, errors.New("h264: bad STAP-A size")
				}
				d.appendNALU(rest[:n])
				rest = rest[n:]
			}
		case 28: // FU-A
			if len(p) < 2 {
				d.broken = true
				return frame{}, false, errors.New("h264: truncated FU-A")
			}
			start, end := p[1]&0x80 != 0, p[1]&0x40 != 0
			if start {
				hdr := p[0]&0xe0 | p[1]&0x1f
				d.fuStart = len(d.buf)
				d.buf = append(d.buf, 0, 0, 0, 0, hdr)
				switch hdr & 0x1f {
				case 5:
					d.key = true
				}
			} else if d.fuStart < 0 {
				d.broken = true
				return frame{}, false, errLost
			}
			d.buf = append(d.buf, p[2:]...)
			if end {
				binary.BigEndian.PutUint32(d.buf[d.fuStart:], uint32(len(d.buf)-d.fuStart-4))
				d.fuStart = -1
			}
		case 25, 26, 27, 29:
			d.broken = true
			return frame{}, false, errors.New("h264: unsupported aggregation packet")
		default:
			if typ == 0 || typ > 23 {
				d.broken = true
				return frame{}, false, errors.New("h264: bad NAL unit type")
			}
			d.appendNALU(p)
		}
		if len(d.buf) > maxFrameSize {
			d.broken = true
			err = errors.New("h264: frame too large")
		}
	}
	if !marker {
		return frame{}, false, err
	}
	ok := !d.broken && d.fuStart < 0 && len(d.buf) > 0
	d.started = false
	if !ok {
		return frame{}, false, err
	}
	return frame{rtpTime: d.ts, key: d.key, data: d.buf}, true, err
}

// vp8Depacketizer rebuilds VP8 frames (RFC 7741).
type vp8Depacketizer struct {
	buf      []byte
	ts       uint32
	building bool
	nextSeq  uint16
	width    int
	height   int
}

// vp8PayloadStart returns the offset of the VP8 payload after the payload
// descriptor and whether this packet starts a frame.
func vp8PayloadStart(p []byte) (off int, start bool, err error) {
	if len(p) < 1 {
		return 0, false, errors.New("vp8: empty payload")
	}
	off = 1
	if p[0]&0x80 != 0 { // X
		if len(p) < 2 {
			return 0, false, errors.New("vp8: truncated descriptor")
		}
		x := p[1]
		off = 2
		if x&0x80 != 0 { // I
			if len(p) <= off {
				return 0, false, errors.New("vp8: truncated descriptor")
			}
			if p[off]&0x80 != 0 {
				off += 2
			} else {
				off++
			}
		}
		if x&0x40 != 0 { // L
			off++
		}
		if x&0x30 != 0 { // T or K
			off++
		}
	}
	if off > len(p) {
		return 0, false, errors.New("vp8: truncated descriptor")
	}
	start = p[0]&0x10 != 0 && p[0]&0x07 == 0
	return off, start, nil
}

func (d *vp8Depacketizer) push(seq uint16, ts uint32, marker bool, p []byte) (frame, bool, error) {
	off, start, err := vp8PayloadStart(p)
	if err != nil {
		d.building = false
		return frame{}, false, err
	}
	if start {
		var lostErr error
		if d.building {
			lostErr = errLost
		}
		d.buf = d.buf[:0]
		d.ts = ts
		d.building = true
		err = lostErr
	} else if !d.building {
		return frame{}, false, nil
	} else if seq != d.nextSeq || ts != d.ts {
		d.building = false
		return frame{}, false, errLost
	}
	d.nextSeq = seq + 1
	d.buf = append(d.buf, p[off:]...)
	if len(d.buf) > maxFrameSize {
		d.building = false
		return frame{}, false, errors.New("vp8: frame too large")
	}
	if !marker {
		return frame{}, false, err
	}
	d.building = false
	if len(d.buf) < 3 {
		return frame{}, false, errors.New("vp8: frame too short")
	}
	key := d.buf[0]&0x01 == 0
	if key {
		if len(d.buf) < 10 || d.buf[3] != 0x9d || d.buf[4] != 0x01 || d.buf[5] != 0x2a {
			return frame{}, false, errors.New("vp8: bad keyframe header")
		}
		d.width = int(binary.LittleEndian.Uint16(d.buf[6:]) & 0x3fff)
		d.height = int(binary.LittleEndian.Uint16(d.buf[8:]) & 0x3fff)
	}
	return frame{rtpTime: d.ts, key: key, data: d.buf}, true, err
}

// opusDepacketizer: every RTP packet is one Opus packet.
type opusDepacketizer struct{}

func (opusDepacketizer) push(_ uint16, ts uint32, _ bool, p []byte) (frame, bool, error) {
	if len(p) == 0 {
		return frame{}, false, nil // DTX keep-alive
	}
	return frame{rtpTime: ts, key: true, data: p}, true, nil
}

// isKeyframeStart reports whether an RTP payload begins a keyframe, so the
// recorder can switch layers or start a session there without decoding.
func isKeyframeStart(codec string, p []byte) bool {
	switch codec {
	case codecH264:
		if len(p) < 1 {
			return false
		}
		switch p[0] & 0x1f {
		case 5, 7:
			return true
		case 24:
			rest := p[1:]
			for len(rest) > 2 {
				n := int(binary.BigEndian.Uint16(rest))
				rest = rest[2:]
				if n == 0 || n > len(rest) {
					return false
				}
				if t := rest[0] & 0x1f; t == 5 || t == 7 {
					return true
				}
				rest = rest[n:]
			}
		case 28:
			return len(p) >= 2 && p[1]&0x80 != 0 && (p[1]&0x1f == 5 || p[1]&0x1f == 7)
		}
		return false
	case codecVP8:
		off, start, err := vp8PayloadStart(p)
		return err == nil && start && off < len(p) && p[off]&0x01 == 0
	}
	return true
}
