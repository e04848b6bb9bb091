package ridtag

import (
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// A browser marks retransmissions with the repaired RID, never the RID: a
// receiver that saw the RID on the RTX SSRC would read the layer from the
// retransmission stream from then on (pion does), and the layer stalls.
func TestRetransmissionsAreMarkedAsRepairs(t *testing.T) {
	f := New(func(ssrc uint32) (string, string, bool) {
		if ssrc == 1111 {
			return "0", "f", true
		}
		return "", "", false
	})
	tagger, _ := f.NewInterceptor("")

	var sent []rtp.Header
	out := interceptor.RTPWriterFunc(func(h *rtp.Header, p []byte, _ interceptor.Attributes) (int, error) {
		sent = append(sent, h.Clone())
		return len(p), nil
	})
	exts := []interceptor.RTPHeaderExtension{
		{URI: sdp.SDESMidURI, ID: 1}, {URI: sdp.SDESRTPStreamIDURI, ID: 2}, {URI: sdp.SDESRepairRTPStreamIDURI, ID: 3},
	}
	w := tagger.BindLocalStream(&interceptor.StreamInfo{
		SSRC: 1111, SSRCRetransmission: 2222, PayloadType: 96, PayloadTypeRetransmission: 97,
		MimeType: "video/VP8", RTPHeaderExtensions: exts,
	}, out)
	other := tagger.BindLocalStream(&interceptor.StreamInfo{SSRC: 3333, MimeType: "video/VP8", RTPHeaderExtensions: exts}, out)

	original := &rtp.Header{Version: 2, SSRC: 1111, PayloadType: 96, SequenceNumber: 7}
	// What pion's NACK responder builds: a copy of the original's header,
	// extensions included, with the RTX SSRC and payload type.
	retransmission := &rtp.Header{Version: 2, SSRC: 2222, PayloadType: 97, SequenceNumber: 900}
	_ = retransmission.SetExtension(2, []byte("f"))
	for _, h := range []*rtp.Header{original, retransmission} {
		if _, err := w.Write(h, []byte{0x90, 0x80, 0x01}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := other.Write(&rtp.Header{Version: 2, SSRC: 3333}, []byte{1}, nil); err != nil {
		t.Fatal(err)
	}

	if got := string(sent[0].GetExtension(1)); got != "0" {
		t.Errorf("original MID %q, want 0", got)
	}
	if got := string(sent[0].GetExtension(2)); got != "f" {
		t.Errorf("original RID %q, want f", got)
	}
	if got := sent[1].GetExtension(2); got != nil {
		t.Errorf("retransmission carries RID %q; it must not", got)
	}
	if got := string(sent[1].GetExtension(3)); got != "f" {
		t.Errorf("retransmission RRID %q, want f", got)
	}
	if got := string(sent[1].GetExtension(1)); got != "0" {
		t.Errorf("retransmission MID %q, want 0", got)
	}
	if sent[2].Extension {
		t.Errorf("a stream that is no simulcast layer was tagged: %+v", sent[2])
	}
}
