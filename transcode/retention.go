package transcode

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
)

// RetentionArgs is one retention pass. River's elected leader inserts one
// every RetentionEvery (unique per period), so of all the nodes sharing the
// database exactly one runs each pass.
type RetentionArgs struct{}

// Kind names the job kind in River.
func (RetentionArgs) Kind() string { return "retention" }

// Retainer deletes the lessons past their retention (vod.Service).
type Retainer interface {
	Retention(ctx context.Context) ([]string, error)
}

// SetRetainer sets what a retention pass runs; call it before Run. A node
// without one (and with no retention configured) completes passes as
// no-ops, so every node may claim them.
func (q *Queue) SetRetainer(r Retainer) { q.retainer.Store(&r) }

type retentionWorker struct {
	river.WorkerDefaults[RetentionArgs]
	q *Queue
}

func (w *retentionWorker) Work(ctx context.Context, _ *river.Job[RetentionArgs]) error {
	r := w.q.retainer.Load()
	if r == nil {
		return nil
	}
	deleted, err := (*r).Retention(ctx)
	if len(deleted) > 0 {
		w.q.log.Info("transcode: retention pass deleted lessons", "lessons", deleted)
	}
	if err != nil {
		return fmt.Errorf("retention pass: %w", err)
	}
	return nil
}

// retentionJob is the periodic job, when retention is configured.
func retentionJob(every time.Duration) *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(every), func() (river.JobArgs, *river.InsertOpts) {
		return RetentionArgs{}, &river.InsertOpts{Queue: riverQueue, UniqueOpts: river.UniqueOpts{ByPeriod: every}}
	}, &river.PeriodicJobOpts{RunOnStart: true})
}
