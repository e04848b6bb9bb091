package transcode

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"podium/internal/testenv"
	"podium/replaydb"
	"podium/storage"
	"podium/transcode/transcodetest"
	"podium/vod"
)

func writeRecording(t testing.TB, store storage.Store, lesson string, seconds int, complete bool) vod.Manifest {
	return transcodetest.WriteRecording(t, store, lesson, seconds, complete)
}

// sqliteDB opens a fresh embedded replay database for the test.
func sqliteDB(t testing.TB) *replaydb.DB {
	t.Helper()
	db, err := replaydb.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "podium.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// waitJob polls until the job is finished or the deadline passes.
func waitJob(t testing.TB, q *Queue, id string, within time.Duration) Job {
	t.Helper()
	var j Job
	testenv.WaitFor(t, within, "job "+id+" to finish", func() bool {
		var err error
		j, err = q.Job(context.Background(), id)
		return err == nil && j.Finished()
	})
	return j
}

// lessonJob finds a lesson's job.
func lessonJob(t testing.TB, q *Queue, lesson string) (Job, bool) {
	t.Helper()
	jobs, err := q.Jobs(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		if j.Kind == KindLesson && j.Lesson == lesson {
			return j, true
		}
	}
	return Job{}, false
}

// waitLesson waits until a lesson's job (queued by the scan) is finished.
func waitLesson(t testing.TB, q *Queue, lesson string, within time.Duration) Job {
	t.Helper()
	var j Job
	testenv.WaitFor(t, within, "the job of lesson "+lesson+" to finish", func() bool {
		var ok bool
		j, ok = lessonJob(t, q, lesson)
		return ok && j.Finished()
	})
	return j
}

// testConfig fills in ffmpeg and a work dir (unless set).
func testConfig(t testing.TB, cfg QueueConfig) QueueConfig {
	if cfg.FFmpeg == "" {
		cfg.FFmpeg, cfg.FFprobe = requireFF(t)
	}
	if cfg.TempDir == "" {
		cfg.TempDir = t.TempDir()
	}
	return cfg
}

// node is a queue running as one node would, until stop or the test's end.
type node struct {
	*Queue
	reg  *prometheus.Registry
	stop func() // cancels Run hard and waits for it
}

func startNode(t testing.TB, db *replaydb.DB, store storage.Store, cfg QueueConfig) *node {
	t.Helper()
	reg := prometheus.NewRegistry()
	q, err := NewQueue(context.Background(), db, store, testConfig(t, cfg), nil, NewMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("queue: %v", err)
		}
		q.Close()
	}
	t.Cleanup(stop)
	return &node{Queue: q, reg: reg, stop: stop}
}

// startQueue runs a queue on a fresh SQLite database until the test ends.
func startQueue(t testing.TB, store storage.Store, cfg QueueConfig) *Queue {
	t.Helper()
	return startNode(t, sqliteDB(t), store, cfg).Queue
}

func requireFF(t testing.TB) (ffmpeg, ffprobe string) {
	return testenv.RequireBinary(t, "ffmpeg"), testenv.RequireBinary(t, "ffprobe")
}
