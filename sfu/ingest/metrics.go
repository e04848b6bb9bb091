package ingest

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// collector reports the node's sources at scrape time, aggregated: /metrics
// is open, and lesson or source ids as label values would both tell anyone
// which lessons run and grow without bound. Per-source figures are in the
// admin API (SourceInfo).
type collector struct {
	m          *Manager
	sources    *prometheus.Desc
	reconnects *prometheus.Desc
	errors     *prometheus.Desc
	frames     *prometheus.Desc
	audio      *prometheus.Desc
	kfRequests *prometheus.Desc
}

// retired holds the final counts of removed sources, so the node's totals
// never go down when a source goes away.
type retired struct {
	reconnects, errors, frames, packets, kfRequests atomic.Uint64
}

// counts is one source's (or the node's) counters.
type counts struct {
	reconnects, errors, frames, packets, kfRequests uint64
}

func (c *counts) add(o counts) {
	c.reconnects += o.reconnects
	c.errors += o.errors
	c.frames += o.frames
	c.packets += o.packets
	c.kfRequests += o.kfRequests
}

func (r *retired) load() counts {
	return counts{r.reconnects.Load(), r.errors.Load(), r.frames.Load(), r.packets.Load(), r.kfRequests.Load()}
}

func (r *retired) add(c counts) {
	r.reconnects.Add(c.reconnects)
	r.errors.Add(c.errors)
	r.frames.Add(c.frames)
	r.packets.Add(c.packets)
	r.kfRequests.Add(c.kfRequests)
}

// counts returns the source's counters now.
func (s *Source) counts() counts {
	c := counts{reconnects: s.reconnects.Load(), errors: s.errorsTotal.Load()}
	s.mu.Lock()
	v, a := s.video, s.audio
	s.mu.Unlock()
	if v != nil {
		c.frames = v.frames.Load()
	}
	c.kfRequests = s.keyframeRequests.Load()
	if a != nil {
		c.packets = a.packets.Load()
	}
	return c
}

// Collector returns the manager's Prometheus collector.
func (m *Manager) Collector() prometheus.Collector {
	return &collector{
		m:          m,
		sources:    prometheus.NewDesc("podium_ingest_sources", "Registered RTSP sources by state.", []string{"state"}, nil),
		reconnects: prometheus.NewDesc("podium_ingest_reconnects_total", "Reconnect attempts of RTSP sources.", nil, nil),
		errors:     prometheus.NewDesc("podium_ingest_errors_total", "Media errors of RTSP sources (bad packets, pictures without parameter sets).", nil, nil),
		frames:     prometheus.NewDesc("podium_ingest_video_frames_total", "Video pictures forwarded from RTSP sources.", nil, nil),
		audio:      prometheus.NewDesc("podium_ingest_audio_packets_total", "Audio packets forwarded from RTSP sources.", nil, nil),
		kfRequests: prometheus.NewDesc("podium_ingest_keyframe_kfRequests_total", "Keyframe requests answered from RTSP sources' cached keyframes.", nil, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.sources, c.reconnects, c.errors, c.frames, c.audio, c.kfRequests} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	list, total := c.m.snapshot()
	states := map[State]int{}
	for _, s := range list {
		s.mu.Lock()
		states[s.state]++
		s.mu.Unlock()
		total.add(s.counts())
	}
	for _, st := range allStates {
		ch <- prometheus.MustNewConstMetric(c.sources, prometheus.GaugeValue, float64(states[st]), string(st))
	}
	ch <- prometheus.MustNewConstMetric(c.reconnects, prometheus.CounterValue, float64(total.reconnects))
	ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(total.errors))
	ch <- prometheus.MustNewConstMetric(c.frames, prometheus.CounterValue, float64(total.frames))
	ch <- prometheus.MustNewConstMetric(c.audio, prometheus.CounterValue, float64(total.packets))
	ch <- prometheus.MustNewConstMetric(c.kfRequests, prometheus.CounterValue, float64(total.kfRequests))
}
