package loadtest

import (
	"testing"
	"time"

	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
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

// BenchmarkLeanPacket is a lean classroom's work per received packet once
// the socket has handed it over: SRTP decryption (AES-128-GCM), the TWCC
// record, the NACK log and the accounting of BenchmarkClassroomPacket.
// It allocates nothing.
func BenchmarkLeanPacket(b *testing.B) {
	key, salt := make([]byte, 16), make([]byte, 12)
	enc, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm)
	if err != nil {
		b.Fatal(err)
	}
	dec, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm, srtp.SRTPNoReplayProtection())
	if err != nil {
		b.Fatal(err)
	}
	book := newStampBook()
	payload := make([]byte, 1100)
	pkts := make([][]byte, 256)
	for i := range pkts {
		payload[len(payload)-1] = byte(i)
		book.record(fingerprintOf(payload), 2, time.Now())
		p := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Marker: i%8 == 7, SSRC: 1, PayloadType: 96}, Payload: payload}
		if err := p.Header.SetExtension(3, []byte{0, byte(i)}); err != nil {
			b.Fatal(err)
		}
		plain, err := p.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		if pkts[i], err = enc.EncryptRTP(nil, plain, nil); err != nil {
			b.Fatal(err)
		}
	}
	stats := &classroomStats{}
	c := &leanConn{stats: stats, lesson: &lesson{book: book}, twcc: twcc.NewRecorder(2), start: time.Now()}
	c.dec.Store(dec)
	c.table.Store(&leanTable{twccID: 3, streams: []*leanStream{{ssrc: 1, video: true, fromTeacher: true, stats: &stats.video, book: book}}})
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.onRTP(now, pkts[i%len(pkts)])
		if i%256 == 255 {
			c.twcc.BuildFeedbackPacket() // as every 100 ms, so the record stays short
		}
	}
	b.StopTimer()
	if stats.video.packets != uint64(b.N) {
		b.Fatalf("accounted %d of %d packets", stats.video.packets, b.N)
	}
}
