package sfu

import (
	"time"

	"github.com/pion/rtp"
)

// Pictures fanned out whole. A classroom's egress sends a picture when its
// last packet (the marker) is queued, not before (egress.push): a picture's
// packets leave together, as one GSO message. Fanning each packet out as
// it came meant visiting every classroom once per packet, and at 200
// classrooms what a visit touches (the down-track, the egress, its ring)
// had left the cache by the next packet. The track now holds a video
// layer's packets until its picture is complete and then hands each
// classroom the whole picture in turn: each one's state is brought in once
// per picture instead of once per packet. The packets leave when they did
// before, at the marker.
//
// Only the down-tracks (shared sinks) wait for the picture; other sinks
// (the recorder) still get each packet as it comes.

// maxPendingPackets bounds a held picture: a larger one (a keyframe) is
// fanned out in parts, as a classroom's egress used to wake at a quarter
// of its queue (wakeBacklog) without the marker.
const maxPendingPackets = wakeBacklog

// pendingFrame is one layer's picture so far, owned by that layer's read
// goroutine (as Track.WriteRTP is).
type pendingFrame struct {
	n      int
	pkts   [maxPendingPackets]rtp.Packet // header fields and the payload in bodies[i]
	bodies [maxPendingPackets]*sharedPayload
	nows   [maxPendingPackets]time.Time
}

// holds reports whether pkt may join the held picture: it has the
// picture's timestamp (a new timestamp means the last picture ended
// without its marker reaching us).
func (f *pendingFrame) holds(pkt *rtp.Packet) bool {
	return f.n == 0 || f.pkts[0].Timestamp == pkt.Timestamp
}

// add keeps pkt, whose payload body holds (nil for a packet without
// payload), received at now.
func (f *pendingFrame) add(pkt *rtp.Packet, body *sharedPayload, now time.Time) {
	p := &f.pkts[f.n]
	*p = rtp.Packet{Header: rtp.Header{Version: pkt.Version, Padding: pkt.Padding, Marker: pkt.Marker,
		PayloadType: pkt.PayloadType, SequenceNumber: pkt.SequenceNumber, Timestamp: pkt.Timestamp, SSRC: pkt.SSRC}}
	if body != nil {
		body.hold()
		p.Payload = body.buf[:body.n]
	}
	f.bodies[f.n], f.nows[f.n] = body, now
	f.n++
}

// full reports whether the picture must go out now.
func (f *pendingFrame) full() bool { return f.n == maxPendingPackets }

// fanOut hands the held packets to each down-track of sinks in turn, and
// lets go of them.
func (f *pendingFrame) fanOut(layer int, sinks []sinkEntry) {
	for i, e := range sinks {
		if e.shared == nil {
			continue // had each packet as it came
		}
		prefetchAhead(sinks, i)
		e.shared.writePicture(layer, f)
	}
	f.drop()
}

// drop lets go of the held packets unsent.
func (f *pendingFrame) drop() {
	for i := 0; i < f.n; i++ {
		if f.bodies[i] != nil {
			f.bodies[i].release()
			f.bodies[i] = nil
		}
		f.pkts[i].Payload = nil
	}
	f.n = 0
}
