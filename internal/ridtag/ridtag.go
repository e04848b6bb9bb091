// Package ridtag makes a pion sender tag its simulcast packets as browsers
// do, which pion leaves to the application: the MID on every packet, the
// RID on originals and the repaired RID (RRID) on retransmissions.
//
// Retransmissions matter most. Pion's NACK responder builds an RTX packet
// from the stored original, header extensions included. An RTX packet that
// carries the RID makes a receiver take the RTX SSRC for the layer's new
// SSRC and read the layer from the retransmission stream from then on
// (pion's receiver does): the layer stalls for everyone. Register the
// factory first, nearest the network, so that it also sees the NACK
// responder's RTX packets and can mark them as repairs.
package ridtag

import (
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// Lookup names the MID and RID of a sending SSRC (an original, not its RTX
// stream); ok is false for a stream that is not a simulcast layer. It is
// called per packet, so a MID learnt after negotiation is picked up.
type Lookup func(ssrc uint32) (mid, rid string, ok bool)

// Factory is an interceptor.Factory; every connection shares the lookup.
type Factory struct{ lookup Lookup }

// New returns a factory tagging the streams lookup knows.
func New(lookup Lookup) *Factory { return &Factory{lookup: lookup} }

// NewInterceptor implements interceptor.Factory.
func (f *Factory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &tagger{lookup: f.lookup}, nil
}

type tagger struct {
	interceptor.NoOp
	lookup Lookup
}

// BindLocalStream implements interceptor.Interceptor.
func (t *tagger) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	var midID, ridID, rridID uint8
	for _, e := range info.RTPHeaderExtensions {
		switch e.URI {
		case sdp.SDESMidURI:
			midID = uint8(e.ID)
		case sdp.SDESRTPStreamIDURI:
			ridID = uint8(e.ID)
		case sdp.SDESRepairRTPStreamIDURI:
			rridID = uint8(e.ID)
		}
	}
	if midID == 0 || ridID == 0 {
		return w
	}
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		mid, rid, ok := t.lookup(info.SSRC)
		if !ok || mid == "" || rid == "" {
			return w.Write(h, payload, a)
		}
		if err := h.SetExtension(midID, []byte(mid)); err != nil {
			return 0, err
		}
		if h.SSRC == info.SSRC {
			if err := h.SetExtension(ridID, []byte(rid)); err != nil {
				return 0, err
			}
			return w.Write(h, payload, a)
		}
		// A retransmission, on the RTX SSRC.
		_ = h.DelExtension(ridID)
		if rridID != 0 {
			if err := h.SetExtension(rridID, []byte(rid)); err != nil {
				return 0, err
			}
		}
		return w.Write(h, payload, a)
	})
}
