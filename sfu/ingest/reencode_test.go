package ingest

import (
	"testing"
	"time"

	"podium/internal/rtspcam"
	"podium/internal/testenv"
	"podium/sfu"
)

// An H.264 camera with a long keyframe interval (10 s here, common on IP
// cameras) registered with reencode goes through ffmpeg: classrooms get a
// keyframe every 2 s, so one joining waits at most that long for a picture.
func TestReencodeShortensKeyframeInterval(t *testing.T) {
	const cameraGOP = 250 // 10 s at 25 fps
	cam := rtspcam.Start(t, rtspcam.Options{GOP: cameraGOP})
	m, _ := newTestManager(t)
	info, err := m.Add("gop", SourceConfig{URL: cam.URL("", ""), Transport: TransportTCP, Reencode: true})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, m, "gop", info.ID, StateLive)
	video := mustTrack(t, m, "gop", info.ID, sfu.KindVideo)
	vs := &videoSink{}
	video.AddSink("classroom", vs)
	testenv.WaitFor(t, 40*time.Second, "8 s of pictures", func() bool { f, _, _, _ := vs.snapshot(); return f >= 200 })
	video.RemoveSink("classroom")
	frames, idrs, annexB, violations := vs.snapshot()
	if len(violations) > 0 {
		t.Fatalf("output contract violated: %v", violations[:min(5, len(violations))])
	}
	t.Logf("%d pictures, %d keyframes (the camera sends one every %d)", frames, idrs, cameraGOP)
	if want := frames/50 - 1; idrs < want {
		t.Errorf("%d keyframes in %d pictures, want at least %d (one every 2 s)", idrs, frames, want)
	}
	if got := decodedFrames(t, annexB); got < frames-1 {
		t.Errorf("ffprobe decoded %d of %d pictures", got, frames)
	}
	got, _ := m.Get("gop", info.ID)
	if want := "h264 re-encoded (keyframe every 2 s)"; got.Video != want || !got.Reencode {
		t.Errorf("video = %q, reencode = %v; want %q, true", got.Video, got.Reencode, want)
	}
}
