package sfu

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"podium/internal/testenv"
	"podium/internal/testmedia"
)

// browserAudioAPI is a subscriber that, like Chromium, takes audio/red.
func browserAudioAPI(t *testing.T, extra ...interceptor.Factory) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "audio/red", ClockRate: 48000, Channels: 2, SDPFmtpLine: "111/111"},
		PayloadType:        63,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	return clientAPIWith(t, m, []webrtc.NetworkType{webrtc.NetworkTypeUDP4}, extra...)
}

// TestREDRebuildsLostAudio: the teacher sends plain Opus. A classroom
// whose link loses 5 % of its audio and that negotiated RED, as browsers
// do, gets each packet with copies of the ones before it once its
// receiver reports show the loss, and rebuilds nearly every lost packet
// from the next ones, byte for byte what a lossless classroom got. A
// classroom without RED gets plain Opus.
func TestREDRebuildsLostAudio(t *testing.T) {
	files := testmedia.ForTest(t)
	s := newTestSFU(t, Config{ICETCPPort: -1})
	room, _, err := s.Rooms.GetOrCreateRoom("red-audio")
	if err != nil {
		t.Fatal(err)
	}
	teacher := joinPeer(t, s, room, "teacher", RoleTeacher, clientAPI(t))
	publishMedia(t, teacher, files, false)
	drop := &dropInterceptor{audio: true, fraction: 0.05, rng: rand.New(rand.NewPCG(7, 8))}
	lossy := joinPeer(t, s, room, "lossy", RoleClassroom, browserAudioAPI(t, drop))
	clean := joinPeer(t, s, room, "clean", RoleClassroom, clientAPI(t))

	const mic = "teacher-microphone"
	testenv.WaitFor(t, 30*time.Second, "12 s of the teacher's audio on the lossy link", func() bool {
		l := lossy.stream(mic)
		return l != nil && len(l.audioPackets()) >= 600
	})
	if l := clean.stream(mic); l == nil || l.family != familyOpus {
		t.Fatalf("the classroom without RED gets %+v, want plain Opus", l)
	}
	if l := lossy.stream(mic); l.family != familyRED {
		t.Fatalf("the classroom that negotiated RED gets family %d", l.family)
	}
	reference := map[uint32][]byte{}
	for _, p := range clean.stream(mic).audioPackets() {
		reference[p.ts] = p.payload
	}

	// What the lossy classroom has: primaries, and what the redundant
	// blocks rebuild.
	got := lossy.stream(mic).audioPackets()
	have := map[uint32]bool{}
	rebuilt := map[uint32][]byte{}
	var first, last uint16
	firstRed := -1
	seqs := 0
	for seq, p := range got {
		blocks, err := parseRED(p.payload)
		if err != nil {
			t.Fatalf("packet %d: %v", seq, err)
		}
		have[p.ts] = true
		if seqs == 0 || int16(seq-first) < 0 {
			first = seq
		}
		if seqs == 0 || int16(seq-last) > 0 {
			last = seq
		}
		seqs++
		for _, b := range blocks[:len(blocks)-1] {
			rebuilt[p.ts-b.offset] = b.data
			if firstRed < 0 || int16(seq-uint16(firstRed)) < 0 {
				firstRed = int(seq)
			}
		}
		if prim := blocks[len(blocks)-1]; !bytes.Equal(prim.data, reference[p.ts]) && reference[p.ts] != nil {
			t.Fatalf("packet %d: the primary differs from the lossless classroom's", seq)
		}
	}
	if firstRed < 0 {
		t.Fatalf("no redundancy reached the classroom losing 5 %% (%d packets dropped)", drop.droppedCount())
	}
	// Losses after redundancy began (the reports take a second or two).
	lost, recovered := 0, 0
	for seq := uint16(firstRed); seq != last; seq++ {
		if _, ok := got[seq]; ok {
			continue
		}
		lost++
		// The lost packet's timestamp: from its neighbours (20 ms apart).
		var ts uint32
		for back := uint16(1); back < 10; back++ {
			if p, ok := got[seq-back]; ok {
				ts = p.ts + uint32(back)*960
				break
			}
		}
		if b, ok := rebuilt[ts]; ok && !have[ts] {
			if want := reference[ts]; want != nil && !bytes.Equal(b, want) {
				t.Fatalf("packet %d rebuilt from redundancy differs from what the lossless classroom got", seq)
			}
			recovered++
		}
	}
	span := int(uint16(last-uint16(firstRed))) + 1
	t.Logf("lossy classroom: %d audio packets dropped on the link; after redundancy began: %d of %d lost, %d rebuilt (loss after recovery %.2f %%)",
		drop.droppedCount(), lost, span, recovered, 100*float64(lost-recovered)/float64(span))
	if lost == 0 {
		t.Fatal("no audio lost after redundancy began: the test link did not drop")
	}
	if after := float64(lost-recovered) / float64(span); after > 0.005 {
		t.Errorf("loss after recovery %.2f %%, want < 0.5 %%", 100*after)
	}
}
