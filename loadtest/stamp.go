package loadtest

import (
	"encoding/binary"
	"strings"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
)

// How end-to-end delay is measured: the SFU rewrites sequence numbers,
// timestamps, SSRCs and VP8 picture ids and drops header extensions, but it
// forwards the end of every payload untouched. The synthetic teacher runs in
// the same process as the classrooms, so it records, for the last packet of
// every video frame, a fingerprint of the payload (its length and last eight
// bytes) with the wall-clock time the packet left the teacher's connection
// and the simulcast layer it belongs to. A classroom that receives a frame's
// last packet looks its fingerprint up: the difference is the exact delay
// through the teacher's stack, the server and the classroom's stack (and the
// emulated link), and the entry says which layer the server forwards.
// Nothing is added to the media, so the stream stays valid for browsers and
// the recorder.

// fingerprint identifies a payload by its length and last eight bytes.
type fingerprint struct {
	n    uint16
	tail uint64
}

func fingerprintOf(payload []byte) fingerprint {
	var tail [8]byte
	copy(tail[:], payload[max(0, len(payload)-8):])
	return fingerprint{n: uint16(len(payload)), tail: binary.LittleEndian.Uint64(tail[:])}
}

type sendStamp struct {
	at    int64 // unix nanoseconds
	layer int8
}

// stampBook holds the recent frame fingerprints of one teacher. Entries
// older than the ring's span are forgotten, so a looping media file cannot
// match a frame from its previous loop.
type stampBook struct {
	mu    sync.RWMutex
	byKey map[fingerprint]sendStamp
	ring  []ringEntry
	next  int
}

type ringEntry struct {
	fp fingerprint
	at int64
}

// stampBookSize covers about 20 s of three 30 fps layers.
const stampBookSize = 2048

func newStampBook() *stampBook {
	return &stampBook{byKey: make(map[fingerprint]sendStamp, stampBookSize), ring: make([]ringEntry, stampBookSize)}
}

func (b *stampBook) record(fp fingerprint, layer int, at time.Time) {
	b.mu.Lock()
	// Forget the oldest entry, unless its fingerprint was recorded again
	// since (a looping file repeats its frames).
	old := b.ring[b.next]
	if s, ok := b.byKey[old.fp]; ok && s.at == old.at {
		delete(b.byKey, old.fp)
	}
	ns := at.UnixNano()
	b.ring[b.next] = ringEntry{fp: fp, at: ns}
	b.next = (b.next + 1) % len(b.ring)
	b.byKey[fp] = sendStamp{at: ns, layer: int8(layer)}
	b.mu.Unlock()
}

func (b *stampBook) lookup(fp fingerprint) (sendStamp, bool) {
	b.mu.RLock()
	s, ok := b.byKey[fp]
	b.mu.RUnlock()
	return s, ok
}

// stampFactory makes the send-side interceptor of a teacher's publisher
// connection: it records the fingerprint of every frame's last video packet
// as the packetizer hands it to the connection. It is registered last, so it
// sees only original packets, never the NACK responder's retransmissions.
type stampFactory struct {
	book *stampBook
	// layers maps a sending SSRC to its simulcast layer, RID and MID.
	layers *ssrcLayers
}

func (f *stampFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &stampInterceptor{f: f}, nil
}

type stampInterceptor struct {
	interceptor.NoOp
	f *stampFactory
}

func (s *stampInterceptor) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	if s.f.book == nil || !strings.HasPrefix(strings.ToLower(info.MimeType), "video/") {
		return w
	}
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if h.Marker && len(payload) > 0 && h.SSRC == info.SSRC {
			s.f.book.record(fingerprintOf(payload), s.f.layers.get(h.SSRC).index, time.Now())
		}
		return w.Write(h, payload, a)
	})
}
