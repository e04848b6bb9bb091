package cluster

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the cluster's Prometheus series. A nil *Metrics records
// nothing.
type Metrics struct {
	nodes     prometheus.Gauge
	nodesDown prometheus.Counter
	forwarded *prometheus.CounterVec
}

// NewMetrics registers the cluster's series on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		nodes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podium_cluster_nodes", Help: "Live nodes in the cluster, as this node last saw them.",
		}),
		nodesDown: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podium_cluster_nodes_down_total", Help: "Nodes this node found dead (heartbeat expired) and whose lessons it released.",
		}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podium_cluster_forwarded_requests_total", Help: "Signaling requests relayed to the lesson's owner node, by result.",
		}, []string{"result"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.nodes, m.nodesDown, m.forwarded} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("cluster metrics: %w", err)
		}
	}
	return m, nil
}
