package cascade

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the cascade's Prometheus series for the control plane
// between nodes. A nil *Metrics records nothing.
type Metrics struct {
	streams    *prometheus.GaugeVec
	reconnects *prometheus.CounterVec
	events     *prometheus.CounterVec
}

// NewMetrics registers the cascade's series on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "podium_cascade_control_streams",
			Help: "Lesson event streams this node reads from other nodes and that are connected now, by the peer's side (origin, edge).",
		}, []string{"peer"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podium_cascade_control_reconnects_total",
			Help: "Lesson event streams from other nodes that failed or broke and are retried with backoff, by the peer's side.",
		}, []string{"peer"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podium_cascade_control_events_total",
			Help: "Lesson events received from other nodes, by the peer's side and result (applied, rejected).",
		}, []string{"peer", "result"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.streams, m.reconnects, m.events} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("cascade metrics: %w", err)
		}
	}
	return m, nil
}

func peerSide(back bool) string {
	if back {
		return "edge"
	}
	return "origin"
}

func (m *Metrics) streamUp(back bool, delta float64) {
	if m != nil {
		m.streams.WithLabelValues(peerSide(back)).Add(delta)
	}
}

func (m *Metrics) reconnect(back bool) {
	if m != nil {
		m.reconnects.WithLabelValues(peerSide(back)).Inc()
	}
}

func (m *Metrics) event(back bool, result string) {
	if m != nil {
		m.events.WithLabelValues(peerSide(back), result).Inc()
	}
}
