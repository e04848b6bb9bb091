package loadtest

import (
	"context"
	"testing"
	"time"

	"github.com/pion/webrtc/v4/pkg/media"

	"podium/internal/testmedia"
)

// The clips hold every frame of the real files with their keyframes found:
// one a second, as ffmpeg was asked for.
func TestClipsFindKeyframes(t *testing.T) {
	files := testmedia.ForTest(t)
	c, err := loadClips(files)
	if err != nil {
		t.Fatal(err)
	}
	for name, clip := range map[string]*videoClip{"vp8 q": c.vp8[0], "vp8 f": c.vp8[2], "h264": c.h264} {
		if want := files.Seconds * testmedia.FPS; len(clip.frames) != want {
			t.Errorf("%s: %d frames, want %d", name, len(clip.frames), want)
		}
		keys := 0
		for _, k := range clip.key {
			if k {
				keys++
			}
		}
		if keys < files.Seconds || keys > 2*files.Seconds {
			t.Errorf("%s: %d keyframes in %d s, want about one a second", name, keys, files.Seconds)
		}
		if k := clip.nextKey(1); k <= 1 || !clip.key[k] || k > testmedia.FPS+1 {
			t.Errorf("%s: next keyframe after frame 1 is %d", name, k)
		}
	}
}

// recordingWriter notes which frames were keyframes, asks for a keyframe
// after requestAfter frames and stops the player after seven.
type recordingWriter struct {
	clip         *videoClip
	requestAfter int
	kf           chan struct{}
	done         func()
	keys         []bool
}

func (w *recordingWriter) WriteSample(s media.Sample) error {
	w.keys = append(w.keys, len(s.Data) > 0 && s.Data[0]&1 == 0)
	if len(w.keys) == w.requestAfter {
		w.kf <- struct{}{}
	}
	if len(w.keys) == 7 {
		w.done()
	}
	return nil
}

// A keyframe request makes the player send a keyframe next, without
// waiting for the clip to reach one.
func TestPlayerJumpsToKeyframeOnRequest(t *testing.T) {
	files := testmedia.ForTest(t)
	clip, err := loadIVF(files.VP8[0])
	if err != nil {
		t.Fatal(err)
	}
	// Frames 0..4, then a request: the 6th frame sent must be a keyframe.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w := &recordingWriter{clip: clip, requestAfter: 5, kf: make(chan struct{}, 1), done: cancel}
	if err := playClip(ctx, clip, 200, w, w.kf); err != nil {
		t.Fatal(err)
	}
	if len(w.keys) < 7 {
		t.Fatalf("sent %d frames", len(w.keys))
	}
	if !w.keys[0] || w.keys[3] || !w.keys[5] {
		t.Fatalf("keyframe flags of the frames sent: %v; want a keyframe first and right after the request", w.keys[:7])
	}
}
