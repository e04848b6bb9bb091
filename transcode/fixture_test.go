package transcode

import (
	"github.com/prometheus/client_golang/prometheus"

	"context"
	"testing"
	"time"

	"podium/internal/testenv"
	"podium/storage"
	"podium/transcode/transcodetest"
	"podium/vod"
)

func writeRecording(t testing.TB, store storage.Store, lesson string, seconds int, complete bool) vod.Manifest {
	return transcodetest.WriteRecording(t, store, lesson, seconds, complete)
}

func putJSON(t testing.TB, store storage.Store, key string, v any) {
	transcodetest.PutJSON(t, store, key, v)
}

// waitJob polls until the job is finished or the deadline passes.
func waitJob(t testing.TB, q *Queue, id string, within time.Duration) Job {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		j, ok := q.Job(id)
		if ok && j.Finished() {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s not finished within %s: %+v", id, within, j)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startQueue runs a queue until the test ends.
func startQueue(t testing.TB, store storage.Store, cfg QueueConfig) *Queue {
	t.Helper()
	cfg.FFmpeg = testenv.RequireBinary(t, "ffmpeg")
	cfg.FFprobe = testenv.RequireBinary(t, "ffprobe")
	cfg.TempDir = t.TempDir()
	q := NewQueue(store, cfg, nil, NewMetrics(prometheus.NewRegistry()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("queue: %v", err)
		}
	})
	return q
}

func requireFF(t testing.TB) (ffmpeg, ffprobe string) {
	return testenv.RequireBinary(t, "ffmpeg"), testenv.RequireBinary(t, "ffprobe")
}
