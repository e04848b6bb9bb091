package transcode

import (
	"errors"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"io"
	"podium/storage"
	"sync/atomic"

	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"podium/vod"
)

// TestCorruptSegmentFailsJob: a damaged segment ends the job as failed with
// a reason naming the segment, at once (no retries), and the worker is free
// for the next job.
func TestCorruptSegmentFailsJob(t *testing.T) {
	store := localStore(t)
	q := startQueue(t, store, QueueConfig{Workers: 1, MaxAttempts: 3, RetryBackoff: time.Hour})
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
		if _, err := q.EnqueueLesson(context.Background(), lesson); err != nil {
			t.Fatal(err)
		}
		j := waitJob(t, q, lessonJobID(lesson), 60*time.Second)
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
	// Metrics are updated just after the state the test waited for.
	deadline := time.Now().Add(20 * time.Second)
	for {
		jobs := testutil.ToFloat64(q.m.jobs.WithLabelValues(StateFailed))
		finished := testutil.ToFloat64(q.m.finished.WithLabelValues(StateFailed))
		if jobs == 2 && finished == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("podium_transcode_jobs{state=failed} = %v, podium_transcode_jobs_finished_total{result=failed} = %v; want 2 and 2", jobs, finished)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestJobsSurviveRestartAndCancel: a job that was running when the process
// died runs again after a restart; a canceled running job stops its ffmpeg
// and stays canceled after the next restart.
func TestJobsSurviveRestartAndCancel(t *testing.T) {
	store := localStore(t)
	writeRecording(t, store, "long", 30, true)
	writeRecording(t, store, "crashed", 6, true)
	// What a crash leaves behind: a job stuck in "running".
	putJSON(t, store, JobKey(lessonJobID("crashed")), Job{ID: lessonJobID("crashed"), Kind: KindLesson, Lesson: "crashed",
		State: StateRunning, Attempts: 1, MaxAttempts: 3, CreatedAt: time.Now().Add(-time.Hour)})

	small := QueueConfig{Workers: 1, Config: Config{Ladder: []Rung{{Name: "360p", Height: 360, VideoKbps: 500}}}}
	q := startQueue(t, store, small)
	j := waitJob(t, q, lessonJobID("crashed"), 60*time.Second)
	if j.State != StateDone || j.Attempts != 2 {
		t.Fatalf("crashed job after restart: %+v", j)
	}

	if _, err := q.EnqueueLesson(context.Background(), "long"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		j, _ := q.Job(lessonJobID("long"))
		if j.State == StateRunning && j.Phase == "encode" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("long job never started encoding: %+v", j)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := q.Cancel(context.Background(), lessonJobID("long")); err != nil {
		t.Fatal(err)
	}
	// The worker must come free: a new job runs to the end.
	if _, err := q.EnqueueLesson(context.Background(), "crashed"); err != nil {
		t.Fatal(err)
	}
	if j := waitJob(t, q, lessonJobID("crashed"), 60*time.Second); j.State != StateDone {
		t.Fatalf("job after cancel: %+v", j)
	}
	var stored Job
	if err := getJSON(context.Background(), store, JobKey(lessonJobID("long")), &stored); err != nil || stored.State != StateCanceled {
		t.Fatalf("stored canceled job: %+v, %v", stored, err)
	}
	if _, err := store.Stat(context.Background(), vod.LessonBase("long")+vod.AssetsFile); err == nil {
		t.Errorf("canceled job published assets")
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
	q := startQueue(t, store, QueueConfig{Workers: 1, RetryBackoff: 300 * time.Millisecond,
		Config: Config{Ladder: []Rung{{Name: "360p", Height: 360, VideoKbps: 500}}}})
	if _, err := q.EnqueueLesson(context.Background(), "flaky"); err != nil {
		t.Fatal(err)
	}
	j := waitJob(t, q, lessonJobID("flaky"), 90*time.Second)
	if j.State != StateDone || j.Attempts != 2 {
		t.Fatalf("want done on the 2nd attempt, got %+v", j)
	}
	if n := testutil.ToFloat64(q.m.finished.WithLabelValues("retry")); n != 1 {
		t.Errorf("retries counted: %v, want 1", n)
	}
	if _, err := q.EnqueueLesson(context.Background(), "../etc"); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad lesson id: %v", err)
	}
}
