package ingest

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/pion/rtp"

	"podium/sfu"
)

// The codecs every source publishes, whatever the camera sends.
var (
	h264Codec = sfu.Codec{
		MimeType:    "video/H264",
		ClockRate:   90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
	}
	opusCodec = sfu.Codec{MimeType: "audio/opus", ClockRate: 48000, Channels: 2}
)

const (
	// maxPacketSize bounds every RTP packet a source emits (header
	// included), leaving room for SRTP, TURN and tunnel overheads on the
	// way to a rural classroom.
	maxPacketSize = 1200
	rtpHeaderSize = 12
	maxPayload    = maxPacketSize - rtpHeaderSize
)

// H.264 NAL unit types the forwarder cares about.
const (
	naluSlice = 1
	naluIDR   = 5
	naluSEI   = 6
	naluSPS   = 7
	naluPPS   = 8
	naluAUD   = 9
	naluFUA   = 28
)

func randomUint32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// h264Packetizer turns access units into RTP packets (RFC 6184,
// packetization-mode=1: single NAL unit or FU-A) without allocating: the
// packet and the fragment buffer are reused, which is allowed because sinks
// copy what they keep.
type h264Packetizer struct {
	pkt rtp.Packet
	buf [maxPayload]byte
}

func newH264Packetizer() *h264Packetizer {
	p := &h264Packetizer{}
	p.pkt.Header = rtp.Header{Version: 2, PayloadType: 96, SSRC: randomUint32(), SequenceNumber: uint16(randomUint32())}
	return p
}

// send emits the NAL units of one picture with one timestamp; the marker is
// set on the picture's last packet. Empty NAL units are skipped.
func (p *h264Packetizer) send(nalus [][]byte, ts uint32, emit func(*rtp.Packet)) {
	last := len(nalus) - 1
	for last >= 0 && len(nalus[last]) == 0 {
		last--
	}
	p.pkt.Timestamp = ts
	for i := 0; i <= last; i++ {
		nalu := nalus[i]
		if len(nalu) == 0 {
			continue
		}
		if len(nalu) <= maxPayload {
			p.pkt.Marker = i == last
			p.pkt.Payload = nalu
			emit(&p.pkt)
			p.pkt.SequenceNumber++
			continue
		}
		// FU-A: the NAL header's NRI and type move into the FU indicator
		// and header; each fragment carries up to maxPayload-2 bytes.
		indicator := nalu[0]&0x60 | naluFUA
		typ := nalu[0] & 0x1f
		body := nalu[1:]
		start := true
		for len(body) > 0 {
			n := min(len(body), maxPayload-2)
			end := n == len(body)
			header := typ
			if start {
				header |= 0x80
			}
			if end {
				header |= 0x40
			}
			p.buf[0], p.buf[1] = indicator, header
			copy(p.buf[2:], body[:n])
			p.pkt.Payload = p.buf[:2+n]
			p.pkt.Marker = end && i == last
			emit(&p.pkt)
			p.pkt.SequenceNumber++
			body = body[n:]
			start = false
		}
	}
}

// videoOut is a source's published H.264 track. It lives as long as the
// source (across camera restarts), so its SSRC and sequence numbers never
// jump; each RTSP session feeds it access units with rewritten timestamps.
type videoOut struct {
	track *sfu.Track

	mu         sync.Mutex // serializes writes: a session's packets, a restart's newSession
	pz         *h264Packetizer
	sps, pps   []byte
	scratch    [][]byte
	group      [][]byte // SPS, PPS, then an IDR picture's slices (reused)
	lastTS     uint32
	sentAny    bool
	waitingIDR bool

	frames  atomic.Uint64
	dropped atomic.Uint64
}

func newVideoOut(track *sfu.Track) *videoOut {
	return &videoOut{track: track, pz: newH264Packetizer(), waitingIDR: true}
}

func (v *videoOut) emit(pkt *rtp.Packet) { v.track.WriteRTP(0, pkt) }

// newSession forgets the previous session's decoder state: pictures are
// dropped until an IDR arrives, because P-frames of a new session reference
// pictures subscribers never got. sps and pps come from the SDP, if any.
func (v *videoOut) newSession(sps, pps []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.sps = cloneBytes(sps)
	v.pps = cloneBytes(pps)
	v.waitingIDR = true
}

// auResult says what writeAU did with an access unit.
type auResult int

const (
	auSent auResult = iota
	auWaitingIDR
	auNoParams // an IDR arrived but SPS/PPS are not known yet
	auEmpty
)

// writeAU forwards one access unit: parameter sets are remembered and sent
// right before every IDR, AUDs dropped. Only what the camera sends now is
// written into the shared track: never a picture again (every subscriber
// and the recorder would get it, out of its place in the stream).
func (v *videoOut) writeAU(au [][]byte, ts uint32) auResult {
	v.mu.Lock()
	defer v.mu.Unlock()
	idr := false
	out := v.scratch[:0]
	for _, n := range au {
		if len(n) == 0 || n[0]&0x80 != 0 { // forbidden_zero_bit set: not H.264
			continue
		}
		switch n[0] & 0x1f {
		case naluSPS:
			if !bytesEqual(v.sps, n) {
				v.sps = cloneBytes(n)
			}
		case naluPPS:
			if !bytesEqual(v.pps, n) {
				v.pps = cloneBytes(n)
			}
		case naluAUD:
		case naluIDR:
			idr = true
			out = append(out, n)
		case 0, 24, 25, 26, 27, 28, 29, 30, 31:
			// unspecified or RTP aggregation types: never valid inside an access unit
		default:
			out = append(out, n)
		}
	}
	v.scratch = out[:0]
	if len(out) == 0 {
		return auEmpty
	}
	if v.waitingIDR && !idr {
		v.dropped.Add(1)
		return auWaitingIDR
	}
	if idr {
		if v.sps == nil || v.pps == nil {
			v.dropped.Add(1)
			return auNoParams
		}
		v.waitingIDR = false
		v.group = append(v.group[:0], v.sps, v.pps)
		v.group = append(v.group, out...)
		v.sendLocked(v.group, ts)
	} else {
		v.sendLocked(out, ts)
	}
	v.frames.Add(1)
	return auSent
}

func (v *videoOut) sendLocked(nalus [][]byte, ts uint32) {
	v.pz.send(nalus, ts, v.emit)
	v.lastTS = ts
	v.sentAny = true
}

// lastTimestamp returns the timestamp of the last picture sent, so the next
// session's timeline continues after it.
func (v *videoOut) lastTimestamp() (uint32, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.lastTS, v.sentAny
}

// audioOut is a source's published Opus track, continuous across camera
// restarts like videoOut.
type audioOut struct {
	track *sfu.Track

	mu      sync.Mutex
	pkt     rtp.Packet
	packets atomic.Uint64
}

func newAudioOut(track *sfu.Track) *audioOut {
	a := &audioOut{track: track}
	a.pkt.Header = rtp.Header{Version: 2, PayloadType: 111, SSRC: randomUint32(), SequenceNumber: uint16(randomUint32())}
	return a
}

// write forwards one Opus packet; oversized ones are dropped (Opus
// packets are a few hundred bytes at most).
func (a *audioOut) write(payload []byte, ts uint32) {
	if len(payload) == 0 || len(payload) > maxPayload {
		return
	}
	a.mu.Lock()
	a.pkt.Timestamp = ts
	a.pkt.Payload = payload
	a.pkt.Marker = false
	a.track.WriteRTP(0, &a.pkt)
	a.pkt.SequenceNumber++
	a.pkt.Payload = nil
	a.mu.Unlock()
	a.packets.Add(1)
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }
