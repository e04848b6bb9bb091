package transcode

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the queue's Prometheus metrics.
type Metrics struct {
	jobs     *prometheus.GaugeVec
	finished *prometheus.CounterVec
	seconds  prometheus.Histogram
	speed    prometheus.Gauge
	progress *prometheus.GaugeVec
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
		progress: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "podium_transcode_job_progress", Help: "Progress (0..1) of each running job.",
		}, []string{"job"}),
	}
	reg.MustRegister(m.jobs, m.finished, m.seconds, m.speed, m.progress)
	return m
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
