package transcode

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"
)

func box(typ string, payload int) []byte {
	b := make([]byte, 8+payload)
	binary.BigEndian.PutUint32(b, uint32(8+payload))
	copy(b[4:], typ)
	return b
}

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

func TestCheckBoxes(t *testing.T) {
	seg := cat(box("styp", 4), box("moof", 40), box("mdat", 100))
	large := make([]byte, 16+8)
	binary.BigEndian.PutUint32(large, 1)
	copy(large[4:], "mdat")
	binary.BigEndian.PutUint64(large[8:], 24)
	for _, tc := range []struct {
		name    string
		b       []byte
		wantErr string
	}{
		{"segment", seg, ""},
		{"large size box", cat(box("moof", 4), large), ""},
		{"truncated mdat", seg[:len(seg)-10], `"mdat" at byte 60 declares 108 bytes but only 98 remain`},
		{"truncated header", append(seg, 0, 0, 1), "truncated box header"},
		{"missing moof", box("mdat", 4), `no "moof" box`},
		{"garbage", []byte{0, 0, 0, 16, 0xff, 0xfe, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}, "not a box type"},
		{"size below header", []byte{0, 0, 0, 4, 'm', 'o', 'o', 'f'}, "impossible size"},
		{"empty", nil, `no "moof" box`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkBoxes(tc.b, "moof", "mdat")
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func FuzzCheckBoxes(f *testing.F) {
	f.Add(cat(box("moof", 4), box("mdat", 4)))
	f.Add([]byte{0, 0, 0, 1, 'm', 'd', 'a', 't', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 0, 'm', 'd', 'a', 't'})
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = checkBoxes(b, "moof", "mdat") // must not panic or loop
	})
}

func TestParseProgress(t *testing.T) {
	var got []Progress
	readProgress(strings.NewReader("frame=10\nout_time_us=1500000\nspeed=2.5x\nprogress=continue\nout_time_ms=3000000\nspeed=N/A\nprogress=end\n"),
		func(p Progress) { got = append(got, p) })
	want := []Progress{{OutTime: 1500 * time.Millisecond, Speed: 2.5}, {OutTime: 3 * time.Second, Speed: 2.5, Done: true}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func FuzzParseProgress(f *testing.F) {
	f.Add("out_time_us=1000\nprogress=continue\n")
	f.Add("speed=-1x\nout_time_us=-5\nprogress=end")
	f.Fuzz(func(t *testing.T, s string) {
		readProgress(strings.NewReader(s), func(p Progress) {
			if p.OutTime < 0 || p.Speed < 0 {
				t.Fatalf("negative progress %+v", p)
			}
		})
	})
}

func TestPickRungs(t *testing.T) {
	for _, tc := range []struct {
		src  int
		want string
	}{{1080, "1080p,720p,360p"}, {720, "720p,360p"}, {480, "360p"}, {240, "360p"}} {
		var names []string
		for _, r := range pickRungs(DefaultLadder, tc.src) {
			names = append(names, r.Name)
		}
		if got := strings.Join(names, ","); got != tc.want {
			t.Errorf("source %dp: %s, want %s", tc.src, got, tc.want)
		}
	}
	if w, h := canvas(360); w != 640 || h != 360 {
		t.Errorf("canvas(360) = %dx%d", w, h)
	}
	if w, h := canvas(1080); w != 1920 || h != 1080 {
		t.Errorf("canvas(1080) = %dx%d", w, h)
	}
}
