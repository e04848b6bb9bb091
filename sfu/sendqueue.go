package sfu

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// sendQueue decouples the publishers' read goroutines from one subscriber's
// network writes: a down-track copies each rewritten packet into a
// preallocated slot and returns; the subscriber's writer goroutine sends the
// slots in order. When a subscriber cannot keep up (a TCP connection that
// backs up), its queue fills and its own packets are dropped: a slow
// classroom never slows the teacher or anyone else.
type sendQueue struct {
	mu    sync.Mutex
	slots []queuedPacket
	head  uint64 // next slot to send; advanced by the writer only
	tail  uint64 // next slot to fill

	wake    chan struct{}
	dropped atomic.Uint64
	packets atomic.Uint64
	bytes   atomic.Uint64
}

// maxPayload is the largest RTP payload a slot holds; larger packets (which
// do not occur below a 1500-byte MTU) are dropped.
const maxPayload = 1500

type queuedPacket struct {
	writer webrtc.TrackLocalWriter
	hdr    rtp.Header
	n      int
	buf    [maxPayload]byte
}

func newSendQueue(size int) *sendQueue {
	return &sendQueue{slots: make([]queuedPacket, size), wake: make(chan struct{}, 1)}
}

// push copies one packet into the queue and applies the VP8 id rewrite to
// the copy. It never blocks and reports false when the packet was dropped.
func (q *sendQueue) push(w webrtc.TrackLocalWriter, hdr *rtp.Header, payload []byte, vp8 *vp8Rewrite) bool {
	if len(payload) >= maxPayload { // room for a widened VP8 picture id
		q.dropped.Add(1)
		return false
	}
	q.mu.Lock()
	if q.tail-q.head >= uint64(len(q.slots)) {
		q.mu.Unlock()
		q.dropped.Add(1)
		return false
	}
	s := &q.slots[q.tail%uint64(len(q.slots))]
	s.writer = w
	ext := s.hdr.Extensions[:0]
	s.hdr = *hdr
	s.hdr.Extensions = ext // keep the slot's capacity for interceptors' extensions
	if vp8 != nil && vp8.apply {
		s.n = rewriteVP8(s.buf[:], payload, &vp8.desc, vp8.pictureID, vp8.tl0PicIdx)
	} else {
		s.n = copy(s.buf[:], payload)
	}
	q.tail++
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// run sends queued packets until ctx ends.
func (q *sendQueue) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		}
		for {
			q.mu.Lock()
			if q.head == q.tail {
				q.mu.Unlock()
				break
			}
			s := &q.slots[q.head%uint64(len(q.slots))]
			q.mu.Unlock()
			// The slot is ours until head moves: push never fills it before.
			if n, err := s.writer.WriteRTP(&s.hdr, s.buf[:s.n]); err == nil {
				q.packets.Add(1)
				q.bytes.Add(uint64(n))
			}
			s.writer = nil
			q.mu.Lock()
			q.head++
			q.mu.Unlock()
		}
	}
}
