package ingest

import (
	"testing"
	"time"

	"github.com/pion/rtp"

	"podium/sfu"
)

type discardSink struct{ n int }

func (d *discardSink) WriteRTP(_ int, pkt *rtp.Packet) { d.n += len(pkt.Payload) }

// BenchmarkForwardH264 measures the CPU cost of forwarding one second of a
// 25 fps, ~2 Mbit/s H.264 camera (a keyframe every second) through the
// depacketize/retime/re-packetize path into a published track with one
// sink. ns/op is CPU per second of video, so %core/source = ns/op / 1e7.
func BenchmarkForwardH264(b *testing.B) {
	sps := []byte{0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8}
	pps := []byte{0x68, 0xce, 0x3c, 0x80}
	idr := append([]byte{0x65, 0x88}, make([]byte, 60000)...)
	p := append([]byte{0x41, 0x9a}, make([]byte, 7500)...)
	// One second of camera packets, as gortsplib would hand them over.
	var second [][]byte
	pz := newH264Packetizer()
	pz.pkt.SSRC = 1234
	for f := range 25 {
		au := [][]byte{p}
		if f == 0 {
			au = [][]byte{sps, pps, idr}
		}
		pz.send(au, uint32(f*3600), func(pkt *rtp.Packet) {
			raw, _ := pkt.Marshal()
			second = append(second, raw)
		})
	}
	track := sfu.NewTrack(sfu.TrackInfo{ID: "v", Kind: sfu.KindVideo, Codec: h264Codec}, nil)
	track.AddSink("discard", &discardSink{})
	s := &Source{log: testLoggerTB(), epoch: time.Now()}
	s.vclock = newTimeline(90000, s.epoch)
	vp := s.newVideoPipe(newVideoOut(track))
	pkts := make([]rtp.Packet, len(second))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j, raw := range second {
			// gortsplib gives each packet its own buffer, as here.
			pkts[j] = rtp.Packet{}
			_ = pkts[j].Unmarshal(raw)
			pkts[j].Timestamp += uint32(i * 90000)
			vp.push(&pkts[j])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e7, "%core/source")
}
