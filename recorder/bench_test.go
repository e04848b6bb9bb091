package recorder

import (
	"context"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"podium/internal/testmedia"
	"podium/sfu"
	"podium/storage/local"
)

// BenchmarkRecordTrack measures the recorder's cost per recorded track: one
// op is one second of 640x360 H.264 at 30 fps (or of Opus) going through
// depacketizing, fMP4 muxing, spooling and upload to the local store.
// cpu-ms/media-s is the CPU share of one track (10 = 1 % of a core).
func BenchmarkRecordTrack(b *testing.B) {
	for _, codec := range []string{codecH264, codecOpus} {
		b.Run(codec, func(b *testing.B) { benchRecord(b, codec) })
	}
}

func benchRecord(b *testing.B, codec string) {
	files := testmedia.ForTest(b)
	var pl rtp.Payloader
	var frames [][]byte
	var step uint32
	info := sfu.TrackInfo{ID: "t", ParticipantID: "p", Source: sfu.SourceCamera, Kind: sfu.KindVideo,
		Codec: sfu.Codec{MimeType: "video/H264", ClockRate: 90000}}
	if codec == codecH264 {
		aus, err := testmedia.ReadH264AccessUnits(files.H264)
		if err != nil {
			b.Fatal(err)
		}
		frames, pl, step = aus[:30], &codecs.H264Payloader{}, 3000
	} else {
		// Opus packets of 20 ms; the content does not matter to the muxer.
		for range 50 {
			frames = append(frames, make([]byte, 160))
		}
		pl, step = &codecs.OpusPayloader{}, 960
		info.Kind, info.Source, info.Codec = sfu.KindAudio, sfu.SourceMicrophone, sfu.Codec{MimeType: "audio/opus", ClockRate: 48000, Channels: 2}
	}
	store, err := local.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	rec, err := New(Config{Store: store, SpoolDir: b.TempDir(), SegmentDuration: 4 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer rec.Close(context.Background())
	l := newLesson(rec, Manifest{Lesson: "bench"})
	l.recording = true
	mt := ManifestTrack{ID: "t", Kind: string(info.Kind), Codec: codec}
	l.man.Tracks = append(l.man.Tracks, mt)
	rt := newRecTrack(l, mt, 2, 0)
	s := newSession(rt, sfu.NewTrack(info, nil))
	rt.begin(s)

	pk := rtp.NewPacketizer(1200, 96, 1, pl, rtp.NewRandomSequencer(), 90000)
	var pkts [][]*rtp.Packet
	for _, f := range frames {
		pkts = append(pkts, pk.Packetize(f, step))
	}
	// Frames keep their packets; each op rewrites timestamps to continue
	// the stream (the keyframe in frame 0 starts each second).
	start := time.Now()
	var ts uint32
	var media time.Duration
	buf := make([]byte, 0, 1500)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, fp := range pkts {
			ts += step
			media += time.Duration(step) * time.Second / time.Duration(rt.rate)
			for _, p := range fp {
				buf = append(buf[:0], p.Payload...)
				rt.handle(packet{sess: s, seq: p.SequenceNumber, ts: ts, ssrc: 1, marker: p.Marker, payload: &buf, arrival: start.Add(media)})
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "cpu-ms/media-s")
}
