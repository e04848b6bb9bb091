package transcode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"podium/replaydb"
	"podium/storage"
	"podium/vod"
)

// Job states as the API shows them.
const (
	StateQueued   = "queued"
	StateRunning  = "running"
	StateDone     = "done"
	StateFailed   = "failed"
	StateCanceled = "canceled"
)

// Job kinds.
const (
	KindLesson = "lesson"
	KindClip   = "clip"
)

// Job is one transcode job as the API shows it, read from River's job
// table. Phase and Progress are known on the node running it.
type Job struct {
	ID          string           `json:"id"`
	Kind        string           `json:"kind"`
	Lesson      string           `json:"lesson"`
	Clip        *vod.ClipRequest `json:"clip,omitempty"`
	State       string           `json:"state"`
	Phase       string           `json:"phase,omitempty"`
	Progress    float64          `json:"progress"` // 0..1
	Attempts    int              `json:"attempts"`
	MaxAttempts int              `json:"maxAttempts"`
	Error       string           `json:"error,omitempty"`
	Node        string           `json:"node,omitempty"` // the node of the last attempt
	CreatedAt   time.Time        `json:"createdAt"`
	StartedAt   time.Time        `json:"startedAt,omitzero"`
	FinishedAt  time.Time        `json:"finishedAt,omitzero"`
	// NotBefore delays a retry (backoff).
	NotBefore time.Time `json:"notBefore,omitzero"`
}

// Finished reports whether the job will not run again by itself.
func (j *Job) Finished() bool {
	return j.State == StateDone || j.State == StateFailed || j.State == StateCanceled
}

// Errors returned by Queue methods.
var (
	ErrJobNotFound = errors.New("job not found")
	ErrJobActive   = errors.New("job is already queued or running")
	ErrInvalid     = errors.New("invalid request")
)

// LessonArgs is a lesson transcode job: one per lesson (unique by lesson).
type LessonArgs struct {
	Lesson string `json:"lesson" river:"unique"`
}

// Kind is the River job kind.
func (LessonArgs) Kind() string { return "transcode_lesson" }

// ClipArgs is a clip job: one per clip of a lesson.
type ClipArgs struct {
	Lesson string          `json:"lesson" river:"unique"`
	ClipID string          `json:"clipId" river:"unique"`
	Clip   vod.ClipRequest `json:"clip"`
}

// Kind is the River job kind.
func (ClipArgs) Kind() string { return "transcode_clip" }

// riverQueue is the River queue every transcode job is in.
const riverQueue = "transcode"

// QueueConfig tunes the queue.
type QueueConfig struct {
	Config
	// Workers is how many jobs this node runs at once; 0 is
	// DefaultWorkers(), below 0 none: the node only queues jobs (for
	// worker nodes sharing its database) and serves their state.
	Workers int
	// MaxAttempts before a job that keeps failing is given up.
	MaxAttempts int
	// RetryBackoff is the wait before the first retry, doubled each time.
	RetryBackoff time.Duration
	// PollInterval is how often storage is scanned for completed
	// recordings without a job (0 = never). Only working nodes scan.
	PollInterval time.Duration
	// JobTimeout ends an attempt that runs longer (a failed attempt): the
	// longest a transcode may take.
	JobTimeout time.Duration
	// RescueAfter: a job whose node wrote no heartbeat for this long (the
	// node died) is queued again, as a failed attempt (see liveness.go).
	// Nodes heartbeat every RescueAfter/4.
	RescueAfter time.Duration
	// NodeID names this node in the job table (default host-pid).
	NodeID string
	// RetentionEvery is how often a retention pass is queued (0: never,
	// for nodes without --vod-retention); see SetRetainer.
	RetentionEvery time.Duration
}

// DefaultRescueAfter is how long a job's node may write no heartbeat
// before the job is queued again: several missed heartbeats, far less than
// a transcode takes.
const DefaultRescueAfter = time.Minute

// DefaultWorkers suits the machine: ffmpeg is multi-threaded.
func DefaultWorkers() int { return max(1, runtime.NumCPU()/4) }

// Queue runs transcode jobs on River, in the replay database: a job is
// claimed by exactly one worker of all nodes sharing the database,
// retried with backoff, cancelable, and its state is River's job row.
type Queue struct {
	cfg   QueueConfig
	store storage.Store
	pipe  *pipeline
	log   *slog.Logger
	m     *Metrics
	jobs  *jobDB
	work  bool
	live  *liveness // heartbeats of this node's jobs, rescue of dead nodes' jobs

	retainer atomic.Pointer[Retainer] // what retention passes run (SetRetainer)

	mu      sync.Mutex
	running map[int64]*runState // this node's running jobs
	scan    scanState
}

// runState is what this node knows of a job it runs.
type runState struct {
	kind     string
	phase    string
	progress float64
}

// NewQueue opens the job queue on db (running River's migrations) and
// makes its workers; Run starts them. m may be nil.
func NewQueue(ctx context.Context, db *replaydb.DB, store storage.Store, cfg QueueConfig, log *slog.Logger, m *Metrics) (*Queue, error) {
	cfg.Config.setDefaults()
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers()
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 10 * time.Second
	}
	if cfg.JobTimeout <= 0 {
		cfg.JobTimeout = 2 * time.Hour
	}
	if cfg.RescueAfter <= 0 {
		cfg.RescueAfter = DefaultRescueAfter
	}
	if cfg.NodeID == "" {
		host, _ := os.Hostname()
		cfg.NodeID = host + "-" + strconv.Itoa(os.Getpid())
	}
	if log == nil {
		log = slog.Default()
	}
	q := &Queue{
		cfg: cfg, store: store, log: log, m: m, work: cfg.Workers > 0,
		pipe:    &pipeline{cfg: cfg.Config, store: store},
		running: map[int64]*runState{},
		scan:    newScanState(),
	}
	retry := backoff{first: cfg.RetryBackoff}
	q.live = newLiveness(cfg.NodeID, cfg.RescueAfter, retry, log)
	workers := river.NewWorkers()
	river.AddWorker(workers, &lessonWorker{q: q})
	river.AddWorker(workers, &clipWorker{q: q})
	river.AddWorker(workers, &retentionWorker{q: q})
	rc := &river.Config{
		ID:          cfg.NodeID,
		Logger:      slog.New(quiet{log.Handler()}).With("part", "river"),
		Workers:     workers,
		MaxAttempts: cfg.MaxAttempts,
		RetryPolicy: retry,
		JobTimeout:  cfg.JobTimeout,
		Middleware:  []rivertype.Middleware{q.live},
		// A node that died leaves its job running; the heartbeats find it
		// within RescueAfter. River's rescuer stays for jobs without
		// heartbeats (a node of an older version): it takes them up
		// once they have run longer than any job may.
		RescueStuckJobsAfter: cfg.JobTimeout + 10*time.Minute,
		// Failed and canceled jobs stay, so the scan does not queue their
		// lessons again; done ones are listed for a month.
		CompletedJobRetentionPeriod: 30 * 24 * time.Hour,
		CancelledJobRetentionPeriod: -1,
		DiscardedJobRetentionPeriod: -1,
	}
	if q.work {
		rc.Queues = map[string]river.QueueConfig{riverQueue: {MaxWorkers: cfg.Workers}}
		if cfg.RetentionEvery > 0 {
			rc.PeriodicJobs = []*river.PeriodicJob{retentionJob(cfg.RetentionEvery)}
		}
	}
	jobs, err := openJobDB(ctx, db, rc, log)
	if err != nil {
		return nil, err
	}
	q.jobs = jobs
	q.live.jobs = jobs
	if m != nil {
		m.queue.Store(q)
	}
	return q, nil
}

// Close closes the queue's database pool; call it after Run returned.
func (q *Queue) Close() { q.jobs.close() }

// Run works jobs and scans for completed recordings until ctx ends. Then
// it stops hard: running jobs are canceled (their ffmpeg killed) and go
// back to the queue without counting as an attempt, for this node after a
// restart or any other node now. A queue without workers only waits.
func (q *Queue) Run(ctx context.Context) error {
	if !q.work {
		<-ctx.Done()
		return nil
	}
	// River's soft stop would wait for every running job: not on shutdown.
	if err := q.jobs.client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("transcode: start job queue: %w", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		q.live.run(ctx)
	}()
	if q.cfg.PollInterval > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q.poll(ctx)
		}()
	}
	<-ctx.Done()
	wg.Wait()
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := q.jobs.client.StopAndCancel(stopCtx); err != nil {
		return fmt.Errorf("transcode: stop job queue: %w", err)
	}
	return nil
}

// uniqueForever: one job per lesson (or clip) whatever its state, so a
// recording is queued once; Transcode runs the same job again.
var uniqueForever = river.UniqueOpts{ByArgs: true, ByState: rivertype.JobStates()}

func (q *Queue) insertOpts() *river.InsertOpts {
	return &river.InsertOpts{Queue: riverQueue, MaxAttempts: q.cfg.MaxAttempts, UniqueOpts: uniqueForever}
}

// EnqueueLesson queues the transcode of a lesson, or runs its finished job
// again; a queued or running one is ErrJobActive (with that job).
func (q *Queue) EnqueueLesson(ctx context.Context, lesson string) (Job, error) {
	if !vod.ValidID(lesson) {
		return Job{}, fmt.Errorf("%w: lesson id %q", ErrInvalid, lesson)
	}
	return q.enqueueOrRerun(ctx, LessonArgs{Lesson: lesson})
}

// SubmitClip queues a clip job; it implements vod.ClipSubmitter.
func (q *Queue) SubmitClip(ctx context.Context, lesson string, c vod.ClipRequest) (string, error) {
	if !vod.ValidID(lesson) {
		return "", fmt.Errorf("%w: lesson id %q", ErrInvalid, lesson)
	}
	if err := c.Validate(0); err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	j, err := q.enqueueOrRerun(ctx, ClipArgs{Lesson: lesson, ClipID: c.ID, Clip: c})
	return j.ID, err
}

func (q *Queue) enqueueOrRerun(ctx context.Context, args river.JobArgs) (Job, error) {
	res, err := q.jobs.client.Insert(ctx, args, q.insertOpts())
	if err != nil {
		return Job{}, fmt.Errorf("transcode: queue %s job: %w", args.Kind(), err)
	}
	row := res.Job
	if res.UniqueSkippedAsDuplicate {
		if !finalState(row.State) {
			return q.toJob(row), ErrJobActive
		}
		if row, err = q.jobs.client.JobRetry(ctx, row.ID); err != nil {
			return Job{}, fmt.Errorf("transcode: run job %d again: %w", res.Job.ID, err)
		}
	}
	q.log.Info("transcode: job queued", "job", row.ID, "kind", row.Kind, "again", res.UniqueSkippedAsDuplicate)
	return q.toJob(row), nil
}

func finalState(s rivertype.JobState) bool {
	return s == rivertype.JobStateCompleted || s == rivertype.JobStateCancelled || s == rivertype.JobStateDiscarded
}

// Cancel stops a queued or running job, on whichever node runs it.
func (q *Queue) Cancel(ctx context.Context, id string) (Job, error) {
	n, err := parseJobID(id)
	if err != nil {
		return Job{}, err
	}
	row, err := q.jobs.client.JobCancel(ctx, n)
	if errors.Is(err, river.ErrNotFound) {
		return Job{}, ErrJobNotFound
	}
	if err != nil {
		return Job{}, fmt.Errorf("transcode: cancel job %d: %w", n, err)
	}
	q.log.Info("transcode: job cancel requested", "job", n)
	return q.toJob(row), nil
}

// Job returns one job.
func (q *Queue) Job(ctx context.Context, id string) (Job, error) {
	n, err := parseJobID(id)
	if err != nil {
		return Job{}, err
	}
	row, err := q.jobs.client.JobGet(ctx, n)
	if errors.Is(err, river.ErrNotFound) {
		return Job{}, ErrJobNotFound
	}
	if err != nil {
		return Job{}, fmt.Errorf("transcode: get job %d: %w", n, err)
	}
	return q.toJob(row), nil
}

// Jobs returns the newest limit jobs, newest first.
func (q *Queue) Jobs(ctx context.Context, limit int) ([]Job, error) {
	p := river.NewJobListParams().Kinds(LessonArgs{}.Kind(), ClipArgs{}.Kind()).
		OrderBy(river.JobListOrderByID, river.SortOrderDesc).First(limit)
	res, err := q.jobs.client.JobList(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("transcode: list jobs: %w", err)
	}
	out := make([]Job, 0, len(res.Jobs))
	for _, row := range res.Jobs {
		out = append(out, q.toJob(row))
	}
	return out, nil
}

// parseJobID reads an API job id (River's job id).
// LessonFailure reports why a lesson's transcode failed for good (given
// up after its attempts, or a recording that cannot make a replay), for
// the catalog; a job canceled by request is not a failure.
func (q *Queue) LessonFailure(ctx context.Context, lesson string) (reason string, failed bool) {
	p := river.NewJobListParams().Kinds(LessonArgs{}.Kind()).
		Where("args->>'lesson' = @lesson", river.NamedArgs{"lesson": lesson}).First(1)
	res, err := q.jobs.client.JobList(ctx, p)
	if err != nil {
		q.log.Warn("transcode: job of a lesson unreadable", "lesson", lesson, "err", err)
		return "", false
	}
	if len(res.Jobs) == 0 {
		return "", false
	}
	j := q.toJob(res.Jobs[0])
	return j.Error, j.State == StateFailed
}

func parseJobID(id string) (int64, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		return 0, ErrJobNotFound
	}
	return n, nil
}

// toJob is a River job row as the API shows it.
func (q *Queue) toJob(row *rivertype.JobRow) Job {
	j := Job{ID: strconv.FormatInt(row.ID, 10), Attempts: row.Attempt, MaxAttempts: row.MaxAttempts, CreatedAt: row.CreatedAt}
	switch row.Kind {
	case LessonArgs{}.Kind():
		var a LessonArgs
		_ = json.Unmarshal(row.EncodedArgs, &a)
		j.Kind, j.Lesson = KindLesson, a.Lesson
	case ClipArgs{}.Kind():
		var a ClipArgs
		_ = json.Unmarshal(row.EncodedArgs, &a)
		j.Kind, j.Lesson, j.Clip = KindClip, a.Lesson, &a.Clip
	default:
		j.Kind = row.Kind
	}
	if row.AttemptedAt != nil {
		j.StartedAt = *row.AttemptedAt
	}
	if row.FinalizedAt != nil {
		j.FinishedAt = *row.FinalizedAt
	}
	if n := len(row.AttemptedBy); n > 0 {
		j.Node = row.AttemptedBy[n-1]
	}
	if n := len(row.Errors); n > 0 {
		// A permanent failure is stored as River's cancel of it.
		j.Error = strings.TrimPrefix(row.Errors[n-1].Error, "JobCancelError: ")
	}
	switch row.State {
	case rivertype.JobStateRunning:
		j.State = StateRunning
		q.mu.Lock()
		if r := q.running[row.ID]; r != nil {
			j.Phase, j.Progress = r.phase, r.progress
		}
		q.mu.Unlock()
	case rivertype.JobStateCompleted:
		j.State, j.Phase, j.Progress = StateDone, "done", 1
	case rivertype.JobStateDiscarded:
		j.State = StateFailed
	case rivertype.JobStateCancelled:
		// Canceled by someone, or given up at once (a permanent error:
		// River cancels a job whose worker says it cannot succeed).
		j.State = StateFailed
		if canceledByRequest(row) {
			j.State = StateCanceled
			if j.Error == "" {
				j.Error = "canceled"
			}
		}
	case rivertype.JobStateRetryable, rivertype.JobStateScheduled:
		j.State, j.NotBefore = StateQueued, row.ScheduledAt
		if row.Attempt > 0 {
			j.Phase = "retry"
		}
	default: // available, pending
		j.State = StateQueued
	}
	return j
}

// canceledByRequest reports whether a canceled job was canceled through
// the API (River marks those in the job's metadata).
func canceledByRequest(row *rivertype.JobRow) bool {
	var md struct {
		CancelAttemptedAt any `json:"cancel_attempted_at"`
	}
	return json.Unmarshal(row.Metadata, &md) == nil && md.CancelAttemptedAt != nil
}

// backoff is the retry policy: RetryBackoff, doubled with each failure.
type backoff struct{ first time.Duration }

func (b backoff) NextRetry(row *rivertype.JobRow) time.Time {
	n := max(1, len(row.Errors))
	return time.Now().UTC().Add(b.first << min(n-1, 20))
}

type lessonWorker struct {
	river.WorkerDefaults[LessonArgs]
	q *Queue
}

func (w *lessonWorker) Work(ctx context.Context, job *river.Job[LessonArgs]) error {
	return w.q.runJob(ctx, job.JobRow, KindLesson, func(ctx context.Context, progress progressFunc) (*vod.Assets, error) {
		return w.q.pipe.buildLesson(ctx, job.Args.Lesson, progress)
	})
}

type clipWorker struct {
	river.WorkerDefaults[ClipArgs]
	q *Queue
}

func (w *clipWorker) Work(ctx context.Context, job *river.Job[ClipArgs]) error {
	return w.q.runJob(ctx, job.JobRow, KindClip, func(ctx context.Context, progress progressFunc) (*vod.Assets, error) {
		return w.q.pipe.buildClip(ctx, job.Args.Lesson, job.Args.Clip, progress)
	})
}

// runJob runs one attempt of a job on this node and tells River how it
// ended: nil (done), a permanent failure (River cancels the job, it is
// shown failed), or any other error: a failed attempt, retried with
// backoff until MaxAttempts (a stalled ffmpeg, killed by the watchdog, is
// one). When the job is canceled or the node stops, ffmpeg is killed with
// the job's context and River decides by why.
func (q *Queue) runJob(ctx context.Context, row *rivertype.JobRow, kind string, build func(context.Context, progressFunc) (*vod.Assets, error)) error {
	q.mu.Lock()
	q.running[row.ID] = &runState{kind: kind, phase: "starting"}
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		delete(q.running, row.ID)
		q.mu.Unlock()
	}()
	log := q.log.With("job", row.ID, "kind", kind, "attempt", row.Attempt)
	log.Info("transcode: job started")
	began := time.Now()
	a, err := build(ctx, func(phase string, f float64) {
		q.mu.Lock()
		if r := q.running[row.ID]; r != nil {
			r.phase, r.progress = phase, f
		}
		q.mu.Unlock()
	})
	elapsed := time.Since(began)
	result := ""
	switch {
	case err == nil:
		result = StateDone
		log.Info("transcode: job done", "seconds", elapsed.Seconds())
	case ctx.Err() != nil:
		// Canceled, timed out, or the node is stopping: whatever the
		// pipeline made of it, the cause decides.
		err = fmt.Errorf("%w (%v)", context.Cause(ctx), err)
		if errors.Is(err, river.ErrJobCancelledRemotely) {
			result = StateCanceled
		}
		log.Info("transcode: job interrupted", "err", err)
	case IsPermanent(err):
		result = StateFailed
		log.Warn("transcode: job failed", "err", err)
		err = river.JobCancel(err)
	case row.Attempt >= row.MaxAttempts:
		result = StateFailed
		log.Warn("transcode: job failed on its last attempt", "err", err)
	default:
		result = "retry"
		log.Warn("transcode: job attempt failed; it will be retried", "err", err)
	}
	if q.m != nil && result != "" {
		q.m.finished.WithLabelValues(result).Inc()
		if result == StateDone {
			q.m.seconds.Observe(elapsed.Seconds())
			if a != nil && elapsed > 0 {
				q.m.speed.Set(a.Duration / elapsed.Seconds())
			}
		}
	}
	return err
}
