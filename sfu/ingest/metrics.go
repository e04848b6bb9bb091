package ingest

import "github.com/prometheus/client_golang/prometheus"

// collector reports every source's state and counters at scrape time, so
// series of removed sources simply disappear.
type collector struct {
	m          *Manager
	sources    *prometheus.Desc
	state      *prometheus.Desc
	reconnects *prometheus.Desc
	errors     *prometheus.Desc
	frames     *prometheus.Desc
	audio      *prometheus.Desc
	resends    *prometheus.Desc
}

// Collector returns the manager's Prometheus collector.
func (m *Manager) Collector() prometheus.Collector {
	l := []string{"lesson", "source"}
	return &collector{
		m:          m,
		sources:    prometheus.NewDesc("podium_ingest_sources", "Registered RTSP sources by state.", []string{"state"}, nil),
		state:      prometheus.NewDesc("podium_ingest_source_state", "1 for the state an RTSP source is in (connecting, live, retrying, stopped), 0 for the others.", []string{"lesson", "source", "kind", "state"}, nil),
		reconnects: prometheus.NewDesc("podium_ingest_source_reconnects_total", "Reconnect attempts of an RTSP source.", l, nil),
		errors:     prometheus.NewDesc("podium_ingest_source_errors_total", "Media errors of an RTSP source (bad packets, pictures without parameter sets).", l, nil),
		frames:     prometheus.NewDesc("podium_ingest_source_video_frames_total", "Video pictures forwarded from an RTSP source.", l, nil),
		audio:      prometheus.NewDesc("podium_ingest_source_audio_packets_total", "Audio packets forwarded from an RTSP source.", l, nil),
		resends:    prometheus.NewDesc("podium_ingest_source_keyframe_resends_total", "Keyframe requests answered from an RTSP source's cached keyframe.", l, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.sources, c.state, c.reconnects, c.errors, c.frames, c.audio, c.resends} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counts := map[State]int{}
	for _, s := range c.m.all() {
		info := s.Info()
		counts[info.State]++
		for _, st := range allStates {
			v := 0.0
			if st == info.State {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, info.Lesson, info.ID, string(info.Kind), string(st))
		}
		ch <- prometheus.MustNewConstMetric(c.reconnects, prometheus.CounterValue, float64(info.Reconnects), info.Lesson, info.ID)
		ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(s.errorsTotal.Load()), info.Lesson, info.ID)
		s.mu.Lock()
		v, a := s.video, s.audio
		s.mu.Unlock()
		var frames, resends, packets uint64
		if v != nil {
			frames, resends = v.frames.Load(), v.keyframeResends.Load()
		}
		if a != nil {
			packets = a.packets.Load()
		}
		ch <- prometheus.MustNewConstMetric(c.frames, prometheus.CounterValue, float64(frames), info.Lesson, info.ID)
		ch <- prometheus.MustNewConstMetric(c.audio, prometheus.CounterValue, float64(packets), info.Lesson, info.ID)
		ch <- prometheus.MustNewConstMetric(c.resends, prometheus.CounterValue, float64(resends), info.Lesson, info.ID)
	}
	for _, st := range allStates {
		ch <- prometheus.MustNewConstMetric(c.sources, prometheus.GaugeValue, float64(counts[st]), string(st))
	}
}
