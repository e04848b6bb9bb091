package transcode

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"podium/internal/testenv"
	"podium/storage"
	"podium/vod"
)

// small is a one-rung ladder that keeps tests quick; tiny is smaller
// still, for tests of the queue where the picture does not matter.
var (
	small = Config{Ladder: []Rung{{Name: "360p", Height: 360, VideoKbps: 500}}, Preset: "ultrafast"}
	tiny  = Config{Ladder: []Rung{{Name: "180p", Height: 180, VideoKbps: 200}}, Preset: "ultrafast", FPS: 15}
)

// TestCorruptSegmentFailsJob: a damaged segment ends the job as failed with
// a reason naming the segment, at once (no retries), and the worker is free
// for the next job.
func TestCorruptSegmentFailsJob(t *testing.T) {
	store := localStore(t)
	n := startNode(t, sqliteDB(t), store, QueueConfig{Config: tiny, Workers: 1, MaxAttempts: 3, RetryBackoff: time.Hour})
	m := writeRecording(t, store, "bad", 6, true)
	seg := m.Tracks[0].Segments[1]
	garbage := bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, int(seg.Bytes/4))
	garbage = append(garbage, make([]byte, int(seg.Bytes)-len(garbage))...)
	if err := store.Put(context.Background(), seg.Key, bytes.NewReader(garbage), int64(len(garbage)), ""); err != nil {
		t.Fatal(err)
	}
	// A second lesson whose last segment never fully arrived.
	m2 := writeRecording(t, store, "partial", 6, true)
	last := m2.Tracks[2].Segments[len(m2.Tracks[2].Segments)-1]
	b, _ := readAll(context.Background(), store, last.Key)
	if err := store.Put(context.Background(), last.Key, bytes.NewReader(b[:len(b)/2]), int64(len(b)/2), ""); err != nil {
		t.Fatal(err)
	}

	for lesson, want := range map[string]string{"bad": seg.Key, "partial": last.Key} {
		queued, err := n.EnqueueLesson(context.Background(), lesson)
		if err != nil {
			t.Fatal(err)
		}
		j := waitJob(t, n.Queue, queued.ID, 60*time.Second)
		if j.State != StateFailed || j.Attempts != 1 {
			t.Fatalf("%s: want failed after 1 attempt, got %+v", lesson, j)
		}
		if !strings.Contains(j.Error, want) {
			t.Errorf("%s: reason %q does not name %s", lesson, j.Error, want)
		}
		t.Logf("%s: %s", lesson, j.Error)
		if _, err := store.Stat(context.Background(), vod.LessonBase(lesson)+vod.AssetsFile); err == nil {
			t.Errorf("%s: a failed job published assets", lesson)
		}
	}
	if f := testutil.ToFloat64(n.m.finished.WithLabelValues(StateFailed)); f != 2 {
		t.Errorf("podium_transcode_jobs_finished_total{result=failed} = %v, want 2", f)
	}
}

// TestRestartLosesNoJob: a node stopped hard in the middle of a job (its
// ffmpeg killed) and its queued jobs: after a restart on the same database
// every job runs to the end, the interrupted one without counting the
// interrupted attempt.
func TestRestartLosesNoJob(t *testing.T) {
	store := localStore(t)
	db := sqliteDB(t)
	writeRecording(t, store, "one", 6, true)
	for _, l := range []string{"two", "three"} {
		cloneRecording(t, store, "one", store, l)
	}
	cfg := QueueConfig{Config: small, Workers: 1, NodeID: "before"}
	n := startNode(t, db, store, cfg)
	var ids []string
	for _, l := range []string{"one", "two", "three"} {
		j, err := n.EnqueueLesson(context.Background(), l)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	testenv.WaitFor(t, 60*time.Second, "the first job to encode", func() bool {
		j, err := n.Job(context.Background(), ids[0])
		return err == nil && j.Phase == "encode"
	})
	n.stop()

	cfg.NodeID = "after"
	after := startNode(t, db, store, cfg)
	for i, id := range ids {
		j := waitJob(t, after.Queue, id, 90*time.Second)
		if j.State != StateDone || j.Attempts != 1 || j.Node != "after" {
			t.Fatalf("job %d after the restart: %+v", i, j)
		}
	}
}

// TestCancel: a canceled running job stops its ffmpeg, publishes nothing
// and stays canceled; the worker comes free for the next job; a finished
// lesson's job can be run again, a running one cannot be queued twice.
func TestCancel(t *testing.T) {
	store := localStore(t)
	writeRecording(t, store, "long", 30, true)
	writeRecording(t, store, "short", 4, true)
	n := startNode(t, sqliteDB(t), store, QueueConfig{Config: small, Workers: 1})

	long, err := n.EnqueueLesson(context.Background(), "long")
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 60*time.Second, "the long job to encode", func() bool {
		j, err := n.Job(context.Background(), long.ID)
		return err == nil && j.Phase == "encode"
	})
	if again, err := n.EnqueueLesson(context.Background(), "long"); !errors.Is(err, ErrJobActive) || again.ID != long.ID {
		t.Fatalf("queueing a running lesson again: %+v, %v", again, err)
	}
	if _, err := n.Cancel(context.Background(), long.ID); err != nil {
		t.Fatal(err)
	}
	short, err := n.EnqueueLesson(context.Background(), "short")
	if err != nil {
		t.Fatal(err)
	}
	if j := waitJob(t, n.Queue, short.ID, 60*time.Second); j.State != StateDone {
		t.Fatalf("job after cancel: %+v", j)
	}
	if j := waitJob(t, n.Queue, long.ID, 10*time.Second); j.State != StateCanceled {
		t.Fatalf("canceled job: %+v", j)
	}
	if _, err := store.Stat(context.Background(), vod.LessonBase("long")+vod.AssetsFile); err == nil {
		t.Errorf("canceled job published assets")
	}
	// Again: the same job runs once more.
	again, err := n.EnqueueLesson(context.Background(), "short")
	if err != nil || again.ID != short.ID {
		t.Fatalf("transcode again: %+v, %v", again, err)
	}
	if j := waitJob(t, n.Queue, short.ID, 60*time.Second); j.State != StateDone || j.Attempts != 2 {
		t.Fatalf("job run again: %+v", j)
	}
	if _, err := n.Cancel(context.Background(), "999999"); !errors.Is(err, ErrJobNotFound) {
		t.Errorf("cancel of no job: %v", err)
	}
}

// flakyStore is the real store with an outage injected: the first Gets of
// recording segments fail as a network error would.
type flakyStore struct {
	storage.Store
	failures atomic.Int32
}

func (f *flakyStore) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	if strings.Contains(key, "/rec/") && f.failures.Add(-1) >= 0 {
		return nil, storage.ObjectInfo{}, errors.New("connection reset by peer")
	}
	return f.Store.Get(ctx, key)
}

// TestTransientFailureIsRetried: a storage outage fails an attempt, the job
// waits its backoff and succeeds on the next attempt.
func TestTransientFailureIsRetried(t *testing.T) {
	real := localStore(t)
	writeRecording(t, real, "flaky", 4, true)
	store := &flakyStore{Store: real}
	store.failures.Store(1)
	n := startNode(t, sqliteDB(t), store, QueueConfig{Config: tiny, Workers: 1, RetryBackoff: 300 * time.Millisecond})
	queued, err := n.EnqueueLesson(context.Background(), "flaky")
	if err != nil {
		t.Fatal(err)
	}
	j := waitJob(t, n.Queue, queued.ID, 90*time.Second)
	if j.State != StateDone || j.Attempts != 2 {
		t.Fatalf("want done on the 2nd attempt, got %+v", j)
	}
	if f := testutil.ToFloat64(n.m.finished.WithLabelValues("retry")); f != 1 {
		t.Errorf("retries counted: %v, want 1", f)
	}
	if _, err := n.EnqueueLesson(context.Background(), "../etc"); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad lesson id: %v", err)
	}
}

// TestStalledFFmpegIsAFailedAttempt: an ffmpeg that stops reporting
// progress is killed by the watchdog and the attempt counts as failed;
// with one attempt allowed the job ends failed naming the stall.
func TestStalledFFmpegIsAFailedAttempt(t *testing.T) {
	store := localStore(t)
	writeRecording(t, store, "stuck", 4, true)
	cfg := testConfig(t, QueueConfig{Config: tiny, Workers: 1, MaxAttempts: 1})
	cfg.StallTimeout = time.Second
	// An "ffmpeg" that never reports progress; ffprobe is the real one.
	cfg.FFmpeg = filepath.Join(t.TempDir(), "ffmpeg")
	if err := os.WriteFile(cfg.FFmpeg, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, sqliteDB(t), store, cfg)
	queued, err := n.EnqueueLesson(context.Background(), "stuck")
	if err != nil {
		t.Fatal(err)
	}
	j := waitJob(t, n.Queue, queued.ID, 60*time.Second)
	if j.State != StateFailed || j.Attempts != 1 || !strings.Contains(j.Error, "stalled") {
		t.Fatalf("stalled job: %+v", j)
	}
}
