package transcode

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"podium/internal/testenv"
)

// While a lesson is transcoded, /metrics shows its progress as the mean of
// the running lesson jobs, with no job or lesson id in any label value;
// once it is done the progress series is gone and the job is counted.
func TestMetricsCarryNoJobIDs(t *testing.T) {
	store := localStore(t)
	cfg := QueueConfig{Workers: 1, MaxAttempts: 1}
	cfg.FFmpeg = testenv.RequireBinary(t, "ffmpeg")
	cfg.FFprobe = testenv.RequireBinary(t, "ffprobe")
	cfg.TempDir = t.TempDir()
	reg := prometheus.NewRegistry()
	q := NewQueue(store, cfg, nil, NewMetrics(reg))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("queue: %v", err)
		}
	})

	const lesson = "secret-lesson-4711"
	writeRecording(t, store, lesson, 20, true)
	if _, err := q.EnqueueLesson(context.Background(), lesson); err != nil {
		t.Fatal(err)
	}
	gather := func() (progress float64, found bool) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					if strings.Contains(lp.GetValue(), lesson) || lp.GetName() == "job" || lp.GetName() == "lesson" {
						t.Fatalf("%s{%s=%q}: a job or lesson id as a label", mf.GetName(), lp.GetName(), lp.GetValue())
					}
				}
				if mf.GetName() == "podium_transcode_running_progress" {
					if len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != KindLesson {
						t.Fatalf("progress labels = %v", m.GetLabel())
					}
					progress, found = m.GetGauge().GetValue(), true
				}
			}
		}
		return progress, found
	}
	testenv.WaitFor(t, 60*time.Second, "progress of the running job", func() bool {
		p, ok := gather()
		if ok && (p < 0 || p > 1) {
			t.Fatalf("progress %v outside 0..1", p)
		}
		return ok && p > 0
	})
	if j := waitJob(t, q, lessonJobID(lesson), 120*time.Second); j.State != StateDone {
		t.Fatalf("job = %+v", j)
	}
	testenv.WaitFor(t, 10*time.Second, "the progress series to go", func() bool {
		_, ok := gather()
		return !ok
	})
}
