package recorder

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"podium/sfu"
	"podium/storage"
)

// packet is one RTP packet copied off the publisher's goroutine.
type packet struct {
	sess    *session
	layer   int
	seq     uint16
	ts      uint32
	ssrc    uint32
	marker  bool
	payload *[]byte
	arrival time.Time
}

var payloadPool = sync.Pool{New: func() any { b := make([]byte, 0, 1500); return &b }}

// session is one sfu track feeding a recorded track: the Sink. It filters
// layers on the publisher's goroutine so only the recorded layer (and a
// layer being switched to) is copied, and never blocks: a full queue drops
// the packet and counts it.
type session struct {
	rt          *recTrack
	track       *sfu.Track
	role        sfu.Role
	participant string
	muted       atomic.Bool

	cur  atomic.Int32 // layer being recorded
	want atomic.Int32 // layer to switch to on its next keyframe, -1 none
	seen []atomic.Int64
}

func newSession(rt *recTrack, t *sfu.Track) *session {
	info := t.Info()
	s := &session{rt: rt, track: t, seen: make([]atomic.Int64, len(info.Layers))}
	s.cur.Store(int32(len(info.Layers) - 1)) // top layer first
	s.want.Store(-1)
	s.muted.Store(info.Muted)
	return s
}

// WriteRTP implements sfu.Sink.
func (s *session) WriteRTP(layer int, pkt *rtp.Packet) {
	if layer < 0 || layer >= len(s.seen) {
		return
	}
	now := time.Now()
	s.seen[layer].Store(now.UnixNano())
	if int32(layer) != s.cur.Load() && int32(layer) != s.want.Load() {
		return
	}
	bp := payloadPool.Get().(*[]byte)
	*bp = append((*bp)[:0], pkt.Payload...)
	p := packet{sess: s, layer: layer, seq: pkt.SequenceNumber, ts: pkt.Timestamp, ssrc: pkt.SSRC, marker: pkt.Marker, payload: bp, arrival: now}
	select {
	case s.rt.queue <- p:
	default:
		payloadPool.Put(bp)
		s.rt.dropped.Add(1)
		s.rt.l.r.metrics.packetsDropped.Inc()
	}
}

type ctlMsg struct {
	begin  *session
	end    *session
	reason string        // why end: the gap that follows is marked with it
	stop   chan struct{} // closed by the worker when flushed
}

// recTrack records one source of a lesson (e.g. the teacher's camera)
// across publisher sessions: one goroutine owns all of its state.
type recTrack struct {
	l         *lesson
	id        string
	codec     string
	rate      uint32
	channels  int
	video     bool
	queue     chan packet
	shift     time.Duration // the lesson's: wall clock minus recording clock
	dropped   atomic.Uint64
	ctlMu     sync.Mutex
	ctl       []ctlMsg
	ctlNotify chan struct{}

	// Owned by the run goroutine.
	sess      *session
	dep       depacketizer
	needKey   bool
	initDone  bool
	initRetry time.Time
	seq       int
	segBuf    []byte
	refs      []sampleRef
	segStart  time.Time
	segDTS    uint64
	gaps      []ManifestGap
	gapReason string

	anchored  bool
	lastSSRC  uint32
	rtpExt    int64
	lastRTP   uint32
	anchorRTP int64
	anchorDTS uint64

	haveLast  bool
	lastDTS   uint64
	lastDur   uint64
	nextDTS   uint64    // where the next session may start
	startWall time.Time // wall-clock time of media time 0
	lastWall  time.Time // arrival of the last frame written
}

const queueSize = 2048

func newRecTrack(l *lesson, mt ManifestTrack, channels int, shift time.Duration) *recTrack {
	rt := &recTrack{
		l: l, id: mt.ID, codec: mt.Codec, rate: timescaleOf(mt.Codec), channels: channels, shift: shift,
		video: mt.Kind == string(sfu.KindVideo), queue: make(chan packet, queueSize),
		ctlNotify: make(chan struct{}, 1), initDone: mt.Init != "",
	}
	rt.lastDur = uint64(rt.rate / 30)
	if rt.codec == codecOpus {
		rt.lastDur = 960
	}
	// Resuming a track recorded before (publisher reconnect after a
	// restart): continue numbering and media time after its last segment.
	if n := len(mt.Segments); n > 0 {
		last := mt.Segments[n-1]
		rt.seq = last.Seq + 1
		dur := last.MediaDuration
		if dur == 0 {
			dur = uint64(last.Duration.Seconds() * float64(rt.rate))
		}
		rt.nextDTS = last.MediaStart + dur
		rt.startWall = last.Start.Add(-rt.ticksToDur(last.MediaStart))
		rt.lastWall = last.Start.Add(last.Duration)
		rt.gapReason = "recording interrupted"
	}
	return rt
}

func (rt *recTrack) ticksToDur(t uint64) time.Duration {
	return time.Duration(float64(t) / float64(rt.rate) * float64(time.Second))
}

func (rt *recTrack) durToTicks(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	return uint64(d.Seconds() * float64(rt.rate))
}

// control queues a control message without blocking.
func (rt *recTrack) control(m ctlMsg) {
	rt.ctlMu.Lock()
	rt.ctl = append(rt.ctl, m)
	rt.ctlMu.Unlock()
	select {
	case rt.ctlNotify <- struct{}{}:
	default:
	}
}

func (rt *recTrack) run(ctx context.Context) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			rt.flush()
			return
		case <-rt.ctlNotify:
			rt.ctlMu.Lock()
			msgs := rt.ctl
			rt.ctl = nil
			rt.ctlMu.Unlock()
			for _, m := range msgs {
				switch {
				case m.begin != nil:
					rt.begin(m.begin)
				case m.end != nil:
					if rt.sess == m.end {
						rt.flush()
						rt.sess = nil
						rt.gapReason = m.reason
					}
				case m.stop != nil:
					rt.flush()
					rt.sess = nil
					close(m.stop)
					return
				}
			}
		case p := <-rt.queue:
			rt.handle(p)
			payloadPool.Put(p.payload)
		case <-tick.C:
			rt.chooseLayer()
		}
	}
}

func (rt *recTrack) newDepacketizer() depacketizer {
	switch rt.codec {
	case codecH264:
		return newH264Depacketizer()
	case codecVP8:
		return &vp8Depacketizer{}
	}
	return opusDepacketizer{}
}

func (rt *recTrack) begin(s *session) {
	if rt.sess != nil {
		// A reconnecting publisher replaces the old one.
		rt.flush()
		rt.gapReason = "publisher reconnect"
	}
	rt.sess = s
	rt.anchored = false
	rt.dep = rt.newDepacketizer()
	rt.needKey = rt.video
	if rt.video {
		s.track.RequestKeyframe(int(s.cur.Load()))
	}
}

// chooseLayer records the highest simulcast layer that is flowing; a switch
// happens on that layer's next keyframe (handle), asked for here.
func (rt *recTrack) chooseLayer() {
	s := rt.sess
	if s == nil || !rt.video {
		return
	}
	cur := int(s.cur.Load())
	if len(s.seen) > 1 {
		now := time.Now().UnixNano()
		best := -1
		for i := len(s.seen) - 1; i >= 0; i-- {
			if now-s.seen[i].Load() < int64(time.Second) {
				best = i
				break
			}
		}
		if best >= 0 && best != cur {
			s.want.Store(int32(best))
			s.track.RequestKeyframe(best)
			return
		}
		if best == cur {
			s.want.Store(-1)
		}
	}
	if rt.needKey || rt.segmentDue() {
		s.track.RequestKeyframe(cur)
	}
}

func (rt *recTrack) segmentDue() bool {
	return len(rt.refs) > 0 && rt.lastDTS-rt.segDTS >= rt.durToTicks(rt.l.r.cfg.SegmentDuration)
}

func (rt *recTrack) handle(p packet) {
	s := rt.sess
	if p.sess != s || s == nil {
		return
	}
	payload := *p.payload
	if want := s.want.Load(); want >= 0 && int32(p.layer) == want && want != s.cur.Load() {
		if !isKeyframeStart(rt.codec, payload) {
			return
		}
		s.cur.Store(want)
		s.want.Store(-1)
		rt.gapReason = "layer switch"
		rt.anchored = false // another layer: another SSRC and clock
		rt.dep = rt.newDepacketizer()
		rt.needKey = false
	}
	if int32(p.layer) != s.cur.Load() {
		return
	}
	if rt.needKey {
		if !isKeyframeStart(rt.codec, payload) {
			return
		}
		rt.needKey = false
		rt.dep = rt.newDepacketizer()
	}
	f, ok, err := rt.dep.push(p.seq, p.ts, p.marker, payload)
	if err != nil && rt.video {
		// A lost packet breaks decoding until the next keyframe.
		if !(ok && f.key) {
			rt.needKey = true
			s.track.RequestKeyframe(int(s.cur.Load()))
			return
		}
	}
	if !ok {
		return
	}
	if p.ssrc != rt.lastSSRC {
		rt.anchored = false
		rt.lastSSRC = p.ssrc
	}
	rt.writeFrame(f, p.arrival.Add(-rt.shift), s.muted.Load())
}

func (rt *recTrack) writeFrame(f frame, wall time.Time, muted bool) {
	if !rt.initDone {
		if wall.Before(rt.initRetry) {
			return
		}
		if err := rt.writeInit(); err != nil {
			// Reported by spoolObject; try again in a second, not on
			// every packet.
			rt.initRetry = wall.Add(time.Second)
			rt.needKey = rt.video
			return
		}
	}
	// Media time: RTP time while the clock runs smoothly; re-anchored on
	// wall-clock time when the clock jumps (new SSRC, layer, publisher).
	var dts uint64
	if rt.anchored {
		rt.rtpExt += int64(int32(f.rtpTime - rt.lastRTP))
		rt.lastRTP = f.rtpTime
		d := rt.rtpExt - rt.anchorRTP
		if d < 0 {
			rt.anchored = false
		} else {
			dts = rt.anchorDTS + uint64(d)
			if rt.haveLast {
				media := float64(int64(dts)-int64(rt.lastDTS)) / float64(rt.rate)
				real := wall.Sub(rt.lastWall).Seconds()
				if media-real > 2 || real-media > 2 {
					rt.anchored = false
				}
			}
		}
	}
	if !rt.anchored {
		if rt.startWall.IsZero() {
			rt.startWall = wall
		}
		dts = max(rt.nextDTS, rt.durToTicks(wall.Sub(rt.startWall)))
		rt.anchored = true
		rt.rtpExt, rt.anchorRTP, rt.lastRTP, rt.anchorDTS = 0, 0, f.rtpTime, dts
	}
	if rt.haveLast && dts <= rt.lastDTS {
		dts = rt.lastDTS + 1
	}
	// Cut on a keyframe (video) or anywhere (audio) once long enough.
	if len(rt.refs) > 0 && (f.key || !rt.video) && dts-rt.segDTS >= rt.durToTicks(rt.l.r.cfg.SegmentDuration) {
		rt.closeSegment(dts)
	}
	if len(rt.refs) == 0 && rt.video && !f.key {
		return // a segment starts on a keyframe
	}
	// A session change (reconnect, restart, layer switch) is always marked;
	// otherwise a second without media is.
	if gap := wall.Sub(rt.lastWall); !rt.lastWall.IsZero() && (gap > time.Second || (rt.gapReason != "" && gap > 0)) {
		reason := rt.gapReason
		if reason == "" {
			reason = "no media"
			if muted {
				reason = "muted"
			}
		}
		rt.gaps = append(rt.gaps, ManifestGap{Start: rt.lastWall, End: wall, Reason: reason})
	}
	rt.gapReason = ""

	if len(rt.refs) == 0 {
		rt.segDTS, rt.segStart = dts, wall
	}
	if rt.haveLast && dts-rt.lastDTS < uint64(rt.rate) {
		rt.lastDur = dts - rt.lastDTS
	}
	rt.refs = append(rt.refs, sampleRef{off: len(rt.segBuf), size: len(f.data), dts: dts, key: f.key})
	rt.segBuf = append(rt.segBuf, f.data...)
	rt.lastDTS, rt.lastWall, rt.haveLast = dts, wall, true
}

func (rt *recTrack) writeInit() error {
	var data []byte
	var err error
	switch d := rt.dep.(type) {
	case *h264Depacketizer:
		data, err = initSegment(rt.codec, 0, d.sps, d.pps, 0, 0)
	case *vp8Depacketizer:
		data, err = initSegment(rt.codec, 0, nil, nil, d.width, d.height)
	default:
		data, err = initSegment(rt.codec, rt.channels, nil, nil, 0, 0)
	}
	if err != nil {
		return err
	}
	key := storage.RecInitKey(rt.l.id, rt.id)
	if err := rt.l.spoolObject(key, data); err != nil {
		return err
	}
	rt.l.setInit(rt.id, key)
	rt.initDone = true
	return nil
}

// flush closes the open segment at the end of its last sample.
func (rt *recTrack) flush() {
	if len(rt.refs) > 0 {
		rt.closeSegment(rt.lastDTS + rt.lastDur)
	}
	rt.l.addGaps(rt.id, rt.gaps)
	rt.gaps = nil
	rt.haveLast = false
	rt.anchored = false
}

func (rt *recTrack) closeSegment(end uint64) {
	refs := rt.refs
	rt.refs = rt.refs[:0]
	defer func() { rt.segBuf = rt.segBuf[:0] }()
	data, err := marshalSegment(uint32(rt.seq), rt.segBuf, refs, end)
	if err != nil {
		rt.l.r.log.Error("recorder: segment", "lesson", rt.l.id, "track", rt.id, "err", err)
		return
	}
	seq := rt.seq
	rt.seq++
	rt.nextDTS = end
	key := storage.RecSegmentKey(rt.l.id, rt.id, seq)
	seg := ManifestSegment{
		Seq: seq, Key: key, Start: rt.segStart, Duration: rt.ticksToDur(end - refs[0].dts),
		MediaStart: refs[0].dts, MediaDuration: end - refs[0].dts, Bytes: int64(len(data)),
	}
	gaps := rt.gaps
	rt.gaps = nil
	if err := rt.l.spoolObject(key, data); err != nil {
		// Reported by spoolObject; the lost stretch is a gap.
		gaps = append(gaps, ManifestGap{Start: seg.Start, End: seg.Start.Add(seg.Duration), Reason: "segment lost: " + err.Error()})
		rt.l.addGaps(rt.id, gaps)
		return
	}
	rt.l.addSegment(rt.id, seg, gaps)
}
