package goclient

import (
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// Retransmissions carry the repaired RID, never the RID (see ridTagger).
func TestRIDTaggerMarksRetransmissionsAsRepairs(t *testing.T) {
	simulcastTags.Store(uint32(7001), [2]string{"0", "h"})
	defer simulcastTags.Delete(uint32(7001))
	tagger, _ := ridTaggerFactory{}.NewInterceptor("")
	var sent []rtp.Header
	w := tagger.BindLocalStream(&interceptor.StreamInfo{
		SSRC: 7001, SSRCRetransmission: 7002,
		RTPHeaderExtensions: []interceptor.RTPHeaderExtension{
			{URI: sdp.SDESMidURI, ID: 1}, {URI: sdp.SDESRTPStreamIDURI, ID: 2}, {URI: sdp.SDESRepairRTPStreamIDURI, ID: 3},
		},
	}, interceptor.RTPWriterFunc(func(h *rtp.Header, p []byte, _ interceptor.Attributes) (int, error) {
		sent = append(sent, h.Clone())
		return len(p), nil
	}))
	original := &rtp.Header{Version: 2, SSRC: 7001}
	rtx := &rtp.Header{Version: 2, SSRC: 7002}
	_ = rtx.SetExtension(2, []byte("h")) // copied from the stored original
	for _, h := range []*rtp.Header{original, rtx} {
		if _, err := w.Write(h, []byte{1}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if string(sent[0].GetExtension(2)) != "h" || string(sent[0].GetExtension(1)) != "0" {
		t.Errorf("original not tagged with mid 0 and rid h: %+v", sent[0])
	}
	if sent[1].GetExtension(2) != nil || string(sent[1].GetExtension(3)) != "h" || string(sent[1].GetExtension(1)) != "0" {
		t.Errorf("retransmission must carry mid and the repaired rid, not the rid: %+v", sent[1])
	}
}
