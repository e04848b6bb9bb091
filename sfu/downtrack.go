package sfu

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// DownTrack forwards one published Track to one subscriber: it is the
// Track's Sink for that subscriber and the webrtc.TrackLocal on the
// subscriber's connection. Per packet it picks the simulcast layer the
// allocator chose (switching only on a keyframe) and rewrites SSRC, payload
// type, sequence number, timestamp and VP8 picture ids so the subscriber
// sees one continuous stream whatever layer it comes from.
//
// All state is per subscriber: one slow or lossy classroom changes nothing
// for the others.
type DownTrack struct {
	// What the per-packet path (forwardLocked) reads and writes comes
	// first, so that a fan-out touches as few of each classroom's cache
	// lines as it can; the rest follows.
	track  *Track
	kind   Kind
	family codecFamily
	clock  uint32
	queue  *egress
	ready  *atomic.Bool // the subscriber connection is up: writes are not lost
	// up latches ready (under mu): a connection, once up, is never down
	// again for its down-tracks, and the subscriber's flag is a cache line
	// of its own.
	up bool

	closed atomic.Bool
	// paused: the subscriber does not show this picture now (a classroom
	// outside the teacher's tiles): nothing is forwarded, no bandwidth is
	// allocated, and it starts again from a keyframe when shown.
	paused atomic.Bool
	// mode is what the allocator lets through (forwardMode, stills.go).
	mode atomic.Int32

	mu      sync.Mutex
	bound   bool
	stream  *egressStream // the negotiated stream on the subscriber's egress
	ssrc    uint32
	pt      uint8
	stripRE bool // publisher sends RED: its primary is taken out
	// red wraps Opus into RED for a subscriber that negotiated it, with
	// redDistance earlier packets (red.go); nil otherwise. It points to
	// redStore, beside the fields each sound packet reads: a wrapper of
	// its own on the heap was one more cold cache line a packet.
	red         *redWrapper
	redStore    redWrapper
	redDistance atomic.Int32

	current int // layer forwarded now, -1 before the first keyframe
	target  int // layer the allocator wants
	resumes uint32
	resync  bool // next forwarded packet starts a new run of offsets
	started bool

	seqOffset  uint16
	tsOffset   uint32
	refSeq     uint16 // first input sequence number of the current run, or runLookback behind its newest
	lastInSeq  uint16
	lastOutSeq uint16
	lastOutTS  uint32
	lastOutAt  time.Time

	picOffset  uint16
	tl0Offset  uint8
	lastOutPic uint16
	lastOutTL0 uint8
	picSeen    bool

	// Sender report counters (RFC 3550 6.4.1): packets and payload octets
	// sent, padding included.
	sentPackets uint32
	sentOctets  uint32

	currentLayer atomic.Int32
	wanted       atomic.Uint32 // wantedLayers; written under mu
	// framesSent counts video frames forwarded (packets with the marker
	// bit), for the frame rate a subscriber's dashboard row shows.
	framesSent atomic.Uint64

	// inPicture is set while writePicture holds the egress's lock;
	// pictureWake then says a packet asked to wake the sender.
	inPicture, pictureWake bool

	// Bandwidth probing: padding the subscriber's allocator asked for, in
	// bit/s, paid out after each frame from a byte budget.
	padBps     float64
	padBudget  float64
	padLast    time.Time
	padPackets uint64

	id       string // the Track's id: msid track id
	streamID string // the publisher's participant id: msid stream id
	onSwitch func() // counts layer switches; may be nil

	lossQ8   atomic.Uint32 // audio: this stream's fraction lost * 256
	redSince time.Time     // owned by the subscriber's allocator
	maxLayer int           // subscriber's cap, -1 none
	askedAt  time.Time     // last keyframe request for target
	// In stills mode: the keyframe being forwarded (its timestamp).
	stillOpen bool
	stillTS   uint32
	stillAt   time.Time // when the last still started
}

// vp8Rewrite carries the VP8 id rewrite a queued copy of a packet needs.
type vp8Rewrite struct {
	apply     bool
	desc      vp8Descriptor
	pictureID uint16
	tl0PicIdx uint8
}

// keyframeRetry is how long a down-track waits for a keyframe on its target
// layer before asking again (the Track merges the requests of all
// subscribers anyway).
const keyframeRetry = time.Second

func newDownTrack(t *Track, q *egress, ready *atomic.Bool, onSwitch func()) *DownTrack {
	info := t.Info()
	d := &DownTrack{
		track:    t,
		id:       info.ID,
		streamID: info.ParticipantID,
		kind:     info.Kind,
		family:   familyOf(info.Codec.MimeType),
		clock:    info.Codec.ClockRate,
		queue:    q,
		ready:    ready,
		onSwitch: onSwitch,
		current:  -1,
		target:   len(info.Layers) - 1,
		maxLayer: -1,
		resumes:  t.resumes.Load(),
	}
	if d.clock == 0 {
		d.clock = 90000
	}
	d.currentLayer.Store(-1)
	d.noteWantedLocked()
	// One copy of each audio packet until the classroom's first reports
	// say its link is clean: the first seconds of a lossy link are heard.
	d.redDistance.Store(1)
	d.redSince = time.Now()
	return d
}

// redCopies is how many earlier packets each packet sent carries (0
// without RED).
func (d *DownTrack) redCopies() int32 {
	d.mu.Lock()
	on := d.red != nil
	d.mu.Unlock()
	if !on {
		return 0
	}
	return d.redDistance.Load()
}

// redHold is how long an audio stream's loss must stay lower before its
// redundancy comes down: loss comes in bursts.
const redHold = 10 * time.Second

// updateRED sets how many earlier packets the stream repeats from its
// last reported loss, at most maxCopies: raised at once, lowered after
// redHold of less (at once when the link cannot carry them). Only the
// subscriber's allocator calls it.
func (d *DownTrack) updateRED(now time.Time, maxCopies int32) {
	want := redDistanceFor(float64(d.lossQ8.Load()) / 256)
	if want > maxCopies {
		want = maxCopies
		d.redDistance.Store(want)
		d.redSince = now
		return
	}
	switch {
	case want >= d.redDistance.Load():
		d.redDistance.Store(want)
		d.redSince = now
	case now.Sub(d.redSince) >= redHold:
		d.redDistance.Store(want)
		d.redSince = now
	}
}

// ID is the msid track id: the published Track's id.
func (d *DownTrack) ID() string { return d.id }

// RID is empty: a subscriber receives one layer.
func (d *DownTrack) RID() string { return "" }

// StreamID is the msid stream id: the publisher's participant id.
func (d *DownTrack) StreamID() string { return d.streamID }

// Kind is the media kind.
func (d *DownTrack) Kind() webrtc.RTPCodecType {
	if d.kind == KindAudio {
		return webrtc.RTPCodecTypeAudio
	}
	return webrtc.RTPCodecTypeVideo
}

// Bind picks the negotiated codec that carries the track's payload.
func (d *DownTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	codecs := ctx.CodecParameters()
	codec, strip, ok := matchCodec(d.family, d.track.info.Codec.MimeType, codecs)
	if !ok {
		return webrtc.RTPCodecParameters{}, fmt.Errorf("down-track %s: %w", d.id, webrtc.ErrUnsupportedCodec)
	}
	wrapRED, redPT := false, uint8(0)
	if d.family == familyOpus || d.family == familyRED {
		if redCodec, opusPT, ok := redOf(codecs); ok {
			codec, strip = redCodec, d.family == familyRED
			wrapRED, redPT = true, opusPT
		}
	}
	d.mu.Lock()
	d.red = nil
	d.redStore.reset() // bound again: the earlier primaries' holds go
	if wrapRED {
		d.redStore = redWrapper{pt: redPT}
		d.red = &d.redStore
	}
	d.bound = true
	d.stream = newEgressStream(ctx, uint8(codec.PayloadType))
	d.ssrc = uint32(ctx.SSRC())
	d.pt = uint8(codec.PayloadType)
	d.stripRE = strip
	d.resync = true
	d.current = -1
	d.mu.Unlock()
	return codec, nil
}

// redOf finds audio/red and the Opus it carries among negotiated codecs.
func redOf(codecs []webrtc.RTPCodecParameters) (red webrtc.RTPCodecParameters, opusPT uint8, ok bool) {
	var haveRED, haveOpus bool
	for _, c := range codecs {
		switch familyOf(c.MimeType) {
		case familyRED:
			if !haveRED {
				red, haveRED = c, true
			}
		case familyOpus:
			if !haveOpus {
				opusPT, haveOpus = uint8(c.PayloadType), true
			}
		}
	}
	return red, opusPT, haveRED && haveOpus
}

// matchCodec finds the negotiated codec for a track's codec: the same mime
// type (H.264 with packetization-mode=1 preferred), or plain Opus for a RED
// track when the subscriber did not take RED.
func matchCodec(f codecFamily, mime string, codecs []webrtc.RTPCodecParameters) (c webrtc.RTPCodecParameters, stripRED, ok bool) {
	var fallback *webrtc.RTPCodecParameters
	for i := range codecs {
		cc := &codecs[i]
		if !strings.EqualFold(cc.MimeType, mime) {
			if f == familyRED && familyOf(cc.MimeType) == familyOpus && fallback == nil {
				fallback = cc
			}
			continue
		}
		if f == familyH264 && !strings.Contains(cc.SDPFmtpLine, "packetization-mode=1") {
			if fallback == nil {
				fallback = cc
			}
			continue
		}
		return *cc, false, true
	}
	if fallback != nil {
		return *fallback, f == familyRED, true
	}
	return webrtc.RTPCodecParameters{}, false, false
}

// Unbind stops writing to the connection.
func (d *DownTrack) Unbind(webrtc.TrackLocalContext) error {
	d.mu.Lock()
	d.bound = false
	d.stream = nil
	d.mu.Unlock()
	return nil
}

// egressStream is the down-track's stream on the egress, nil when unbound.
func (d *DownTrack) egressStream() *egressStream {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stream
}

// close detaches the down-track for good.
func (d *DownTrack) close() { d.closed.Store(true) }

// wantedLayers is the layers whose packets the down-track takes: the one
// it forwards and the one it is switching to (video), or every one.
func (d *DownTrack) wantedLayers() uint32 { return d.wanted.Load() }

// noteWantedLocked sets wanted from the current and target layers and
// reports whether it changed (then the caller tells the track, after
// letting go of d.mu). The caller holds d.mu.
func (d *DownTrack) noteWantedLocked() bool {
	want := ^uint32(0)
	if d.kind == KindVideo {
		want = 0
		for _, l := range [2]int{d.current, d.target} {
			if l >= 0 && l < 32 {
				want |= 1 << l
			}
		}
	}
	if d.wanted.Load() == want {
		return false
	}
	d.wanted.Store(want)
	return true
}

// CurrentLayer returns the layer forwarded now, -1 when none yet.
func (d *DownTrack) CurrentLayer() int { return int(d.currentLayer.Load()) }

// setTarget sets the layer the allocator wants (clamped to the cap); when it
// differs from the current one it asks for a keyframe there.
func (d *DownTrack) setTarget(layer int) (changed bool) {
	d.mu.Lock()
	if d.maxLayer >= 0 && layer > d.maxLayer {
		layer = d.maxLayer
	}
	if layer < 0 {
		layer = 0
	}
	changed = layer != d.target
	d.target = layer
	ask := changed && layer != d.current && d.kind == KindVideo
	if ask {
		d.askedAt = time.Now()
	}
	wantsOther := d.noteWantedLocked()
	d.mu.Unlock()
	if wantsOther {
		d.track.sinkLayersChanged()
	}
	if ask {
		d.track.RequestKeyframe(layer)
	}
	return changed
}

func (d *DownTrack) setMaxLayer(layer int) {
	d.mu.Lock()
	d.maxLayer = layer
	d.mu.Unlock()
}

// setPaused stops (or starts again) forwarding a video track to this
// subscriber without renegotiating; it reports whether it changed.
func (d *DownTrack) setPaused(paused bool) bool {
	if d.kind != KindVideo || d.paused.Swap(paused) == paused {
		return false
	}
	if !paused {
		d.requestKeyframe()
	}
	return true
}

func (d *DownTrack) maxLayerCap() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.maxLayer
}

// requestKeyframe asks for a keyframe on the current layer (a subscriber's
// PLI or FIR).
func (d *DownTrack) requestKeyframe() {
	l := d.CurrentLayer()
	if l < 0 {
		d.mu.Lock()
		l = d.target
		d.mu.Unlock()
	}
	d.track.RequestKeyframe(l)
}

// WriteRTP implements Sink. It runs on a publisher's read goroutine (one per
// layer), takes only this down-track's lock, and never blocks: the packet
// is copied into the subscriber's send queue.
func (d *DownTrack) WriteRTP(layer int, pkt *rtp.Packet) {
	d.writeShared(layer, pkt, nil, nil, time.Now())
}

// writeShared is WriteRTP with the track's shared copy of pkt's payload
// (nil: the egress copies what it queues), the RED payloads built for it
// so far (nil: none shared) and the fan-out's time (one clock read for
// every classroom).
func (d *DownTrack) writeShared(layer int, pkt *rtp.Packet, body *sharedPayload, builds *redBuilds, now time.Time) {
	if d.closed.Load() {
		return
	}
	d.mu.Lock()
	askLayer := d.forwardLocked(layer, pkt, body, builds, now)
	wantsOther := d.noteWantedLocked()
	d.mu.Unlock()
	d.afterForward(wantsOther, askLayer)
}

// writePicture forwards a held picture's packets (frames.go) in one visit:
// the down-track's lock and its egress's are taken once for the picture,
// not once for each packet, and the sender is woken once, after its last.
func (d *DownTrack) writePicture(layer int, f *pendingFrame) {
	if d.closed.Load() {
		return
	}
	askLayer := -1
	d.mu.Lock()
	d.queue.mu.Lock()
	d.inPicture = true
	for i := 0; i < f.n; i++ {
		if ask := d.forwardLocked(layer, &f.pkts[i], f.bodies[i], nil, f.nows[i]); ask >= 0 {
			askLayer = ask
		}
	}
	wake := d.pictureWake
	d.inPicture, d.pictureWake = false, false
	d.queue.mu.Unlock()
	wantsOther := d.noteWantedLocked()
	d.mu.Unlock()
	if wake {
		d.queue.kick()
	}
	d.afterForward(wantsOther, askLayer)
}

// afterForward ends a fan-out's visit, out of d.mu: the down-track moves
// to the sink lists of the layers it wants now when they changed
// (wantsOther), and asks for a keyframe on askLayer (>= 0).
func (d *DownTrack) afterForward(wantsOther bool, askLayer int) {
	if wantsOther {
		d.track.sinkLayersChanged()
	}
	if askLayer >= 0 {
		d.track.RequestKeyframe(askLayer)
	}
}

// enqueue queues a packet on the egress (egress.push); within
// writePicture, which holds the egress's lock, the wake-up waits for the
// picture's end.
func (d *DownTrack) enqueue(hdr *rtp.Header, payload []byte, body *sharedPayload, vp8 *vp8Rewrite, wake bool) bool {
	if !d.inPicture {
		return d.queue.push(d.stream, hdr, payload, body, vp8, wake)
	}
	queued, backlog := d.queue.pushLocked(d.stream, hdr, payload, body, vp8)
	d.pictureWake = d.pictureWake || wake || backlog
	return queued
}

// runLookback is how far behind a run's newest packet a late one (a
// publisher's retransmission) may be and still be forwarded.
const runLookback = 8192

// forwardLocked does the per-packet work under d.mu and returns a layer to
// request a keyframe on, or -1. body, when not nil, holds pkt's payload;
// builds, when not nil, the RED payloads built for it so far; now is when
// it came.
func (d *DownTrack) forwardLocked(layer int, pkt *rtp.Packet, body *sharedPayload, builds *redBuilds, now time.Time) int {
	if !d.up {
		d.up = d.ready.Load()
	}
	if !d.bound || !d.up {
		// Packets written before the connection is up are lost; wait, and
		// start from a keyframe once it is.
		return -1
	}
	if d.paused.Load() || forwardMode(d.mode.Load()) == forwardNone {
		// Shown again later: a new run, from a keyframe.
		d.current = -1
		d.currentLayer.Store(-1)
		return -1
	}
	if r := d.track.resumes.Load(); r != d.resumes {
		// Unmuted: start a new run, from a keyframe for video.
		d.resumes = r
		d.resync = true
		if d.kind == KindVideo {
			d.current = -1
		}
	}
	if d.kind == KindVideo && layer != d.current {
		if layer != d.target {
			return -1
		}
		if len(pkt.Payload) == 0 || !isKeyframe(d.family, pkt.Payload) {
			if now.Sub(d.askedAt) >= keyframeRetry {
				d.askedAt = now
				return d.target
			}
			return -1
		}
		if d.current >= 0 && d.onSwitch != nil {
			d.onSwitch()
		}
		d.current = layer
		d.currentLayer.Store(int32(layer))
		d.resync = true
	}
	if d.kind == KindVideo && forwardMode(d.mode.Load()) == forwardStills {
		if ok, ask := d.stillsFilterLocked(layer, pkt.Timestamp, pkt.Payload, now); !ok {
			if pkt.Marker && d.padBps > 0 {
				d.padLocked(now) // probing goes on between stills
			}
			return ask
		}
	}
	if d.kind == KindAudio && d.current != layer {
		d.current = layer
		d.currentLayer.Store(int32(layer))
	}

	payload := pkt.Payload
	if len(payload) == 0 {
		// Padding-only (bandwidth probes): not forwarded; keep the output
		// contiguous by shifting the offset when it came in order.
		if !d.resync && pkt.SequenceNumber == d.lastInSeq+1 {
			d.seqOffset--
			d.lastInSeq = pkt.SequenceNumber
		}
		return -1
	}

	var vp8 vp8Rewrite
	if d.family == familyVP8 {
		if desc, ok := parseVP8(payload); ok && desc.hasPictureID {
			vp8.desc = desc
			vp8.apply = true
		}
	}

	if d.resync {
		d.resync = false
		if d.red != nil {
			d.red.reset()
		}
		if !d.started {
			d.started = true
			d.seqOffset = 0
			d.tsOffset = 0
			d.lastOutSeq = pkt.SequenceNumber - 1
			d.lastOutTS = pkt.Timestamp
			d.lastOutAt = now
		} else {
			d.seqOffset = d.lastOutSeq + 1 - pkt.SequenceNumber
			step := uint32(now.Sub(d.lastOutAt).Seconds() * float64(d.clock))
			if step == 0 {
				step = 1
			}
			d.tsOffset = d.lastOutTS + step - pkt.Timestamp
		}
		d.refSeq = pkt.SequenceNumber
		d.lastInSeq = pkt.SequenceNumber - 1
		if vp8.apply {
			if d.picSeen {
				d.picOffset = (d.lastOutPic + 1 - vp8.desc.pictureID) & vp8PictureIDMask
				d.tl0Offset = d.lastOutTL0 + 1 - vp8.desc.tl0PicIdx
			} else {
				d.picOffset, d.tl0Offset = 0, 0
			}
		}
	} else if int16(pkt.SequenceNumber-d.refSeq) < 0 {
		return -1 // from before the current run: belongs to an old layer or mute
	}

	outSeq := pkt.SequenceNumber + d.seqOffset
	outTS := pkt.Timestamp + d.tsOffset
	if int16(pkt.SequenceNumber-d.lastInSeq) > 0 {
		d.lastInSeq = pkt.SequenceNumber
		// refSeq follows a long run: compared as int16, a run's packets
		// would otherwise read as older than its start once 32,768 had
		// passed, and the next 32,768 were dropped (a classroom lost the
		// teacher's sound from the 11th minute to the 22nd).
		if uint16(d.lastInSeq-d.refSeq) > 2*runLookback {
			d.refSeq = d.lastInSeq - runLookback
		}
	}
	if int16(outSeq-d.lastOutSeq) > 0 {
		d.lastOutSeq = outSeq
		d.lastOutTS = outTS
		d.lastOutAt = now
	}
	if vp8.apply {
		vp8.pictureID = (vp8.desc.pictureID + d.picOffset) & vp8PictureIDMask
		vp8.tl0PicIdx = vp8.desc.tl0PicIdx + d.tl0Offset
		if !d.picSeen || int16((vp8.pictureID-d.lastOutPic)<<1) > 0 {
			d.lastOutPic = vp8.pictureID
			d.lastOutTL0 = vp8.tl0PicIdx
			d.picSeen = true
		}
	}

	pt := d.pt
	if d.stripRE {
		_, primary, err := redPrimary(payload)
		if err != nil || len(primary) == 0 {
			return -1
		}
		payload = primary
	}
	if d.red != nil {
		red := d.red.wrap(outTS, pkt.SequenceNumber, payload, int(d.redDistance.Load()), d.stripRE, builds)
		if red == nil {
			return -1
		}
		payload, body = red.buf[:red.n], red
	}
	hdr := rtp.Header{
		Version:        2,
		Marker:         pkt.Marker,
		PayloadType:    pt,
		SequenceNumber: outSeq,
		Timestamp:      outTS,
		SSRC:           d.ssrc,
	}
	if d.enqueue(&hdr, payload, body, &vp8, pkt.Marker || d.kind != KindVideo) {
		d.sentPackets++
		d.sentOctets += uint32(len(payload))
		if pkt.Marker && d.kind == KindVideo {
			d.framesSent.Add(1)
		}
	}
	if d.red != nil {
		body.release() // the wrapper's hold: the ring and the RED history keep theirs
	}
	if pkt.Marker && d.padBps > 0 && d.kind == KindVideo {
		d.padLocked(now)
	}
	return -1
}

// Padding packets probe a subscriber's link for more bandwidth: the
// congestion controller estimates at most 1.5 times what it sees arrive,
// so a classroom forwarded a small layer could never learn that a bigger
// one fits. A padding packet is a payload-less RTP packet of the video
// stream (the receiver drops it after counting it), sent between frames.
const (
	padSize          = 255 // the most RTP padding one packet can carry
	maxPadsPerFrame  = 16
	padBudgetCeiling = maxPadsPerFrame * (padSize + 12)
)

// setPadding sets the probe rate in bit/s (0 stops probing).
func (d *DownTrack) setPadding(bps float64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if bps > 0 && d.padBps == 0 {
		d.padLast = time.Now()
		d.padBudget = 0
	}
	d.padBps = bps
}

// paddingSent returns how many padding packets the down-track has sent.
func (d *DownTrack) paddingSent() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.padPackets
}

// padLocked sends the padding the budget allows after a frame's last
// packet. Each padding packet takes the next output sequence number, so
// the offset moves on by one, and the run restarts after it: an input
// packet older than the padding (a late retransmission from the publisher)
// would map onto a number already used, so it is not forwarded.
func (d *DownTrack) padLocked(now time.Time) {
	d.padBudget += d.padBps / 8 * now.Sub(d.padLast).Seconds()
	d.padLast = now
	d.padBudget = min(d.padBudget, padBudgetCeiling)
	var payload [padSize]byte
	payload[padSize-1] = padSize
	n := 0
	for ; d.padBudget >= padSize+12 && n < maxPadsPerFrame; n++ {
		d.padBudget -= padSize + 12
		d.lastOutSeq++
		d.seqOffset++
		hdr := rtp.Header{Version: 2, Padding: true, PayloadType: d.pt, SequenceNumber: d.lastOutSeq, Timestamp: d.lastOutTS, SSRC: d.ssrc}
		if d.enqueue(&hdr, payload[:], nil, nil, true) {
			d.sentPackets++
			d.sentOctets += padSize
		}
	}
	if n > 0 {
		d.refSeq = d.lastInSeq + 1
		d.padPackets += uint64(n)
	}
}

// senderReport describes what the down-track has sent, for the sender
// report a subscriber's client needs for lip sync and round-trip times. ok
// is false before the first packet.
func (d *DownTrack) senderReport(now time.Time) (sr rtcp.SenderReport, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.started || !d.bound {
		return sr, false
	}
	// The RTP clock now, extrapolated from the last packet sent.
	elapsed := uint32(now.Sub(d.lastOutAt).Seconds() * float64(d.clock))
	return rtcp.SenderReport{
		SSRC:        d.ssrc,
		NTPTime:     ntpTime(now),
		RTPTime:     d.lastOutTS + elapsed,
		PacketCount: d.sentPackets,
		OctetCount:  d.sentOctets,
	}, true
}
