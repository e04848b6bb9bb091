package sfu

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// Kind is the media kind of a track.
type Kind string

const (
	KindAudio Kind = "audio"
	KindVideo Kind = "video"
)

// Source says what a track shows, so clients can lay it out and the recorder
// can name it.
type Source string

const (
	SourceCamera      Source = "camera"
	SourceMicrophone  Source = "microphone"
	SourceScreen      Source = "screen"
	SourceScreenAudio Source = "screen_audio"
	SourceWhiteboard  Source = "whiteboard"
)

// Codec describes the RTP payload a track carries. It mirrors the fields of
// webrtc.RTPCodecCapability so that non-WebRTC publishers (RTSP ingest) need
// not import pion/webrtc.
type Codec struct {
	MimeType    string `json:"mimeType"`
	ClockRate   uint32 `json:"clockRate"`
	Channels    uint16 `json:"channels,omitempty"`
	SDPFmtpLine string `json:"sdpFmtpLine,omitempty"`
}

// TrackInfo is the public description of a published track, as sent to
// clients and shown in the API.
type TrackInfo struct {
	ID            string `json:"id"`
	ParticipantID string `json:"participantId"`
	Name          string `json:"name,omitempty"`
	Kind          Kind   `json:"kind"`
	Source        Source `json:"source"`
	Codec         Codec  `json:"codec"`
	// Layers lists the simulcast layers from lowest to highest quality
	// (RIDs such as "q", "h", "f"). A track without simulcast has one
	// layer named "".
	Layers []string `json:"layers"`
	Muted  bool     `json:"muted"`
}

// Sink receives the packets of a published track: a WebRTC down-track, the
// recorder, a cascade relay.
type Sink interface {
	// WriteRTP is called on the publisher's read goroutine for every packet of
	// every layer (layer indexes TrackInfo.Layers). It must not block and must
	// not keep pkt or its payload after it returns: copy what it needs.
	WriteRTP(layer int, pkt *rtp.Packet)
}

// KeyframeRequester asks the publisher of a track for a keyframe on one layer
// (a PLI to a browser; an RTSP camera cannot be asked, and only counts it).
type KeyframeRequester func(layer int)

// keyframeInterval is the shortest time between two keyframe requests sent to
// a publisher for one layer. Requests from many subscribers inside this window
// are merged into one, so a hundred classrooms joining at once cause one
// keyframe, not a hundred.
const keyframeInterval = 500 * time.Millisecond

// Track is one published track (an up-track): the fan-out point between one
// publisher and its sinks. The hot path (WriteRTP) takes no lock and
// allocates nothing: sinks are held in a copy-on-write slice.
type Track struct {
	info TrackInfo

	sinks atomic.Pointer[[]sinkEntry]
	// layerSinks holds, per layer, the sinks its packets go to: every sink
	// but the down-tracks, which take only the layers they forward or are
	// switching to (wantedLayers). Rebuilt, copy-on-write, when a sink
	// comes or goes or a down-track's layers change. Without it, each
	// packet of a simulcast's smaller layers (a third of what a teacher's
	// browser sends) visited every classroom's down-track to be refused
	// there.
	layerSinks []atomic.Pointer[[]sinkEntry]

	mu           sync.Mutex // guards sink list changes, muted and lastKeyframe
	muted        bool
	lastKeyframe []time.Time
	// keyframeDeferred marks layers with a merged request waiting for the
	// end of their window.
	keyframeDeferred []bool
	// requestKFrame reaches the publisher feeding the track now; a
	// reconnecting WHIP encoder that takes the track over replaces it.
	requestKFrame KeyframeRequester

	packets atomic.Uint64
	bytes   atomic.Uint64
	closed  atomic.Bool

	// forwarding is false while the track is muted: packets are dropped
	// before any sink sees them.
	forwarding atomic.Bool
	// resumes counts unmutes and hand-overs to a new publisher; a
	// down-track that sees it change re-syncs (waits for a keyframe, keeps
	// its output sequence contiguous).
	resumes atomic.Uint32
	// layerBytes counts received bytes per layer, for the allocator's rates.
	layerBytes []atomic.Uint64
	// redBuilds is each layer's RED payloads of the packet being fanned
	// out (red.go), for its read goroutine; sound only.
	redBuilds []redBuilds
	// frames is each layer's picture held for the down-tracks until it is
	// complete (frames.go), for its read goroutine; video only.
	frames []pendingFrame
	// fanOuts serialises each layer's fan-outs, which own its redBuilds
	// and frames: a layer has one read goroutine, but when a reconnecting
	// publisher takes the track over, the old one's last packet may still
	// be on its way through while the new one's first comes. Uncontended
	// otherwise.
	fanOuts []sync.Mutex
}

type sinkEntry struct {
	id     string
	sink   Sink
	shared sharedSink // the sink, when it takes the shared payload
}

// NewTrack makes a published track. requestKeyframe may be nil when the
// publisher cannot be asked (then keyframe requests are dropped).
func NewTrack(info TrackInfo, requestKeyframe KeyframeRequester) *Track {
	if len(info.Layers) == 0 {
		info.Layers = []string{""}
	}
	t := &Track{
		info:             info,
		lastKeyframe:     make([]time.Time, len(info.Layers)),
		keyframeDeferred: make([]bool, len(info.Layers)),
		requestKFrame:    requestKeyframe,
		muted:            info.Muted,
		layerBytes:       make([]atomic.Uint64, len(info.Layers)),
		layerSinks:       make([]atomic.Pointer[[]sinkEntry], len(info.Layers)),
		fanOuts:          make([]sync.Mutex, len(info.Layers)),
	}
	switch info.Kind {
	case KindAudio:
		t.redBuilds = make([]redBuilds, len(info.Layers))
	case KindVideo:
		t.frames = make([]pendingFrame, len(info.Layers))
	}
	t.forwarding.Store(!info.Muted)
	empty := []sinkEntry{}
	t.sinks.Store(&empty)
	for l := range t.layerSinks {
		t.layerSinks[l].Store(&empty)
	}
	return t
}

// ID returns the track's id, unique in its room.
func (t *Track) ID() string { return t.info.ID }

// Info returns a snapshot of the track's description.
func (t *Track) Info() TrackInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	info := t.info
	info.Layers = append([]string(nil), t.info.Layers...)
	info.Muted = t.muted
	return info
}

// Kind returns whether the track is audio or video.
func (t *Track) Kind() Kind { return t.info.Kind }

// LayerIndex returns the index of the simulcast layer with the given RID, or
// -1 when there is none.
func (t *Track) LayerIndex(rid string) int {
	for i, l := range t.info.Layers {
		if l == rid {
			return i
		}
	}
	return -1
}

// SetMuted records the track's mute state. A muted track forwards nothing to
// its sinks (a teacher's mute must silence a classroom at once, whatever its
// browser does); unmuting asks the publisher for a keyframe on every layer so
// subscribers see a picture again without waiting for the next one.
func (t *Track) SetMuted(muted bool) {
	t.mu.Lock()
	was := t.muted
	t.muted = muted
	t.mu.Unlock()
	if was == muted {
		return
	}
	if !muted {
		t.resumes.Add(1)
	}
	t.forwarding.Store(!muted)
	if !muted && t.info.Kind == KindVideo {
		for l := range t.info.Layers {
			t.RequestKeyframe(l)
		}
	}
}

// Muted reports whether the track is muted (not forwarded).
func (t *Track) Muted() bool { return !t.forwarding.Load() }

// AddSink attaches a sink under an id unique for this track; a second sink
// with the same id replaces the first.
func (t *Track) AddSink(id string, s Sink) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.sinks.Load()
	next := make([]sinkEntry, 0, len(old)+1)
	for _, e := range old {
		if e.id != id {
			next = append(next, e)
		}
	}
	shared, _ := s.(sharedSink)
	next = append(next, sinkEntry{id: id, sink: s, shared: shared})
	t.sinks.Store(&next)
	t.rebuildLayerSinksLocked()
}

// sinkLayersChanged is called by a sink whose wantedLayers changed.
func (t *Track) sinkLayersChanged() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rebuildLayerSinksLocked()
}

// rebuildLayerSinksLocked rebuilds layerSinks from the sinks; the caller
// holds t.mu.
func (t *Track) rebuildLayerSinksLocked() {
	all := *t.sinks.Load()
	for l := range t.layerSinks {
		list := make([]sinkEntry, 0, len(all))
		for _, e := range all {
			if e.shared == nil || e.shared.wantedLayers()&(1<<l) != 0 {
				list = append(list, e)
			}
		}
		t.layerSinks[l].Store(&list)
	}
}

// RemoveSink detaches the sink with the given id; it is a no-op when absent.
func (t *Track) RemoveSink(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.sinks.Load()
	next := make([]sinkEntry, 0, len(old))
	for _, e := range old {
		if e.id != id {
			next = append(next, e)
		}
	}
	t.sinks.Store(&next)
	t.rebuildLayerSinksLocked()
}

// SinkCount returns how many sinks are attached.
func (t *Track) SinkCount() int { return len(*t.sinks.Load()) }

// WriteRTP fans one packet of one layer out to every sink. It is called by
// the publisher's single read goroutine for that layer.
func (t *Track) WriteRTP(layer int, pkt *rtp.Packet) {
	if t.closed.Load() {
		return
	}
	n := uint64(len(pkt.Payload) + pkt.Header.MarshalSize())
	t.packets.Add(1)
	t.bytes.Add(n)
	if layer >= 0 && layer < len(t.layerBytes) {
		t.layerBytes[layer].Add(n)
	}
	if layer >= 0 && layer < len(t.fanOuts) {
		t.fanOuts[layer].Lock()
		defer t.fanOuts[layer].Unlock()
	}
	var frame *pendingFrame
	if layer >= 0 && layer < len(t.frames) {
		frame = &t.frames[layer]
	}
	if !t.forwarding.Load() {
		if frame != nil {
			frame.drop() // muted mid-picture: it is not shown later
		}
		return
	}
	// The down-tracks queue one shared copy of the payload (payload.go),
	// and of each RED payload built from it (red.go), and read the clock
	// once between them.
	var body *sharedPayload
	var now time.Time
	var builds *redBuilds
	if layer >= 0 && layer < len(t.redBuilds) {
		builds = &t.redBuilds[layer]
	}
	sinks := t.sinks.Load()
	if layer >= 0 && layer < len(t.layerSinks) {
		sinks = t.layerSinks[layer].Load()
	}
	if frame != nil && frame.n > 0 && !frame.holds(pkt) {
		frame.fanOut(layer, *sinks)
	}
	hold := false // the down-tracks get the packet with its picture (frames.go)
	for i, e := range *sinks {
		if e.shared == nil {
			e.sink.WriteRTP(layer, pkt)
			continue
		}
		if now.IsZero() {
			now = time.Now()
			if len(pkt.Payload) > 0 {
				body = newSharedPayload(pkt.Payload) // nil when too large: each copies (and drops) it
			}
			hold = frame != nil && (body != nil || len(pkt.Payload) == 0)
			if frame != nil && !hold {
				frame.fanOut(layer, *sinks) // not held: the packets before it go first
			}
		}
		if !hold {
			prefetchAhead(*sinks, i)
			e.shared.writeShared(layer, pkt, body, builds, now)
		}
	}
	if hold {
		frame.add(pkt, body, now)
		if pkt.Marker || frame.full() {
			frame.fanOut(layer, *sinks)
		}
	}
	if body != nil {
		body.release()
	}
	if builds != nil {
		builds.release()
	}
}

// RequestKeyframe asks the publisher for a keyframe on a layer, at most once
// per keyframeInterval per layer. It reports whether a request was sent.
func (t *Track) RequestKeyframe(layer int) bool {
	if layer < 0 || layer >= len(t.lastKeyframe) || t.closed.Load() {
		return false
	}
	now := time.Now()
	t.mu.Lock()
	request := t.requestKFrame
	if request == nil {
		t.mu.Unlock()
		return false
	}
	if wait := keyframeInterval - now.Sub(t.lastKeyframe[layer]); wait > 0 {
		// Merged, not dropped: one request goes out when the window ends,
		// so a classroom joining just after another waits at most one
		// window for its first picture instead of its own retry.
		if !t.keyframeDeferred[layer] {
			t.keyframeDeferred[layer] = true
			time.AfterFunc(wait, func() { t.sendDeferredKeyframe(layer) })
		}
		t.mu.Unlock()
		return false
	}
	t.lastKeyframe[layer] = now
	t.mu.Unlock()
	request(layer)
	return true
}

func (t *Track) sendDeferredKeyframe(layer int) {
	t.mu.Lock()
	t.keyframeDeferred[layer] = false
	t.lastKeyframe[layer] = time.Now()
	request := t.requestKFrame
	t.mu.Unlock()
	if request != nil && !t.closed.Load() {
		request(layer)
	}
}

// handOver makes a new publisher the track's source (a WHIP encoder that
// reconnected under the same identity): keyframe requests go to it from
// now on, and every sink re-syncs on its first packet (a new SSRC,
// sequence and timestamp space), video from a keyframe. Sinks stay
// attached, so subscribers keep their down-tracks and need no
// renegotiation.
func (t *Track) handOver(requestKeyframe KeyframeRequester) {
	t.mu.Lock()
	t.requestKFrame = requestKeyframe
	for l := range t.lastKeyframe {
		t.lastKeyframe[l] = time.Time{} // the new publisher was never asked
	}
	t.mu.Unlock()
	t.resumes.Add(1)
}

// compatible reports whether a new publisher's track can feed this one in
// its place: the same kind, codec and simulcast layers, so that the
// down-tracks' negotiated payload types and layer choices stay right.
func (t *Track) compatible(kind Kind, codec Codec, layers []string) bool {
	if len(layers) == 0 {
		layers = []string{""}
	}
	if t.info.Kind != kind || !strings.EqualFold(t.info.Codec.MimeType, codec.MimeType) || len(layers) != len(t.info.Layers) {
		return false
	}
	for i, l := range layers {
		if t.info.Layers[i] != l {
			return false
		}
	}
	return true
}

// Stats returns the packets and bytes received from the publisher so far.
func (t *Track) Stats() (packets, bytes uint64) {
	return t.packets.Load(), t.bytes.Load()
}

// LayerBytes returns the bytes received so far on one layer (0 for an
// unknown layer).
func (t *Track) LayerBytes(layer int) uint64 {
	if layer < 0 || layer >= len(t.layerBytes) {
		return 0
	}
	return t.layerBytes[layer].Load()
}

// Close stops fan-out; later writes are dropped. Sinks are not told here: the
// room announces the track's removal.
func (t *Track) Close() {
	t.closed.Store(true)
}
