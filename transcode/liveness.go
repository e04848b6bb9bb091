package transcode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"
)

// A job's liveness. River rescues a job left running by a dead node only
// once it has run longer than any job may (JobTimeout plus a margin: two
// hours and more), because it cannot tell a dead worker from a slow one.
// Here every node writes a heartbeat into the metadata of each job it
// works, every RescueAfter/4, and every working node returns to the queue
// the jobs whose heartbeat is older than RescueAfter: a killed worker's
// job runs again within about a minute, while a job whose ffmpeg runs for
// an hour is never touched as long as its node lives.
//
// A rescue is a failed attempt, as River's own rescuer makes it: retried
// with backoff, given up after MaxAttempts (so a recording that kills its
// worker every time does not loop), or finished as canceled if a cancel
// was asked while its node was dead. Only a job whose current attempt has
// written a heartbeat is rescued here; one worked by a node without
// heartbeats (an older version, during a rolling upgrade) is left to
// River's rescuer, so it is never taken from a live node.
//
// The heartbeat is fenced by the attempt number: a node whose job was
// rescued (it was cut off from the database for longer than RescueAfter)
// finds its next heartbeat refused, and stops that job's ffmpeg at once.

// heartbeatKey is the job metadata key of the heartbeat.
const heartbeatKey = "podium_heartbeat"

// heartbeat is the value under heartbeatKey: which attempt is alive, and
// when its node last said so (that node's clock; nodes' clocks must agree
// to well within RescueAfter, as River's own rescuer assumes).
type heartbeat struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Node    string    `json:"node"`
}

// errJobLost stops a job whose heartbeat was refused: its row no longer
// says this node runs this attempt.
var errJobLost = errors.New("job taken from this node: its heartbeat did not reach the database in time and it was queued again")

// liveness is River worker middleware that holds every job this node
// works (heartbeats), and the loop that rescues the jobs of dead nodes.
type liveness struct {
	river.MiddlewareDefaults

	node  string
	after time.Duration // a heartbeat older than this is a dead node's
	retry river.ClientRetryPolicy
	log   *slog.Logger
	jobs  *jobDB // set once River's client is made, before run

	mu   sync.Mutex
	held map[int64]heldJob
}

// heldJob is a job this node works: its attempt and what stops it.
type heldJob struct {
	attempt int
	stop    context.CancelCauseFunc
}

func newLiveness(node string, after time.Duration, retry river.ClientRetryPolicy, log *slog.Logger) *liveness {
	return &liveness{node: node, after: after, retry: retry, log: log, held: map[int64]heldJob{}}
}

// every is how often heartbeats are written and dead nodes' jobs looked
// for: four heartbeats fit in RescueAfter, so a live node misses three
// before its job is taken.
func (l *liveness) every() time.Duration { return l.after / 4 }

// Work holds the job while it is worked: a first heartbeat before the
// work starts, then one every every() from run.
func (l *liveness) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	l.mu.Lock()
	l.held[job.ID] = heldJob{attempt: job.Attempt, stop: stop}
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.held, job.ID)
		l.mu.Unlock()
	}()
	l.beat(ctx, job.ID, job.Attempt)
	return doInner(ctx)
}

// run writes heartbeats and rescues dead nodes' jobs until ctx ends. The
// first rescue pass is at once, so a node restarted after a crash takes up
// its own orphaned job as soon as its heartbeat is old enough.
func (l *liveness) run(ctx context.Context) {
	t := time.NewTicker(l.every())
	defer t.Stop()
	for {
		l.rescue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		held := maps.Clone(l.held)
		l.mu.Unlock()
		for id, h := range held {
			l.beat(ctx, id, h.attempt)
		}
	}
}

// beat writes one heartbeat of a held job. A refused one (the job is no
// longer running this attempt: rescued, or finished a moment ago) stops
// the job if it is still held; a database error only logs: the job is
// rescued if the database stays out of reach for RescueAfter.
func (l *liveness) beat(ctx context.Context, id int64, attempt int) {
	b, err := json.Marshal(heartbeat{Attempt: attempt, At: time.Now().UTC(), Node: l.node})
	if err != nil {
		l.log.Error("transcode: heartbeat encoding", "job", id, "err", err)
		return
	}
	owned, err := l.jobs.heartbeat(ctx, id, attempt, b)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			l.log.Warn("transcode: job heartbeat not written", "job", id, "err", err)
		}
	case !owned:
		l.mu.Lock()
		h, still := l.held[id]
		l.mu.Unlock()
		if still && h.attempt == attempt {
			l.log.Warn("transcode: job taken from this node; stopping it", "job", id, "attempt", attempt)
			h.stop(errJobLost)
		}
	}
}

// rescue returns to the queue the running jobs whose heartbeat is older
// than RescueAfter. Safe on every node at once: each row is changed only
// while it is still running and attempted before the horizon, so a job
// is rescued once, and never after another node took it up again.
func (l *liveness) rescue(ctx context.Context) {
	now := time.Now().UTC()
	horizon := now.Add(-l.after)
	rows, err := l.jobs.runningSince(ctx, horizon)
	if err != nil {
		if ctx.Err() == nil {
			l.log.Warn("transcode: looking for jobs of dead nodes", "err", err)
		}
		return
	}
	p := riverdriver.JobRescueManyParams{StuckHorizon: horizon}
	for _, row := range rows {
		hb, ok := lastHeartbeat(row)
		if !ok || hb.At.After(horizon) {
			continue // alive, or worked by a node without heartbeats
		}
		l.mu.Lock()
		h, mine := l.held[row.ID]
		l.mu.Unlock()
		if mine && h.attempt == row.Attempt {
			continue // this node works it; its heartbeats failed to write
		}
		state, finalized, scheduled := l.decide(row, now)
		msg := fmt.Sprintf("node %s stopped: no heartbeat since %s; job queued again after %s", hb.Node, hb.At.Format(time.RFC3339), l.after)
		if state == rivertype.JobStateCancelled {
			msg = fmt.Sprintf("node %s stopped while a cancel was asked: no heartbeat since %s", hb.Node, hb.At.Format(time.RFC3339))
		}
		e, err := json.Marshal(rivertype.AttemptError{At: now, Attempt: row.Attempt, Error: msg})
		if err != nil {
			l.log.Error("transcode: rescue error encoding", "job", row.ID, "err", err)
			continue
		}
		p.ID = append(p.ID, row.ID)
		p.Error = append(p.Error, e)
		p.FinalizedAt = append(p.FinalizedAt, finalized)
		p.ScheduledAt = append(p.ScheduledAt, scheduled)
		p.State = append(p.State, string(state))
		l.log.Warn("transcode: job of a stopped node rescued", "job", row.ID, "kind", row.Kind, "attempt", row.Attempt,
			"node", hb.Node, "lastHeartbeat", hb.At, "state", state)
	}
	if len(p.ID) == 0 {
		return
	}
	if err := l.jobs.rescue(ctx, &p); err != nil && ctx.Err() == nil {
		l.log.Warn("transcode: rescuing jobs of dead nodes", "jobs", p.ID, "err", err)
	}
}

// decide is what a rescue makes of a job, as River's rescuer decides: a
// canceled one is finished canceled, one on its last attempt is given up,
// any other is retried with backoff.
func (l *liveness) decide(row *rivertype.JobRow, now time.Time) (state rivertype.JobState, finalized *time.Time, scheduled time.Time) {
	switch {
	case canceledByRequest(row):
		return rivertype.JobStateCancelled, &now, row.ScheduledAt
	case row.Attempt >= row.MaxAttempts:
		return rivertype.JobStateDiscarded, &now, row.ScheduledAt
	default:
		return rivertype.JobStateRetryable, nil, l.retry.NextRetry(row)
	}
}

// lastHeartbeat is the heartbeat of the job's current attempt, if it wrote
// one.
func lastHeartbeat(row *rivertype.JobRow) (heartbeat, bool) {
	var md map[string]json.RawMessage
	if json.Unmarshal(row.Metadata, &md) != nil {
		return heartbeat{}, false
	}
	var hb heartbeat
	if raw, ok := md[heartbeatKey]; !ok || json.Unmarshal(raw, &hb) != nil || hb.Attempt != row.Attempt {
		return heartbeat{}, false
	}
	return hb, true
}
