package signaling

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestWireIsTheMessagesJSON: what a session writes is byte for byte the
// JSON encoding of the message, for messages with and without an id and
// data, and strings that need escaping.
func TestWireIsTheMessagesJSON(t *testing.T) {
	long := strings.Repeat("classroom ", 2000) // a frame of its own beyond the 4 KiB buffer
	for _, m := range []Message{
		encode("quality", "", QualityData{}),
		encode("chat", "42", map[string]string{"text": `"quoted" <b>&amp;</b> ünïcode ` + "\u2028 \x01"}),
		encode(`we"ird<type>`, `id\with&stuff`, nil),
		{V: ProtocolVersion, Type: "joined"},
		encode("dashboard", "", map[string]any{"rows": []string{long, long}}),
	} {
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.wire(); string(got) != string(want) {
			t.Errorf("wire:\n%.300s\nwant:\n%.300s", got, want)
		}
	}
}
