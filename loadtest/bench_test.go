package loadtest

import (
	"testing"
	"time"
)

// BenchmarkClassroomPacket is the tool's own per-packet work in a classroom
// (header parse, loss window, frame accounting, fingerprint lookup): it must
// stay far below pion's receive path so the tool measures the server.
func BenchmarkClassroomPacket(b *testing.B) {
	book := newStampBook()
	payload := make([]byte, 1100)
	pkts := make([][]byte, 256)
	for i := range pkts {
		payload[len(payload)-1] = byte(i)
		pkts[i] = rtpBytes(b, uint16(i), i%8 == 7, payload)
		book.record(fingerprintOf(payload), 2, time.Now())
	}
	var s streamStats
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.onPacket(now, pkts[i%len(pkts)], true, book)
	}
}

// BenchmarkLinkAdmit is the emulated link's per-packet decision.
func BenchmarkLinkAdmit(b *testing.B) {
	l := &linkInterceptor{profile: LinkProfile{RateBits: 1e9, Loss: 0.03, Delay: 40 * time.Millisecond, Jitter: 10 * time.Millisecond, Queue: defaultQueue}, rng: newTestRand()}
	now := time.Now()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		l.admit(now, 1200)
	}
}
