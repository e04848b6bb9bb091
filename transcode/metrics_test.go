package transcode

import (
	"context"
	"strings"
	"testing"
	"time"

	"podium/internal/testenv"
)

// While a lesson is transcoded, /metrics shows its progress as the mean of
// the running lesson jobs, with no job or lesson id in any label value;
// once it is done the progress series is gone, the job is counted, and the
// queue depth is back to 0.
func TestMetricsCarryNoJobIDs(t *testing.T) {
	store := localStore(t)
	n := startNode(t, sqliteDB(t), store, QueueConfig{Config: small, Workers: 1, MaxAttempts: 1})

	const lesson = "secret-lesson-4711"
	writeRecording(t, store, lesson, 20, true)
	queued, err := n.EnqueueLesson(context.Background(), lesson)
	if err != nil {
		t.Fatal(err)
	}
	gather := func() (values map[string]float64, progress float64, found bool) {
		mfs, err := n.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		values = map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				key := mf.GetName()
				for _, lp := range m.GetLabel() {
					if strings.Contains(lp.GetValue(), lesson) || lp.GetName() == "job" || lp.GetName() == "lesson" {
						t.Fatalf("%s{%s=%q}: a job or lesson id as a label", mf.GetName(), lp.GetName(), lp.GetValue())
					}
					key += "{" + lp.GetValue() + "}"
				}
				values[key] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
				if mf.GetName() == "podium_transcode_running_progress" {
					if len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != KindLesson {
						t.Fatalf("progress labels = %v", m.GetLabel())
					}
					progress, found = m.GetGauge().GetValue(), true
				}
			}
		}
		return values, progress, found
	}
	testenv.WaitFor(t, 60*time.Second, "progress of the running job", func() bool {
		_, p, ok := gather()
		if ok && (p < 0 || p > 1) {
			t.Fatalf("progress %v outside 0..1", p)
		}
		return ok && p > 0
	})
	if j := waitJob(t, n.Queue, queued.ID, 120*time.Second); j.State != StateDone {
		t.Fatalf("job = %+v", j)
	}
	testenv.WaitFor(t, 15*time.Second, "the progress series to go and the job to be counted", func() bool {
		v, _, ok := gather()
		return !ok && v["podium_transcode_jobs{done}"] == 1 && v["podium_transcode_queue_depth"] == 0 &&
			v["podium_transcode_jobs_finished_total{done}"] == 1
	})
}
