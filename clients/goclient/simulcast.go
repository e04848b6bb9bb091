package goclient

import (
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// simulcastTags maps a sending SSRC to the mid and rid its packets must
// carry. A browser puts both header extensions on simulcast packets so the
// receiver can tell the layers apart; pion's sender leaves that to the
// application, so NewAPI installs ridTagger to do it.
var simulcastTags sync.Map // uint32 -> [2]string{mid, rid}

type ridTaggerFactory struct{}

func (ridTaggerFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &ridTagger{}, nil
}

type ridTagger struct{ interceptor.NoOp }

func (*ridTagger) BindLocalStream(info *interceptor.StreamInfo, writer interceptor.RTPWriter) interceptor.RTPWriter {
	v, ok := simulcastTags.Load(info.SSRC)
	if !ok {
		return writer
	}
	tag := v.([2]string)
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
		return writer
	}
	mid, rid := []byte(tag[0]), []byte(tag[1])
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if err := h.SetExtension(midID, mid); err != nil {
			return 0, err
		}
		// The NACK responder's retransmissions pass here too, on the RTX
		// SSRC. They carry the repaired RID, never the RID: a receiver that
		// saw the RID on the RTX SSRC would read the layer from the
		// retransmission stream from then on, and the layer would stall.
		if h.SSRC != info.SSRC {
			_ = h.DelExtension(ridID)
			if rridID != 0 {
				if err := h.SetExtension(rridID, rid); err != nil {
					return 0, err
				}
			}
			return writer.Write(h, payload, a)
		}
		if err := h.SetExtension(ridID, rid); err != nil {
			return 0, err
		}
		return writer.Write(h, payload, a)
	})
}

// tagSimulcast records the mid and rid of every simulcast encoding of pc
// (called once the offer has assigned mids).
func tagSimulcast(pc *webrtc.PeerConnection) {
	for _, tr := range pc.GetTransceivers() {
		s := tr.Sender()
		if s == nil {
			continue
		}
		encs := s.GetParameters().Encodings
		if len(encs) < 2 {
			continue
		}
		for _, e := range encs {
			if e.RID != "" {
				simulcastTags.Store(uint32(e.SSRC), [2]string{tr.Mid(), e.RID})
			}
		}
	}
}
