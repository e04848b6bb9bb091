package sfu

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the sfu's Prometheus series, all prefixed podium_.
type metrics struct {
	participants  *prometheus.GaugeVec
	bytesIn       prometheus.Counter
	packetsIn     prometheus.Counter
	bytesOut      prometheus.Counter
	packetsOut    prometheus.Counter
	packetsDirect prometheus.Counter
	nacksReceived prometheus.Counter
	plisSent      prometheus.Counter
	plisReceived  prometheus.Counter
	layerSwitches prometheus.Counter
	estimate      prometheus.Histogram
	loss          prometheus.Histogram
	queueDrops    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, rooms *Rooms) (*metrics, error) {
	m := &metrics{
		participants: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "podium_participants", Help: "WebRTC participants in lessons, by role.",
		}, []string{"role"}),
		bytesIn:       prometheus.NewCounter(prometheus.CounterOpts{Name: "podium_media_bytes_in_total", Help: "RTP bytes received from publishers."}),
		packetsIn:     prometheus.NewCounter(prometheus.CounterOpts{Name: "podium_media_packets_in_total", Help: "RTP packets received from publishers."}),
		bytesOut:      prometheus.NewCounter(prometheus.CounterOpts{Name: "podium_media_bytes_out_total", Help: "RTP bytes sent to subscribers."}),
		packetsOut:    prometheus.NewCounter(prometheus.CounterOpts{Name: "podium_media_packets_out_total", Help: "RTP packets sent to subscribers."}),
		packetsDirect: prometheus.NewCounter(prometheus.CounterOpts{Name: "podium_media_packets_out_srtp_direct_total", Help: "Of the RTP packets sent to subscribers, those the node protected with SRTP and wrote to its UDP socket itself (the rest went through pion: ICE-TCP, or before the DTLS keys were known)."}),
		nacksReceived: prometheus.NewCounter(prometheus.CounterOpts{Name: "podium_nacks_received_total", Help: "NACK packets received from subscribers."}),
		plisSent:      prometheus.NewCounter(prometheus.CounterOpts{Name: "podium_plis_sent_total", Help: "Keyframe requests (PLI) sent to publishers, after merging."}),
		plisReceived:  prometheus.NewCounter(prometheus.CounterOpts{Name: "podium_plis_received_total", Help: "PLI and FIR packets received from subscribers."}),
		layerSwitches: prometheus.NewCounter(prometheus.CounterOpts{Name: "podium_layer_switches_total", Help: "Simulcast layer switches made by down-tracks."}),
		queueDrops:    prometheus.NewCounter(prometheus.CounterOpts{Name: "podium_send_queue_drops_total", Help: "Packets dropped because a subscriber's send queue was full."}),
		estimate: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "podium_subscriber_estimated_bitrate_bps", Help: "Bandwidth estimate per subscriber, sampled by the allocator.",
			Buckets: prometheus.ExponentialBuckets(125_000, 2, 9), // 125 kbit/s .. 32 Mbit/s
		}),
		loss: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "podium_subscriber_fraction_lost", Help: "Fraction lost from subscribers' receiver reports.",
			Buckets: []float64{0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1},
		}),
	}
	if reg == nil {
		return m, nil
	}
	lessons := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "podium_lessons", Help: "Live lessons on this node."},
		func() float64 { return float64(len(rooms.List())) })
	tracks := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "podium_tracks", Help: "Published tracks on this node."},
		func() float64 {
			n := 0
			for _, r := range rooms.List() {
				n += len(r.Tracks())
			}
			return float64(n)
		})
	for _, c := range []prometheus.Collector{lessons, tracks, m.participants, m.bytesIn, m.packetsIn, m.bytesOut, m.packetsOut, m.packetsDirect,
		m.nacksReceived, m.plisSent, m.plisReceived, m.layerSwitches, m.queueDrops, m.estimate, m.loss} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
