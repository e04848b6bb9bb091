package sfu

import (
	"math/rand/v2"
	"os"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"

	"podium/internal/testmedia"
)

// TestSwitchingRealVP8 forwards the three real simulcast VP8 layers,
// packetized as a browser would, through one down-track whose target moves
// at random: the output must stay one continuous VP8 stream.
func TestSwitchingRealVP8(t *testing.T) {
	files := testmedia.ForTest(t)
	type layer struct {
		frames [][]byte
		pay    *codecs.VP8Payloader
		seq    uint16
		ts     uint32
	}
	var layers []*layer
	for i, path := range files.VP8 {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		r, _, err := ivfreader.NewWith(f)
		if err != nil {
			t.Fatal(err)
		}
		l := &layer{pay: &codecs.VP8Payloader{EnablePictureID: true}, seq: uint16(1000 * (i + 1)), ts: uint32(7777 * (i + 1))}
		for {
			fr, _, err := r.ParseNextFrame()
			if err != nil {
				break
			}
			l.frames = append(l.frames, fr)
		}
		f.Close()
		layers = append(layers, l)
	}
	track := NewTrack(TrackInfo{ID: "t", Kind: KindVideo, Codec: Codec{MimeType: "video/VP8", ClockRate: 90000}, Layers: []string{"q", "h", "f"}}, nil)
	w := &recordingWriter{}
	d := boundDownTrack(t, track, w)
	track.AddSink("s", d)
	rng := rand.New(rand.NewPCG(3, 4))
	frames := len(layers[0].frames)
	sent := 0
	for i := 0; i < frames; i++ {
		if i%20 == 0 {
			d.setTarget(rng.IntN(3))
		}
		for li, l := range layers {
			if i >= len(l.frames) {
				continue
			}
			payloads := l.pay.Payload(1200, l.frames[i])
			for j, p := range payloads {
				pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: l.seq, Timestamp: l.ts, Marker: j == len(payloads)-1}, Payload: p}
				l.seq++
				track.WriteRTP(li, pkt)
				if li == d.CurrentLayer() {
					sent++
				}
			}
			l.ts += 3000
		}
		// Let the writer drain so the bounded queue never drops here.
		waitPackets(t, w, sent)
	}
	pkts := w.packets()
	if len(pkts) < frames {
		t.Fatalf("only %d packets forwarded for %d frames", len(pkts), frames)
	}
	first, _ := parseVP8(pkts[0].Payload)
	if !first.keyframe {
		t.Fatal("first packet is not a keyframe")
	}
	lastPic := first.pictureID
	for i := 1; i < len(pkts); i++ {
		a, b := pkts[i-1], pkts[i]
		if b.SequenceNumber != a.SequenceNumber+1 || int32(b.Timestamp-a.Timestamp) < 0 {
			t.Fatalf("packet %d: seq %d ts %d after seq %d ts %d", i, b.SequenceNumber, b.Timestamp, a.SequenceNumber, a.Timestamp)
		}
		desc, ok := parseVP8(b.Payload)
		if !ok || !desc.longPictureID {
			t.Fatalf("packet %d: descriptor %+v", i, desc)
		}
		if desc.frameStart {
			if desc.pictureID != (lastPic+1)&vp8PictureIDMask {
				t.Fatalf("packet %d: picture id %d after %d", i, desc.pictureID, lastPic)
			}
			lastPic = desc.pictureID
		} else if desc.pictureID != lastPic {
			t.Fatalf("packet %d: continuation picture id %d in frame %d", i, desc.pictureID, lastPic)
		}
	}
}
