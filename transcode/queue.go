package transcode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"podium/storage"
	"podium/vod"
)

// Job states.
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

// Job is one transcode job. Its state lives in storage at jobs/{id}.json so
// that it survives restarts.
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
	CreatedAt   time.Time        `json:"createdAt"`
	UpdatedAt   time.Time        `json:"updatedAt"`
	StartedAt   time.Time        `json:"startedAt,omitempty"`
	FinishedAt  time.Time        `json:"finishedAt,omitempty"`
	// NotBefore delays a retry (backoff).
	NotBefore time.Time `json:"notBefore,omitempty"`
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

// JobKey is where a job's state is stored.
func JobKey(id string) string { return "jobs/" + id + ".json" }

func lessonJobID(lesson string) string     { return "lesson-" + lesson }
func clipJobID(lesson, clip string) string { return "clip-" + lesson + "-" + clip }

// QueueConfig tunes the queue.
type QueueConfig struct {
	Config
	// Workers is how many jobs run at once. Each ffmpeg already uses every
	// core, so the default is one per four cores (at least one).
	Workers int
	// MaxAttempts before a job that keeps failing is given up.
	MaxAttempts int
	// RetryBackoff is the wait before the first retry, doubled each time.
	RetryBackoff time.Duration
	// PollInterval is how often storage is scanned for completed
	// recordings without a job (0 = never).
	PollInterval time.Duration
}

// DefaultWorkers suits the machine: ffmpeg is multi-threaded.
func DefaultWorkers() int { return max(1, runtime.NumCPU()/4) }

// Queue runs transcode jobs whose state lives in storage.
type Queue struct {
	cfg   QueueConfig
	store storage.Store
	pipe  *pipeline
	log   *slog.Logger
	m     *Metrics

	mu      sync.Mutex
	jobs    map[string]*Job
	cancels map[string]context.CancelFunc // running jobs
	wake    chan struct{}
	seen    map[string]time.Time // manifest key -> last modified already looked at

	saveMu sync.Mutex
}

// NewQueue makes a queue; Run starts it. m may be nil.
func NewQueue(store storage.Store, cfg QueueConfig, log *slog.Logger, m *Metrics) *Queue {
	cfg.Config.setDefaults()
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers()
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 10 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	q := &Queue{
		cfg: cfg, store: store, log: log, m: m,
		pipe:    &pipeline{cfg: cfg.Config, store: store},
		jobs:    map[string]*Job{},
		cancels: map[string]context.CancelFunc{},
		wake:    make(chan struct{}, 1),
		seen:    map[string]time.Time{},
	}
	if m != nil {
		m.queue.Store(q)
	}
	return q
}

// Run loads the stored jobs (a job that was running when the process died
// is queued again, counting as an attempt), then runs workers and the
// recording poller until ctx ends; it returns after every worker (and its
// ffmpeg) has stopped.
func (q *Queue) Run(ctx context.Context) error {
	// Storage may be down at start: keep trying rather than run without
	// the stored jobs (which would start duplicates).
	for {
		err := q.load(ctx)
		if err == nil {
			break
		}
		q.log.Warn("transcode: loading jobs failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Second):
		}
	}
	var wg sync.WaitGroup
	for i := 0; i < q.cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q.worker(ctx)
		}()
	}
	if q.cfg.PollInterval > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q.poll(ctx)
		}()
	}
	wg.Wait()
	return nil
}

func (q *Queue) load(ctx context.Context) error {
	objs, err := q.store.List(ctx, "jobs/")
	if err != nil {
		return fmt.Errorf("list jobs: %w", err)
	}
	var requeued []string
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, ".json") {
			continue
		}
		var j Job
		if err := getJSON(ctx, q.store, o.Key, &j); err != nil {
			q.log.Warn("transcode: skipping unreadable job", "key", o.Key, "err", err)
			continue
		}
		if j.State == StateRunning {
			j.State = StateQueued
			j.Phase = "interrupted"
			requeued = append(requeued, j.ID)
			if j.Attempts >= j.MaxAttempts {
				j.State, j.Error, j.FinishedAt = StateFailed, "interrupted by restarts too often", time.Now().UTC()
			}
		}
		q.mu.Lock()
		q.jobs[j.ID] = &j
		q.mu.Unlock()
	}
	for _, id := range requeued {
		q.save(ctx, id)
	}
	q.updateGauges()
	q.kick()
	return nil
}

func (q *Queue) kick() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// EnqueueLesson queues (or re-queues) the transcode of a lesson.
func (q *Queue) EnqueueLesson(ctx context.Context, lesson string) (Job, error) {
	if !vod.ValidID(lesson) {
		return Job{}, fmt.Errorf("%w: lesson id %q", ErrInvalid, lesson)
	}
	return q.enqueue(ctx, &Job{ID: lessonJobID(lesson), Kind: KindLesson, Lesson: lesson})
}

// SubmitClip queues a clip job; it implements vod.ClipSubmitter.
func (q *Queue) SubmitClip(ctx context.Context, lesson string, c vod.ClipRequest) (string, error) {
	if !vod.ValidID(lesson) {
		return "", fmt.Errorf("%w: lesson id %q", ErrInvalid, lesson)
	}
	if err := c.Validate(0); err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	j, err := q.enqueue(ctx, &Job{ID: clipJobID(lesson, c.ID), Kind: KindClip, Lesson: lesson, Clip: &c})
	return j.ID, err
}

func (q *Queue) enqueue(ctx context.Context, j *Job) (Job, error) {
	now := time.Now().UTC()
	q.mu.Lock()
	if old, ok := q.jobs[j.ID]; ok && !old.Finished() {
		active := *old // copied under the lock: a worker updates it
		q.mu.Unlock()
		return active, ErrJobActive
	}
	old := q.jobs[j.ID]
	j.State, j.MaxAttempts, j.CreatedAt, j.UpdatedAt = StateQueued, q.cfg.MaxAttempts, now, now
	q.jobs[j.ID] = j
	snap := *j
	q.mu.Unlock()
	if err := q.save(ctx, j.ID); err != nil {
		// Not stored means not queued: a job must not run unrecorded.
		q.mu.Lock()
		if q.jobs[j.ID] == j && j.State == StateQueued {
			if old != nil {
				q.jobs[j.ID] = old
			} else {
				delete(q.jobs, j.ID)
			}
		}
		q.mu.Unlock()
		return Job{}, err
	}
	q.log.Info("transcode: job queued", "job", j.ID)
	q.updateGauges()
	q.kick()
	return snap, nil
}

// Cancel stops a queued or running job.
func (q *Queue) Cancel(ctx context.Context, id string) (Job, error) {
	q.mu.Lock()
	j, ok := q.jobs[id]
	if !ok {
		q.mu.Unlock()
		return Job{}, ErrJobNotFound
	}
	if j.Finished() {
		snap := *j
		q.mu.Unlock()
		return snap, nil
	}
	j.State, j.Error, j.FinishedAt, j.UpdatedAt = StateCanceled, "canceled", time.Now().UTC(), time.Now().UTC()
	if cancel := q.cancels[id]; cancel != nil {
		cancel()
	}
	snap := *j
	q.mu.Unlock()
	q.updateGauges()
	return snap, q.save(ctx, id)
}

// Job returns one job.
func (q *Queue) Job(id string) (Job, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	j, ok := q.jobs[id]
	if !ok {
		return Job{}, false
	}
	return *j, true
}

// Jobs returns every job, newest first.
func (q *Queue) Jobs() []Job {
	q.mu.Lock()
	out := make([]Job, 0, len(q.jobs))
	for _, j := range q.jobs {
		out = append(out, *j)
	}
	q.mu.Unlock()
	sort.Slice(out, func(i, k int) bool {
		if !out[i].CreatedAt.Equal(out[k].CreatedAt) {
			return out[i].CreatedAt.After(out[k].CreatedAt)
		}
		return out[i].ID < out[k].ID
	})
	return out
}

// save writes a job's current state; saves are serialised so the stored
// state is never older than the last one written.
func (q *Queue) save(ctx context.Context, id string) error {
	q.saveMu.Lock()
	defer q.saveMu.Unlock()
	q.mu.Lock()
	j, ok := q.jobs[id]
	if !ok {
		q.mu.Unlock()
		return ErrJobNotFound
	}
	snap := *j
	q.mu.Unlock()
	body, err := json.MarshalIndent(snap, "", "  ")
	if err != nil {
		return fmt.Errorf("encode job: %w", err)
	}
	// Written even while the queue shuts down: a job's last state matters.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := q.store.Put(ctx, JobKey(id), bytes.NewReader(body), int64(len(body)), "application/json"); err != nil {
		q.log.Warn("transcode: saving job state failed", "job", id, "err", err)
		return fmt.Errorf("save job %s: %w", id, err)
	}
	return nil
}

// next claims the oldest runnable job, or reports when to look again.
func (q *Queue) next() (*Job, context.Context, time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now()
	var best *Job
	wait := time.Minute
	for _, j := range q.jobs {
		if j.State != StateQueued {
			continue
		}
		if d := j.NotBefore.Sub(now); d > 0 {
			wait = min(wait, d)
			continue
		}
		if best == nil || j.CreatedAt.Before(best.CreatedAt) || (j.CreatedAt.Equal(best.CreatedAt) && j.ID < best.ID) {
			best = j
		}
	}
	if best == nil {
		return nil, nil, wait
	}
	best.State, best.Phase, best.Progress, best.Error = StateRunning, "starting", 0, ""
	best.Attempts++
	best.StartedAt, best.UpdatedAt = now.UTC(), now.UTC()
	ctx, cancel := context.WithCancel(context.Background())
	q.cancels[best.ID] = cancel
	return best, ctx, 0
}

func (q *Queue) worker(ctx context.Context) {
	for {
		j, jobCtx, wait := q.next()
		if j == nil {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-q.wake:
				t.Stop()
			case <-t.C:
			}
			continue
		}
		q.runJob(ctx, j.ID, jobCtx)
		if ctx.Err() != nil {
			return
		}
	}
}

// runJob runs one claimed job to an end state (or back to queued when the
// queue shuts down under it).
func (q *Queue) runJob(queueCtx context.Context, id string, jobCtx context.Context) {
	q.save(queueCtx, id)
	q.updateGauges()
	// The job stops when it is canceled or when the queue shuts down.
	stop := context.AfterFunc(queueCtx, func() {
		q.mu.Lock()
		if c := q.cancels[id]; c != nil {
			c()
		}
		q.mu.Unlock()
	})
	defer stop()

	q.mu.Lock()
	snap := *q.jobs[id]
	q.mu.Unlock()
	log := q.log.With("job", id, "attempt", snap.Attempts)
	log.Info("transcode: job started")
	began := time.Now()

	var lastSave time.Time
	progress := func(phase string, f float64) {
		q.mu.Lock()
		j := q.jobs[id]
		if j.State != StateRunning {
			q.mu.Unlock()
			return
		}
		j.Phase, j.Progress, j.UpdatedAt = phase, f, time.Now().UTC()
		q.mu.Unlock()
		if time.Since(lastSave) > 2*time.Second {
			lastSave = time.Now()
			q.save(queueCtx, id)
		}
	}
	var a *vod.Assets
	var err error
	switch snap.Kind {
	case KindLesson:
		a, err = q.pipe.buildLesson(jobCtx, snap.Lesson, progress)
	case KindClip:
		if snap.Clip == nil {
			err = permanent(errors.New("clip job without a clip request"))
		} else {
			a, err = q.pipe.buildClip(jobCtx, snap.Lesson, *snap.Clip, progress)
		}
	default:
		err = permanent(fmt.Errorf("unknown job kind %q", snap.Kind))
	}
	elapsed := time.Since(began)

	now := time.Now().UTC()
	q.mu.Lock()
	if cancel := q.cancels[id]; cancel != nil {
		cancel()
	}
	delete(q.cancels, id)
	j := q.jobs[id]
	result := ""
	switch {
	case j.State == StateCanceled:
		result = StateCanceled
	case err == nil:
		j.State, j.Phase, j.Progress, j.FinishedAt = StateDone, "done", 1, now
		result = StateDone
	case queueCtx.Err() != nil:
		// Shutting down: the job runs again after the restart.
		j.State, j.Phase = StateQueued, "interrupted"
		j.Attempts--
	case IsPermanent(err) || j.Attempts >= j.MaxAttempts:
		j.State, j.Error, j.FinishedAt = StateFailed, err.Error(), now
		result = StateFailed
	default:
		j.State, j.Error = StateQueued, err.Error()
		j.NotBefore = now.Add(q.cfg.RetryBackoff << (j.Attempts - 1))
		result = "retry"
	}
	j.UpdatedAt = now
	q.mu.Unlock()
	q.save(queueCtx, id)
	q.updateGauges()
	if q.m != nil && result != "" {
		q.m.finished.WithLabelValues(result).Inc()
		if result == StateDone {
			q.m.seconds.Observe(elapsed.Seconds())
			if a != nil && elapsed > 0 {
				q.m.speed.Set(a.Duration / elapsed.Seconds())
			}
		}
	}
	switch {
	case err == nil:
		log.Info("transcode: job done", "seconds", elapsed.Seconds())
	case result == "":
		log.Info("transcode: job interrupted by shutdown")
	default:
		log.Warn("transcode: job ended", "result", result, "err", err)
	}
	if result == "retry" {
		q.kick()
	}
}

// poll finds complete recordings that have no job yet.
func (q *Queue) poll(ctx context.Context) {
	t := time.NewTicker(q.cfg.PollInterval)
	defer t.Stop()
	for {
		if err := q.ScanRecordings(ctx); err != nil && ctx.Err() == nil {
			q.log.Warn("transcode: scanning recordings failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ScanRecordings queues a lesson job for every complete recording
// (lessons/{id}/manifest.json with complete=true) that has none yet.
func (q *Queue) ScanRecordings(ctx context.Context) error {
	objs, err := q.store.List(ctx, "lessons/")
	if err != nil {
		return fmt.Errorf("list lessons: %w", err)
	}
	for _, o := range objs {
		rest, ok := strings.CutPrefix(o.Key, "lessons/")
		if !ok {
			continue
		}
		lesson, file, ok := strings.Cut(rest, "/")
		if !ok || file != "manifest.json" || !vod.ValidID(lesson) {
			continue
		}
		q.mu.Lock()
		_, hasJob := q.jobs[lessonJobID(lesson)]
		seen, looked := q.seen[o.Key]
		q.mu.Unlock()
		if hasJob || (looked && seen.Equal(o.LastModified)) {
			continue
		}
		var m vod.Manifest
		if err := getJSON(ctx, q.store, o.Key, &m); err != nil {
			q.log.Warn("transcode: unreadable manifest", "key", o.Key, "err", err)
		}
		q.mu.Lock()
		q.seen[o.Key] = o.LastModified
		q.mu.Unlock()
		if !m.Complete {
			continue
		}
		if _, err := q.EnqueueLesson(ctx, lesson); err != nil && !errors.Is(err, ErrJobActive) {
			return err
		}
	}
	return nil
}
