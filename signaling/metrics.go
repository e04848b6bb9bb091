package signaling

import "github.com/prometheus/client_golang/prometheus"

// metrics are the signaling counters Prometheus scrapes.
type metrics struct {
	wsConnections prometheus.Gauge
	messages      *prometheus.CounterVec // direction, type
	errors        *prometheus.CounterVec // code
	authFailures  *prometheus.CounterVec // reason
	httpSessions  *prometheus.GaugeVec   // kind: whip|whep
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		wsConnections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podium_signaling_websocket_connections", Help: "Open signaling websockets."}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podium_signaling_messages_total", Help: "Signaling messages by direction (in|out) and type."},
			[]string{"direction", "type"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podium_signaling_errors_total", Help: "Error messages sent to clients, by code."},
			[]string{"code"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podium_signaling_auth_failures_total", Help: "Refused requests by reason."},
			[]string{"reason"}),
		httpSessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "podium_signaling_http_sessions", Help: "Live WHIP and WHEP sessions."},
			[]string{"kind"}),
	}
	if reg != nil {
		reg.MustRegister(m.wsConnections, m.messages, m.errors, m.authFailures, m.httpSessions)
	}
	return m
}

// AuthFailure counts a refused request (the router hears every refusal).
func (s *Server) AuthFailure(reason string) { s.metrics.authFailures.WithLabelValues(reason).Inc() }
