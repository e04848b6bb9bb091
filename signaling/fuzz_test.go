package signaling

import (
	"encoding/json"
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
