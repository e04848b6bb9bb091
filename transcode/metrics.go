package transcode

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the queue's Prometheus metrics. No series carries a job or
// lesson id: /metrics is open, and such labels grow without bound; each
// job's progress is in the jobs API.
type Metrics struct {
	jobs     *prometheus.GaugeVec
	finished *prometheus.CounterVec
	seconds  prometheus.Histogram
	speed    prometheus.Gauge
	progress *prometheus.Desc
	queue    atomic.Pointer[Queue] // read at scrape time
}

// NewMetrics registers the transcode metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		jobs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "podium_transcode_jobs", Help: "Transcode jobs by state.",
		}, []string{"state"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podium_transcode_jobs_finished_total", Help: "Transcode job attempts by result (done, failed, canceled, retry).",
		}, []string{"result"}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "podium_transcode_job_seconds", Help: "Wall time of successful transcode jobs.",
			Buckets: prometheus.ExponentialBuckets(5, 2, 12),
		}),
		speed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podium_transcode_speed_ratio", Help: "Media seconds per wall second of the last successful job (all renditions together).",
		}),
		progress: prometheus.NewDesc("podium_transcode_running_progress",
			"Mean progress (0..1) of the running jobs of a kind (lesson, clip); absent when none runs.", []string{"kind"}, nil),
	}
	reg.MustRegister(m.jobs, m.finished, m.seconds, m.speed, progressCollector{m})
	return m
}

// progressCollector reports running jobs' progress by kind at scrape time.
type progressCollector struct{ m *Metrics }

func (c progressCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.progress }

func (c progressCollector) Collect(ch chan<- prometheus.Metric) {
	q := c.m.queue.Load()
	if q == nil {
		return
	}
	sum := map[string]float64{}
	n := map[string]int{}
	q.mu.Lock()
	for _, j := range q.jobs {
		if j.State == StateRunning {
			sum[j.Kind] += j.Progress
			n[j.Kind]++
		}
	}
	q.mu.Unlock()
	for _, kind := range []string{KindLesson, KindClip} {
		if n[kind] > 0 {
			ch <- prometheus.MustNewConstMetric(c.m.progress, prometheus.GaugeValue, sum[kind]/float64(n[kind]), kind)
		}
	}
}

func (q *Queue) updateGauges() {
	if q.m == nil {
		return
	}
	counts := map[string]int{StateQueued: 0, StateRunning: 0, StateDone: 0, StateFailed: 0, StateCanceled: 0}
	q.mu.Lock()
	for _, j := range q.jobs {
		counts[j.State]++
	}
	q.mu.Unlock()
	for s, n := range counts {
		q.m.jobs.WithLabelValues(s).Set(float64(n))
	}
}
