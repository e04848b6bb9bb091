package goclient

import (
	"sync"

	"github.com/pion/webrtc/v4"
)

// simulcastTags maps a sending SSRC to the mid and rid its packets must
// carry. A browser puts both header extensions on simulcast packets so the
// receiver can tell the layers apart; pion's sender leaves that to the
// application, so NewAPI installs a ridtag interceptor with this lookup.
var simulcastTags sync.Map // uint32 -> [2]string{mid, rid}

func simulcastTag(ssrc uint32) (mid, rid string, ok bool) {
	v, ok := simulcastTags.Load(ssrc)
	if !ok {
		return "", "", false
	}
	tag := v.([2]string)
	return tag[0], tag[1], true
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
