package rtpmux

import "testing"

func TestIsRTCP(t *testing.T) {
	for _, c := range []struct {
		name string
		p    []byte
		want bool
	}{
		{"sender report (200)", []byte{0x80, 200, 0, 6}, true},
		{"receiver report (201)", []byte{0x81, 201, 0, 7}, true},
		{"transport feedback (205)", []byte{0x8f, 205, 0, 4}, true},
		{"PLI (206)", []byte{0x81, 206, 0, 2}, true},
		{"RTP, payload type 96", []byte{0x80, 96, 0, 1}, false},
		{"RTP with the marker, payload type 111", []byte{0x80, 0x80 | 111, 0, 1}, false},
		{"RTP with the marker, payload type 63 (191)", []byte{0x80, 0x80 | 63, 0, 1}, false},
		{"too short", []byte{0x80}, false},
	} {
		if got := IsRTCP(c.p); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
