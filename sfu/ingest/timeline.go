package ingest

import (
	"errors"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/pion/rtp"
)

// maxTimestampJump is the largest step between two consecutive input
// timestamps accepted as media time; anything larger (a camera that resets
// its clock, garbage) re-anchors the timeline on the wall clock.
const maxTimestampJump = 10 * time.Second

// timeline rewrites one track's RTP timestamps. Every session (camera
// connection) is anchored on the wall clock since the source's epoch at its
// first packet; after that, media time advances with the camera's own
// timestamps. So output time never jumps back across restarts, the gap in
// output equals the real outage, and a source's audio and video, anchored on
// the same epoch, stay roughly in sync.
type timeline struct {
	rate    int64 // clock rate in Hz
	epoch   time.Time
	maxJump int64 // in ticks

	anchored        bool
	inBase, outBase uint32
	prevIn          uint32
	maxOut          uint32
	haveOut         bool
	jumps           uint64
}

func newTimeline(clockRate int, epoch time.Time) *timeline {
	return &timeline{rate: int64(clockRate), epoch: epoch, maxJump: int64(clockRate) * int64(maxTimestampJump/time.Second)}
}

// restart makes the next packet start a new anchor (a new camera session,
// whose timestamps have nothing to do with the previous one's).
func (t *timeline) restart() { t.anchored = false }

// continueAfter makes sure output goes on after ts (set from an output that
// outlived a previous timeline).
func (t *timeline) continueAfter(ts uint32) {
	if !t.haveOut || int32(ts-t.maxOut) > 0 {
		t.maxOut, t.haveOut = ts, true
	}
}

// out maps an input timestamp to the output one.
func (t *timeline) out(in uint32, now time.Time) uint32 {
	if t.anchored {
		d := int64(int32(in - t.prevIn))
		if d > t.maxJump || d < -t.maxJump {
			t.anchored = false
			t.jumps++
		}
	}
	if !t.anchored {
		ms := now.Sub(t.epoch).Milliseconds()
		wall := uint32(ms * t.rate / 1000)
		if t.haveOut && int32(wall-t.maxOut) <= 0 {
			wall = t.maxOut + 1
		}
		t.inBase, t.outBase, t.anchored = in, wall, true
	}
	t.prevIn = in
	o := t.outBase + (in - t.inBase)
	if !t.haveOut || int32(o-t.maxOut) > 0 {
		t.maxOut, t.haveOut = o, true
	}
	return o
}

// h264Depacketizer reassembles access units from RTP/H.264 packets and
// says which timestamp each belongs to (gortsplib's decoder closes an access
// unit either on the marker bit or when the timestamp changes, and in the
// second case the unit belongs to the previous packet's timestamp).
type h264Depacketizer struct {
	dec     rtph264.Decoder
	pending bool
	prevTS  uint32
}

func newH264Depacketizer() *h264Depacketizer {
	d := &h264Depacketizer{dec: rtph264.Decoder{PacketizationMode: 1}}
	_ = d.dec.Init()
	return d
}

// push returns a complete access unit and its timestamp, or nil. err is
// set only for real decode errors, not for "need more packets".
func (d *h264Depacketizer) push(pkt *rtp.Packet) (au [][]byte, ts uint32, err error) {
	if pkt.Version != 2 || len(pkt.Payload) == 0 {
		return nil, 0, errors.New("empty or non-RTP v2 packet")
	}
	pending, prevTS := d.pending, d.prevTS
	d.prevTS = pkt.Timestamp
	au, err = d.dec.Decode(pkt)
	switch {
	case errors.Is(err, rtph264.ErrMorePacketsNeeded):
		d.pending = true
		return nil, 0, nil
	case errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious):
		d.pending = false
		return nil, 0, nil
	case err != nil:
		d.pending = false
		return nil, 0, err
	}
	if pending && prevTS != pkt.Timestamp {
		// closed by the timestamp change: this packet's NAL units stay in
		// the decoder as the start of the next unit.
		d.pending = true
		return au, prevTS, nil
	}
	d.pending = false
	return au, pkt.Timestamp, nil
}
