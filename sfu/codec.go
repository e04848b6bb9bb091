package sfu

import "strings"

// Codec payload inspection for forwarding decisions: where a frame starts,
// whether it is a keyframe (a down-track may only switch simulcast layers or
// resume after a mute on one), and the VP8 picture ids a switch must keep
// continuous. Everything here reads publisher bytes, so it is bounds-checked
// and fuzzed.

// vp8Descriptor is the part of a VP8 RTP payload descriptor (RFC 7741
// section 4.2) that a forwarder reads or rewrites.
type vp8Descriptor struct {
	size       int  // descriptor length in bytes
	frameStart bool // S bit set and partition index 0
	keyframe   bool // frameStart and the VP8 payload header's P bit clear

	hasPictureID  bool
	longPictureID bool // 15-bit (M bit) rather than 7-bit
	pictureIDAt   int  // byte offset of the picture id
	pictureID     uint16

	hasTL0PicIdx bool
	tl0PicIdxAt  int
	tl0PicIdx    uint8
}

// parseVP8 reads a VP8 payload descriptor. ok is false for a payload too
// short for the descriptor it announces.
func parseVP8(p []byte) (d vp8Descriptor, ok bool) {
	if len(p) < 1 {
		return d, false
	}
	x := p[0]&0x80 != 0
	s := p[0]&0x10 != 0
	pid := p[0] & 0x07
	i := 1
	if x {
		if len(p) < 2 {
			return d, false
		}
		ext := p[1]
		i = 2
		if ext&0x80 != 0 { // I: picture id
			if len(p) < i+1 {
				return d, false
			}
			d.hasPictureID = true
			d.pictureIDAt = i
			if p[i]&0x80 != 0 {
				if len(p) < i+2 {
					return d, false
				}
				d.longPictureID = true
				d.pictureID = uint16(p[i]&0x7f)<<8 | uint16(p[i+1])
				i += 2
			} else {
				d.pictureID = uint16(p[i] & 0x7f)
				i++
			}
		}
		if ext&0x40 != 0 { // L: TL0PICIDX
			if len(p) < i+1 {
				return d, false
			}
			d.hasTL0PicIdx = true
			d.tl0PicIdxAt = i
			d.tl0PicIdx = p[i]
			i++
		}
		if ext&0x30 != 0 { // T or K: TID/Y/KEYIDX
			if len(p) < i+1 {
				return d, false
			}
			i++
		}
	}
	d.size = i
	d.frameStart = s && pid == 0
	if d.frameStart {
		if len(p) < i+1 {
			return d, false
		}
		d.keyframe = p[i]&0x01 == 0
	}
	return d, true
}

// vp8PictureIDMask: a forwarder always sends 15-bit picture ids, so ids
// stay continuous across layers that send short (7-bit) ones.
const vp8PictureIDMask = 0x7fff

// rewriteVP8 copies src into dst with the picture id and TL0PICIDX
// replaced, widening a 7-bit picture id to 15 bits (one byte longer). It
// returns the bytes written, or 0 when dst is too small.
func rewriteVP8(dst, src []byte, d *vp8Descriptor, pictureID uint16, tl0 uint8) int {
	if !d.hasPictureID || d.longPictureID {
		if len(dst) < len(src) {
			return 0
		}
		n := copy(dst, src)
		writeVP8Ids(dst[:n], d, pictureID, tl0)
		return n
	}
	if len(dst) < len(src)+1 || d.pictureIDAt >= len(src) {
		return 0
	}
	at := d.pictureIDAt
	copy(dst, src[:at])
	dst[at] = 0x80 | byte(pictureID>>8)&0x7f
	dst[at+1] = byte(pictureID)
	n := at + 2 + copy(dst[at+2:], src[at+1:])
	if d.hasTL0PicIdx {
		dst[d.tl0PicIdxAt+1] = tl0
	}
	return n
}

// writeVP8Ids rewrites the picture id and TL0PICIDX of a descriptor parsed
// by parseVP8 from the same bytes.
func writeVP8Ids(p []byte, d *vp8Descriptor, pictureID uint16, tl0 uint8) {
	if d.hasPictureID {
		if d.longPictureID && d.pictureIDAt+1 < len(p) {
			p[d.pictureIDAt] = 0x80 | byte(pictureID>>8)&0x7f
			p[d.pictureIDAt+1] = byte(pictureID)
		} else if d.pictureIDAt < len(p) {
			p[d.pictureIDAt] = byte(pictureID) & 0x7f
		}
	}
	if d.hasTL0PicIdx && d.tl0PicIdxAt < len(p) {
		p[d.tl0PicIdxAt] = tl0
	}
}

// H.264 NAL unit types (RFC 6184) that matter for forwarding.
const (
	h264NALIDR   = 5
	h264NALSPS   = 7
	h264NALSTAPA = 24
	h264NALFUA   = 28
)

// h264Keyframe reports whether an H.264 RTP payload starts a keyframe: an
// IDR slice or an SPS, alone, aggregated (STAP-A) or as the first fragment
// of a FU-A.
func h264Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	switch t := p[0] & 0x1f; {
	case t == h264NALIDR || t == h264NALSPS:
		return true
	case t == h264NALSTAPA:
		for i := 1; i+2 < len(p); {
			n := int(p[i])<<8 | int(p[i+1])
			if n == 0 || i+2+n > len(p) {
				return false
			}
			if nt := p[i+2] & 0x1f; nt == h264NALIDR || nt == h264NALSPS {
				return true
			}
			i += 2 + n
		}
	case t == h264NALFUA:
		if len(p) < 2 {
			return false
		}
		start := p[1]&0x80 != 0
		nt := p[1] & 0x1f
		return start && (nt == h264NALIDR || nt == h264NALSPS)
	}
	return false
}

// codecFamily says how a forwarder treats a codec's payload.
type codecFamily int

const (
	familyOther codecFamily = iota
	familyVP8
	familyH264
	familyOpus
	familyRED
)

func familyOf(mimeType string) codecFamily {
	switch {
	case strings.EqualFold(mimeType, "video/VP8"):
		return familyVP8
	case strings.EqualFold(mimeType, "video/H264"):
		return familyH264
	case strings.EqualFold(mimeType, "audio/opus"):
		return familyOpus
	case strings.EqualFold(mimeType, "audio/red"):
		return familyRED
	}
	return familyOther
}

// isKeyframe reports whether a payload starts a keyframe; codecs the sfu
// cannot inspect count every packet as one (they are forwarded unswitched).
func isKeyframe(f codecFamily, payload []byte) bool {
	switch f {
	case familyVP8:
		d, ok := parseVP8(payload)
		return ok && d.keyframe
	case familyH264:
		return h264Keyframe(payload)
	}
	return true
}
