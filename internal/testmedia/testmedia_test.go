package testmedia

import (
	"context"
	"testing"
	"time"

	"github.com/pion/webrtc/v4/pkg/media"
)

type countingWriter struct{ samples, bytes int }

func (c *countingWriter) WriteSample(s media.Sample) error {
	c.samples++
	c.bytes += len(s.Data)
	return nil
}

func TestFilesAreRealMedia(t *testing.T) {
	f := ForTest(t)
	units, err := ReadH264AccessUnits(f.H264)
	if err != nil {
		t.Fatal(err)
	}
	if want := f.Seconds * FPS; len(units) != want {
		t.Fatalf("H.264 access units = %d, want %d", len(units), want)
	}
	// The first picture must be decodable on its own: SPS (7), PPS (8), IDR (5).
	types := map[byte]bool{}
	for i := 0; i+4 < len(units[0]); i++ {
		if units[0][i] == 0 && units[0][i+1] == 0 && units[0][i+2] == 0 && units[0][i+3] == 1 {
			types[units[0][i+4]&0x1f] = true
		}
	}
	for _, nt := range []byte{5, 7, 8} {
		if !types[nt] {
			t.Errorf("first access unit lacks NAL type %d (has %v)", nt, types)
		}
	}
}

func TestPlayPacesFrames(t *testing.T) {
	f := ForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var video, audio countingWriter
	done := make(chan error, 2)
	go func() { done <- PlayIVF(ctx, f.VP8[0], &video, true) }()
	go func() { done <- PlayOgg(ctx, f.Opus, &audio, true) }()
	for i := 0; i < 2; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// Two seconds of 30 fps video and 20 ms audio: paced, so neither runs
	// through its whole 10 s file at once (a loaded machine may send fewer,
	// never more than real time allows).
	if video.samples == 0 || video.samples > 70 {
		t.Errorf("video samples in 2 s = %d, want 1..70 (about 60)", video.samples)
	}
	if audio.samples == 0 || audio.samples > 110 {
		t.Errorf("audio samples in 2 s = %d, want 1..110 (about 100)", audio.samples)
	}
}
