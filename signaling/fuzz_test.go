package signaling

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzDecodeMessage feeds arbitrary frames to the envelope decoder and every
// payload decoder: no panic, and every failure carries a known code.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"type":"join","id":"c1","data":{"autoSubscribe":true}}`,
		`{"v":1,"type":"offer","id":"c2","data":{"sdp":"v=0\r\n","tracks":[{"trackId":"a","source":"camera"}]}}`,
		`{"v":1,"type":"trickle","data":{"target":"publisher","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}}`,
		`{"v":1,"type":"chat","data":{"text":"héllo"}}`,
		`{"v":2,"type":"join"}`, `{"v":1,"type":"nope"}`, `{}`, `[]`, `null`, `{"v":1,"type":"join"} {}`,
		`{"v":1,"type":"mute","data":{"trackId":"x","muted":"yes"}}`, "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	known := map[string]bool{CodeBadJSON: true, CodeUnsupportedVersion: true, CodeUnknownType: true, CodeBadRequest: true}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err != nil {
			pe, ok := err.(*protocolError)
			if !ok || !known[pe.code] || pe.msg == "" {
				t.Fatalf("error %v is not a protocol error with a known code", err)
			}
			if len(m.ID) > maxIDLen {
				t.Fatal("an over-long id would be echoed")
			}
			return
		}
		if !clientTypes[m.Type] || m.V != ProtocolVersion {
			t.Fatalf("accepted %+v", m)
		}
		for _, v := range []any{&JoinData{}, &OfferData{}, &SDPData{}, &TrickleData{}, &TrackIDsData{}, &SetMaxLayerData{},
			&MuteData{}, &MuteAllData{}, &StageData{}, &RaiseHandData{}, &ChatData{}} {
			_ = decodeData(m, v)
		}
		if _, err := json.Marshal(encode("error", m.ID, ErrorData{Code: "x", Message: string(b)})); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzParseSDPFrag feeds arbitrary PATCH bodies to the trickle parser.
func FuzzParseSDPFrag(f *testing.F) {
	f.Add("a=ice-ufrag:abcd\r\na=ice-pwd:xyz\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n")
	f.Add("a=candidate:1 1 udp 1 127.0.0.1 1 typ host\r\n")
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, s string) {
		cands, _, err := ParseSDPFrag(s)
		if err != nil {
			return
		}
		for _, c := range cands {
			if !strings.HasPrefix(c.Candidate, "candidate:") {
				t.Fatalf("candidate %q", c.Candidate)
			}
		}
	})
}

func TestParseSDPFrag(t *testing.T) {
	cands, ufrag, err := ParseSDPFrag("a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\na=end-of-candidates\r\n")
	if err != nil || ufrag != "EsAw" || len(cands) != 1 || *cands[0].SDPMid != "0" || *cands[0].SDPMLineIndex != 0 {
		t.Fatalf("%v %q %+v", err, ufrag, cands)
	}
	if _, _, err := ParseSDPFrag("a=candidate:1 1 udp 1 1.2.3.4 1 typ host\r\n"); err == nil {
		t.Fatal("a candidate with no section must be refused")
	}
}
