package recorder

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	uploadErrors     prometheus.Counter
	segmentsUploaded prometheus.Counter
	bytesUploaded    prometheus.Counter
	segmentsDropped  prometheus.Counter
	packetsDropped   prometheus.Counter
	lessonsCompleted prometheus.Counter
}

func newMetrics(r *Recorder, reg prometheus.Registerer) *metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "podium", Subsystem: "recorder", Name: name, Help: help})
	}
	m := &metrics{
		uploadErrors:     c("upload_errors_total", "Failed uploads of segments or manifests (each retry counts)."),
		segmentsUploaded: c("segments_uploaded_total", "Segments and init segments uploaded to storage."),
		bytesUploaded:    c("uploaded_bytes_total", "Bytes of segments uploaded to storage."),
		segmentsDropped:  c("segments_dropped_total", "Closed segments lost because the spool was full or unwritable."),
		packetsDropped:   c("packets_dropped_total", "RTP packets dropped because a track's recording queue was full."),
		lessonsCompleted: c("lessons_completed_total", "Recordings whose final manifest is in storage."),
	}
	if reg == nil {
		return m
	}
	g := func(name, help string, fn func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "podium", Subsystem: "recorder", Name: name, Help: help}, fn)
	}
	reg.MustRegister(m.uploadErrors, m.segmentsUploaded, m.bytesUploaded, m.segmentsDropped, m.packetsDropped, m.lessonsCompleted,
		g("uploads_pending", "Objects waiting in the spool for upload.", func() float64 { return float64(r.up.pending()) }),
		g("spool_bytes", "Bytes in the recording spool.", func() float64 { return float64(r.spool.size()) }),
		g("recording_lessons", "Lessons being recorded.", func() float64 { return float64(r.countState(StateRecording)) }),
		g("interrupted_lessons", "Recordings stopped before their lesson ended (this node restarted or shut down), waiting to resume or be closed.",
			func() float64 { return float64(r.countState(StateInterrupted)) }),
	)
	return m
}
