package sfu

import (
	"bytes"
	"testing"
)

func TestParseVP8(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		ok      bool
		want    vp8Descriptor
	}{
		{"empty", nil, false, vp8Descriptor{}},
		{"minimal keyframe start", []byte{0x10, 0x00}, true, vp8Descriptor{size: 1, frameStart: true, keyframe: true}},
		{"minimal interframe start", []byte{0x10, 0x01}, true, vp8Descriptor{size: 1, frameStart: true}},
		{"continuation", []byte{0x00, 0x00}, true, vp8Descriptor{size: 1}},
		{"15-bit picture id keyframe", []byte{0x90, 0x80, 0x81, 0x02, 0x00}, true,
			vp8Descriptor{size: 4, frameStart: true, keyframe: true, hasPictureID: true, longPictureID: true, pictureIDAt: 2, pictureID: 0x0102}},
		{"7-bit picture id, tl0, tid", []byte{0x90, 0xe0, 0x05, 0x09, 0x40, 0x01}, true,
			vp8Descriptor{size: 5, frameStart: true, hasPictureID: true, pictureIDAt: 2, pictureID: 5, hasTL0PicIdx: true, tl0PicIdxAt: 3, tl0PicIdx: 9}},
		{"truncated extension", []byte{0x90}, false, vp8Descriptor{}},
		{"truncated long picture id", []byte{0x90, 0x80, 0x81}, false, vp8Descriptor{}},
		{"start without payload header", []byte{0x10}, false, vp8Descriptor{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseVP8(tt.payload)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if ok && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestWriteVP8Ids(t *testing.T) {
	p := []byte{0x90, 0xc0, 0x81, 0x02, 0x07, 0x00}
	d, ok := parseVP8(p)
	if !ok {
		t.Fatal("parse")
	}
	writeVP8Ids(p, &d, 0x7ffe, 200)
	d2, _ := parseVP8(p)
	if d2.pictureID != 0x7ffe || d2.tl0PicIdx != 200 || !d2.keyframe {
		t.Errorf("after rewrite: %+v", d2)
	}
}

func TestH264Keyframe(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		want    bool
	}{
		{"empty", nil, false},
		{"IDR", []byte{0x65, 0x88}, true},
		{"SPS", []byte{0x67, 0x42}, true},
		{"non-IDR slice", []byte{0x41, 0x9a}, false},
		{"STAP-A with SPS", []byte{0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce}, true},
		{"STAP-A without", []byte{0x18, 0x00, 0x02, 0x41, 0x42}, false},
		{"STAP-A overflowing length", []byte{0x18, 0xff, 0xff, 0x67}, false},
		{"FU-A IDR start", []byte{0x7c, 0x85, 0x00}, true},
		{"FU-A IDR middle", []byte{0x7c, 0x05, 0x00}, false},
		{"FU-A truncated", []byte{0x7c}, false},
	}
	for _, tt := range tests {
		if got := h264Keyframe(tt.payload); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestRedPrimary(t *testing.T) {
	// Two redundant blocks of 3 and 2 bytes, then a primary with PT 111.
	red := []byte{
		0x80 | 111, 0x00, 0x40, 3, // F=1 PT=111 offset=... len=3
		0x80 | 111, 0x00, 0x20, 2,
		111,
		1, 2, 3, 4, 5, // redundant
		9, 9, 9, // primary
	}
	pt, primary, err := redPrimary(red)
	if err != nil || pt != 111 || !bytes.Equal(primary, []byte{9, 9, 9}) {
		t.Fatalf("got pt=%d primary=%v err=%v", pt, primary, err)
	}
	for _, bad := range [][]byte{nil, {0x80 | 111, 0, 0}, {0x80 | 111, 0x00, 0x03, 0xff, 111, 1}} {
		if _, _, err := redPrimary(bad); err == nil {
			t.Errorf("redPrimary(%v): no error", bad)
		}
	}
	// A lone primary: one-byte header.
	if pt, p, err := redPrimary([]byte{111, 7}); err != nil || pt != 111 || !bytes.Equal(p, []byte{7}) {
		t.Errorf("lone primary: %d %v %v", pt, p, err)
	}
}

func FuzzParseVP8(f *testing.F) {
	f.Add([]byte{0x90, 0xe0, 0x05, 0x09, 0x40, 0x01})
	f.Add([]byte{0x90, 0x80, 0x81, 0x02, 0x00})
	f.Fuzz(func(t *testing.T, p []byte) {
		d, ok := parseVP8(p)
		if !ok {
			return
		}
		if d.size > len(p) {
			t.Fatalf("descriptor size %d beyond payload %d", d.size, len(p))
		}
		q := append([]byte(nil), p...)
		writeVP8Ids(q, &d, d.pictureID, d.tl0PicIdx)
		if !bytes.Equal(p, q) {
			t.Fatalf("rewriting the same ids changed the payload: %x -> %x", p, q)
		}
	})
}

func TestRewriteVP8WidensShortPictureID(t *testing.T) {
	src := []byte{0x90, 0xc0, 0x05, 0x09, 0x00, 0xaa}
	d, _ := parseVP8(src)
	dst := make([]byte, 16)
	n := rewriteVP8(dst, src, &d, 0x1234, 77)
	got, ok := parseVP8(dst[:n])
	if !ok || !got.longPictureID || got.pictureID != 0x1234 || got.tl0PicIdx != 77 || !got.keyframe || dst[n-1] != 0xaa || n != len(src)+1 {
		t.Fatalf("rewritten %x: %+v", dst[:n], got)
	}
}

func FuzzRewriteVP8(f *testing.F) {
	f.Add([]byte{0x90, 0xc0, 0x05, 0x09, 0x00, 0xaa}, uint16(300), uint8(4))
	f.Add([]byte{0x90, 0x80, 0x81, 0x02, 0x00}, uint16(0x7fff), uint8(0))
	f.Fuzz(func(t *testing.T, src []byte, pic uint16, tl0 uint8) {
		d, ok := parseVP8(src)
		if !ok {
			return
		}
		pic &= vp8PictureIDMask
		dst := make([]byte, len(src)+1)
		n := rewriteVP8(dst, src, &d, pic, tl0)
		if n == 0 {
			t.Fatal("rewrite refused a parsed descriptor")
		}
		got, ok := parseVP8(dst[:n])
		if !ok {
			t.Fatalf("rewritten payload %x does not parse", dst[:n])
		}
		if d.hasPictureID && (got.pictureID != pic || !got.longPictureID) {
			t.Fatalf("picture id %d (long %v), want %d", got.pictureID, got.longPictureID, pic)
		}
		if d.hasTL0PicIdx && got.tl0PicIdx != tl0 {
			t.Fatalf("tl0 %d, want %d", got.tl0PicIdx, tl0)
		}
		if !bytes.Equal(dst[got.size:n], src[d.size:]) {
			t.Fatal("payload after the descriptor changed")
		}
	})
}

func FuzzH264Keyframe(f *testing.F) {
	f.Add([]byte{0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce})
	f.Add([]byte{0x7c, 0x85, 0x00})
	f.Fuzz(func(t *testing.T, p []byte) {
		h264Keyframe(p)
	})
}

func FuzzRedPrimary(f *testing.F) {
	f.Add([]byte{0x80 | 111, 0x00, 0x40, 3, 111, 1, 2, 3, 9})
	f.Add([]byte{111, 7})
	f.Fuzz(func(t *testing.T, p []byte) {
		pt, primary, err := redPrimary(p)
		if err != nil {
			return
		}
		if pt > 127 || len(primary) > len(p) {
			t.Fatalf("pt %d, primary %d bytes of %d", pt, len(primary), len(p))
		}
	})
}
