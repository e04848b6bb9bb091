package sfu

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// sharedPayload is one packet's payload as the publisher sent it, copied
// once and then held by every classroom's egress ring it is queued in,
// instead of a copy per classroom. At fanout200 the per-classroom copies
// were a ring of 1.5 KB slots per classroom (hundreds of megabytes
// together), written cold for every packet (~1.3 µs a packet sent,
// docs/BENCHMARKS.md "Shared payloads"); one shared copy stays in the
// cache while all 200 are served from it.
//
// A payload goes back to payloadPool when the last holder lets go: the
// track after its fan-out, each ring when the slot is filled again. A ring
// that is dropped (the classroom left) never lets go; its payloads are
// then collected by the GC rather than reused, which is safe.
type sharedPayload struct {
	refs atomic.Int32
	n    int
	buf  [maxPayload]byte
}

var payloadPool = sync.Pool{New: func() any { return new(sharedPayload) }}

// newSharedPayload copies p into a payload from the pool, held once by the
// caller; nil when p is too large for a slot.
func newSharedPayload(p []byte) *sharedPayload {
	if len(p) >= maxPayload {
		return nil
	}
	sp := payloadPool.Get().(*sharedPayload)
	sp.n = copy(sp.buf[:], p)
	sp.refs.Store(1)
	return sp
}

func (sp *sharedPayload) hold() { sp.refs.Add(1) }

// release lets go of one hold; the last returns the payload to the pool.
func (sp *sharedPayload) release() {
	if sp.refs.Add(-1) == 0 {
		payloadPool.Put(sp)
	}
}

// sharedSink is a sink that can queue the track's shared copy of a packet's
// payload instead of copying it (a down-track).
type sharedSink interface {
	writeShared(layer int, pkt *rtp.Packet, body *sharedPayload, builds *redBuilds, now time.Time)
	// writePicture takes a held picture's packets (frames.go) in one visit.
	writePicture(layer int, f *pendingFrame)
	// wantedLayers is the layers whose packets it takes now (bit i: layer i).
	wantedLayers() uint32
	// prefetch asks the CPU for the state a visit stage visits away
	// will touch (prefetch.go).
	prefetch(stage int)
}
