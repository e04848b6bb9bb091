package transcode

import (
	"context"
	"testing"
	"time"
)

// BenchmarkTranscode measures transcode speed as a multiple of real time
// (media seconds per wall second, metric x_realtime) for each rendition on
// its own and for the whole default ladder, on a 10 s composite recording
// (640x360 camera + 1280x720 screen + Opus), including packaging (MP4,
// poster, sprites) and the audio-only rendition every run adds.
//
//	go test -run '^$' -bench BenchmarkTranscode -benchtime 2x ./transcode/
func BenchmarkTranscode(b *testing.B) {
	store := localStore(b)
	writeRecording(b, store, "bench", 10, true)
	for _, tc := range []struct {
		name   string
		ladder []Rung
	}{
		{"720p", []Rung{{Name: "720p", Height: 720, VideoKbps: 2200}}},
		{"360p", []Rung{{Name: "360p", Height: 360, VideoKbps: 600}}},
		{"ladder", DefaultLadder},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := Config{Ladder: tc.ladder, TempDir: b.TempDir()}
			cfg.FFmpeg, cfg.FFprobe = requireFF(b)
			cfg.setDefaults()
			p := &pipeline{cfg: cfg, store: store}
			var media float64
			start := time.Now()
			for i := 0; i < b.N; i++ {
				a, err := p.buildLesson(context.Background(), "bench", func(string, float64) {})
				if err != nil {
					b.Fatal(err)
				}
				media += a.Duration
			}
			b.ReportMetric(media/time.Since(start).Seconds(), "x_realtime")
		})
	}
}
