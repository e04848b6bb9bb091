package transcode

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"podium/internal/testenv"
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

// BenchmarkQueueThroughput measures whole-queue throughput with 1, 2 and 3
// worker nodes (one River client and one job at a time each) sharing one
// PostgreSQL and one storage directory: 6 lessons of 8 s (composite
// recording, 720p+360p ladder, veryfast), from queueing to the last job
// done. Metrics: lessons_per_min and x_realtime (media seconds per wall
// second, all nodes together).
//
//	go test -run '^$' -bench BenchmarkQueueThroughput -benchtime 1x ./transcode/
func BenchmarkQueueThroughput(b *testing.B) {
	const lessons, seconds = 6, 8
	dsn := testenv.StartPostgres(b)
	src := localStore(b)
	writeRecording(b, src, "bench", seconds, true)
	ladder := []Rung{{Name: "720p", Height: 720, VideoKbps: 2200}, {Name: "360p", Height: 360, VideoKbps: 600}}
	run := 0
	for _, nodes := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("workers=%d", nodes), func(b *testing.B) {
			var media, wall float64
			for i := 0; i < b.N; i++ {
				run++
				db := createDB(b, dsn, fmt.Sprintf("bench%d", run))
				store := localStore(b)
				for l := range lessons {
					cloneRecording(b, src, "bench", store, fmt.Sprintf("l%d", l))
				}
				var ns []*node
				for n := range nodes {
					ns = append(ns, startNode(b, openDB(b, db), store, QueueConfig{Config: Config{Ladder: ladder},
						Workers: 1, NodeID: fmt.Sprintf("node-%d", n)}))
				}
				start := time.Now()
				var ids []string
				for l := range lessons {
					j, err := ns[0].EnqueueLesson(context.Background(), fmt.Sprintf("l%d", l))
					if err != nil {
						b.Fatal(err)
					}
					ids = append(ids, j.ID)
				}
				for _, id := range ids {
					if j := waitJob(b, ns[0].Queue, id, 10*time.Minute); j.State != StateDone {
						b.Fatalf("job %+v", j)
					}
				}
				wall += time.Since(start).Seconds()
				media += lessons * seconds
				for _, n := range ns {
					n.stop()
				}
			}
			b.ReportMetric(float64(lessons*b.N)/wall*60, "lessons_per_min")
			b.ReportMetric(media/wall, "x_realtime")
		})
	}
}

// createDB makes an empty database on the PostgreSQL server of dsn and
// returns its DSN.
func createDB(t testing.TB, dsn, name string) string {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}
