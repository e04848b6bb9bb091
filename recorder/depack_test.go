package recorder

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"podium/internal/testmedia"
)

func packetize(t *testing.T, pl rtp.Payloader, data []byte, seq *uint16, ts uint32) []*rtp.Packet {
	t.Helper()
	var out []*rtp.Packet
	payloads := pl.Payload(1200, data)
	for i, p := range payloads {
		out = append(out, &rtp.Packet{Header: rtp.Header{SequenceNumber: *seq, Timestamp: ts, Marker: i == len(payloads)-1}, Payload: p})
		*seq++
	}
	return out
}

// splitAnnexB returns the NAL units of an Annex-B access unit.
func splitAnnexB(au []byte) [][]byte {
	var out [][]byte
	for _, part := range bytes.Split(au, []byte{0, 0, 1}) {
		part = bytes.TrimRight(part, "\x00")
		if len(part) > 0 {
			out = append(out, part)
		}
	}
	return out
}

func splitAVCC(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= 4 {
		n := int(binary.BigEndian.Uint32(b))
		out = append(out, b[4:4+n])
		b = b[4+n:]
	}
	return out
}

func TestH264DepacketizerRoundTrip(t *testing.T) {
	files := testmedia.ForTest(t)
	aus, err := testmedia.ReadH264AccessUnits(files.H264)
	if err != nil {
		t.Fatal(err)
	}
	d := newH264Depacketizer()
	var seq uint16 = 65000 // wraps
	keys := 0
	for i, au := range aus[:90] {
		var got *frame
		for _, p := range packetize(t, &codecs.H264Payloader{}, au, &seq, uint32(i*3000)) {
			f, ok, err := d.push(p.SequenceNumber, p.Timestamp, p.Marker, p.Payload)
			if err != nil {
				t.Fatalf("frame %d: %v", i, err)
			}
			if ok {
				got = &f
			}
		}
		if got == nil {
			t.Fatalf("frame %d not complete", i)
		}
		want := splitAnnexB(au)
		if g := splitAVCC(got.data); len(g) != len(want) || !bytes.Equal(bytes.Join(g, nil), bytes.Join(want, nil)) {
			t.Fatalf("frame %d: %d NALUs back, want %d", i, len(g), len(want))
		}
		if got.key != (want[len(want)-1][0]&0x1f == 5) {
			t.Fatalf("frame %d: key=%v", i, got.key)
		}
		if got.key {
			keys++
			if !isKeyframeStart(codecH264, packetize(t, &codecs.H264Payloader{}, au, new(uint16), 0)[0].Payload) {
				t.Fatalf("frame %d: first packet not seen as a keyframe start", i)
			}
		}
	}
	if keys < 2 || len(d.sps) == 0 || len(d.pps) == 0 {
		t.Fatalf("keyframes %d, sps %d bytes, pps %d bytes", keys, len(d.sps), len(d.pps))
	}
	if _, err := initSegment(codecH264, 0, d.sps, d.pps, 0, 0); err != nil {
		t.Fatalf("init from stream parameters: %v", err)
	}
}

func TestH264DepacketizerDropsFrameWithLostPacket(t *testing.T) {
	files := testmedia.ForTest(t)
	aus, err := testmedia.ReadH264AccessUnits(files.H264)
	if err != nil {
		t.Fatal(err)
	}
	d := newH264Depacketizer()
	var seq uint16
	pkts := packetize(t, &codecs.H264Payloader{}, aus[0], &seq, 0) // keyframe: many FU-A packets
	if len(pkts) < 3 {
		t.Fatalf("keyframe in %d packets; want a fragmented one", len(pkts))
	}
	var sawErr bool
	for i, p := range pkts {
		if i == 1 {
			continue // lost
		}
		_, ok, err := d.push(p.SequenceNumber, p.Timestamp, p.Marker, p.Payload)
		if ok {
			t.Fatal("a frame with a lost packet was delivered")
		}
		sawErr = sawErr || err != nil
	}
	if !sawErr {
		t.Fatal("loss not reported")
	}
	// The next frame comes through again.
	var ok bool
	for _, p := range packetize(t, &codecs.H264Payloader{}, aus[1], &seq, 3000) {
		_, ok, _ = d.push(p.SequenceNumber, p.Timestamp, p.Marker, p.Payload)
	}
	if !ok {
		t.Fatal("frame after the loss not delivered")
	}
}

func TestVP8DepacketizerRoundTrip(t *testing.T) {
	var seq uint16
	d := &vp8Depacketizer{}
	key := make([]byte, 3000)
	key[0] = 0x10 // keyframe: bit 0 clear
	copy(key[3:], []byte{0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01})
	inter := bytes.Repeat([]byte{0x01}, 2500)
	for i, frameData := range [][]byte{key, inter} {
		var got *frame
		pkts := packetize(t, &codecs.VP8Payloader{EnablePictureID: true}, frameData, &seq, uint32(i*3000))
		if isKeyframeStart(codecVP8, pkts[0].Payload) != (i == 0) {
			t.Fatalf("frame %d: keyframe start detection wrong", i)
		}
		for _, p := range pkts {
			f, ok, err := d.push(p.SequenceNumber, p.Timestamp, p.Marker, p.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				got = &f
			}
		}
		if got == nil || !bytes.Equal(got.data, frameData) || got.key != (i == 0) {
			t.Fatalf("frame %d not rebuilt", i)
		}
	}
	if d.width != 640 || d.height != 360 {
		t.Fatalf("size %dx%d, want 640x360", d.width, d.height)
	}
}

func FuzzH264Depacketizer(f *testing.F) {
	f.Add([]byte{0x65, 1, 2, 3}, []byte{0x7c, 0x85, 1, 2}, []byte{0x18, 0, 2, 0x67, 1, 0, 2, 0x68, 2})
	f.Add([]byte{0x7c, 0x45, 9}, []byte{0x1c}, []byte{0x18, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		d := newH264Depacketizer()
		for i, p := range [][]byte{a, b, c, a} {
			fr, ok, _ := d.push(uint16(i), uint32(i/2), i%2 == 1, p)
			if ok {
				for _, n := range splitAVCC(fr.data) {
					if len(n) == 0 {
						t.Fatal("empty NAL unit in frame")
					}
				}
			}
			isKeyframeStart(codecH264, p)
		}
	})
}

func FuzzVP8Depacketizer(f *testing.F) {
	f.Add([]byte{0x90, 0x80, 0x81, 0x02, 0x10, 0, 0, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01}, []byte{0x80, 0xff})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		d := &vp8Depacketizer{}
		for i, p := range [][]byte{a, b, a} {
			d.push(uint16(i), 0, i == 2, p)
			isKeyframeStart(codecVP8, p)
		}
	})
}
