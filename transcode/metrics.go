package transcode

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river/rivertype"
)

// Metrics are the queue's Prometheus metrics. No series carries a job or
// lesson id: /metrics is open, and such labels grow without bound; each
// job's progress is in the jobs API.
//
// Job counts by state and the queue depth are read from the shared job
// table (every node reports the same figures: scale on them with one
// series, e.g. max); the rest is this node's.
type Metrics struct {
	finished *prometheus.CounterVec
	seconds  prometheus.Histogram
	speed    prometheus.Gauge
	jobs     *prometheus.Desc
	depth    *prometheus.Desc
	progress *prometheus.Desc
	queue    atomic.Pointer[Queue] // read at scrape time

	mu       sync.Mutex
	countsAt time.Time
	counts   map[string]int
}

// NewMetrics registers the transcode metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podium_transcode_jobs_finished_total", Help: "Transcode job attempts on this node by result (done, failed, canceled, retry).",
		}, []string{"result"}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "podium_transcode_job_seconds", Help: "Wall time of successful transcode jobs on this node.",
			Buckets: prometheus.ExponentialBuckets(5, 2, 12),
		}),
		speed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podium_transcode_speed_ratio", Help: "Media seconds per wall second of this node's last successful job (all renditions together).",
		}),
		jobs: prometheus.NewDesc("podium_transcode_jobs",
			"Transcode jobs in the shared job table by state (queued, running, done, failed, canceled; done ones are kept 30 days).", []string{"state"}, nil),
		depth: prometheus.NewDesc("podium_transcode_queue_depth",
			"Transcode jobs waiting for a worker in the shared job table (queued, or waiting to be retried).", nil, nil),
		progress: prometheus.NewDesc("podium_transcode_running_progress",
			"Mean progress (0..1) of this node's running jobs of a kind (lesson, clip); absent when none runs.", []string{"kind"}, nil),
	}
	reg.MustRegister(m.finished, m.seconds, m.speed, collector{m})
	return m
}

// collector reports the job table's counts (read at most every 5 s) and
// this node's running jobs' progress at scrape time.
type collector struct{ m *Metrics }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.m.jobs
	ch <- c.m.depth
	ch <- c.m.progress
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	q := c.m.queue.Load()
	if q == nil {
		return
	}
	if counts, ok := c.m.stateCounts(q); ok {
		for _, s := range []string{StateQueued, StateRunning, StateDone, StateFailed, StateCanceled} {
			ch <- prometheus.MustNewConstMetric(c.m.jobs, prometheus.GaugeValue, float64(counts[s]), s)
		}
		ch <- prometheus.MustNewConstMetric(c.m.depth, prometheus.GaugeValue, float64(counts["depth"]))
	}
	sum := map[string]float64{}
	n := map[string]int{}
	q.mu.Lock()
	for _, r := range q.running {
		sum[r.kind] += r.progress
		n[r.kind]++
	}
	q.mu.Unlock()
	for _, kind := range []string{KindLesson, KindClip} {
		if n[kind] > 0 {
			ch <- prometheus.MustNewConstMetric(c.m.progress, prometheus.GaugeValue, sum[kind]/float64(n[kind]), kind)
		}
	}
}

// stateCounts are the job table's counts in API states, plus "depth";
// read from the database at most every 5 s.
func (m *Metrics) stateCounts(q *Queue) (map[string]int, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.counts != nil && time.Since(m.countsAt) < 5*time.Second {
		return m.counts, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := q.jobs.counts(ctx)
	if err != nil {
		q.log.Warn("transcode: counting jobs for metrics failed", "err", err)
		return m.counts, m.counts != nil
	}
	out := map[string]int{}
	for s, n := range raw {
		switch s {
		case rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable, rivertype.JobStateScheduled:
			out[StateQueued] += n
			out["depth"] += n
		case rivertype.JobStateRunning:
			out[StateRunning] += n
		case rivertype.JobStateCompleted:
			out[StateDone] += n
		case rivertype.JobStateDiscarded:
			out[StateFailed] += n
		case rivertype.JobStateCancelled:
			// Canceled by request and given up at once are one state
			// in the table; counted as canceled here.
			out[StateCanceled] += n
		}
	}
	m.counts, m.countsAt = out, time.Now()
	return out, true
}
