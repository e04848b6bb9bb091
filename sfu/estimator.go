package sfu

import (
	"errors"
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// estimator is a subscriber connection's bandwidth estimate: pion's Google
// Congestion Control (delay- and loss-based) fed directly, without pion's
// interceptors, by the egress (every packet it sends goes into GCC's send
// history) and by the subscriber's RTCP readers (TWCC feedback).
//
// GCC's estimators only take acknowledgments through its own feedback
// adapter, whose send history is an internal map and list filled packet by
// packet; so this step keeps that per-packet cost, and the estimator that
// reads the egress's send-time array instead is the next step
// (docs/SENDPATH.md, order of landing).
type estimator struct {
	bwe *gcc.SendSideBWE

	// Egress goroutine only.
	pacer  historyPacer
	twccID uint8
	attrs  interceptor.Attributes

	closeOnce sync.Once
}

func newEstimator() (*estimator, error) {
	e := &estimator{attrs: interceptor.Attributes{}}
	bwe, err := gcc.NewSendSideBWE(
		gcc.SendSideBWEPacer(&e.pacer),
		gcc.SendSideBWEInitialBitrate(bweInitialBitrate),
		gcc.SendSideBWEMinBitrate(bweMinBitrate),
		gcc.SendSideBWEMaxBitrate(bweMaxBitrate),
	)
	if err != nil {
		return nil, err
	}
	e.bwe = bwe
	return e, nil
}

// sent records a packet the egress is sending, stamped with its
// transport-wide sequence number under extension id twccID.
func (e *estimator) sent(hdr *rtp.Header, payload []byte, twccID uint8) {
	if twccID != e.twccID || e.pacer.record == nil {
		// GCC learns the extension id from a stream's description and
		// hands its pacer the writer that records sent packets.
		e.twccID = twccID
		e.bwe.AddStream(&interceptor.StreamInfo{RTPHeaderExtensions: []interceptor.RTPHeaderExtension{{URI: sdp.TransportCCURI, ID: int(twccID)}}},
			interceptor.RTPWriterFunc(func(_ *rtp.Header, p []byte, _ interceptor.Attributes) (int, error) { return len(p), nil }))
	}
	_, _ = e.pacer.record.Write(hdr, payload, e.attrs)
}

// feedback hands a TWCC feedback packet to GCC. Safe for concurrent use.
func (e *estimator) feedback(fb *rtcp.TransportLayerCC) {
	_ = e.bwe.WriteRTCP([]rtcp.Packet{fb}, nil)
}

func (e *estimator) close() {
	if e == nil {
		return
	}
	e.closeOnce.Do(func() { _ = e.bwe.Close() })
}

// historyPacer is GCC's pacer in name only: it keeps the writer GCC gives
// it (the one that records a packet in the send history) for the egress
// to call, and sends nothing itself; the egress paces and writes.
type historyPacer struct{ record interceptor.RTPWriter }

func (p *historyPacer) AddStream(_ uint32, w interceptor.RTPWriter) { p.record = w }
func (p *historyPacer) SetTargetBitrate(int)                        {}
func (p *historyPacer) Close() error                                { return nil }
func (p *historyPacer) Write(*rtp.Header, []byte, interceptor.Attributes) (int, error) {
	return 0, errNotAPacer
}

var errNotAPacer = errors.New("the egress writes packets, not GCC's pacer")
