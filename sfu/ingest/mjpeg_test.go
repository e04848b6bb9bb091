package ingest

import (
	"testing"

	"podium/sfu"
)

// An MJPEG camera (RFC 2435 JPEG over RTP) is transcoded to H.264 by ffmpeg
// and decodes.
func TestMJPEGTranscoded(t *testing.T) {
	cam := startCamera(t, cameraOptions{codec: "mjpeg"})
	m, _ := newTestManager(t)
	info, err := m.Add("mjpeg", SourceConfig{URL: cam.url("", ""), Transport: TransportTCP})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, m, "mjpeg", info.ID, StateLive)
	video := mustTrack(t, m, "mjpeg", info.ID, sfu.KindVideo)
	vs := &videoSink{}
	video.AddSink("test", vs)
	eventually(t, "50 transcoded frames", func() bool { f, _, _, _ := vs.snapshot(); return f >= 50 })
	video.RemoveSink("test")
	frames, idrs, annexB, violations := vs.snapshot()
	if len(violations) > 0 {
		t.Fatalf("output contract violated: %v", violations[:min(5, len(violations))])
	}
	if idrs < 1 {
		t.Fatal("no keyframe received")
	}
	if got := decodedFrames(t, annexB); got < frames-1 {
		t.Fatalf("ffprobe decoded %d of %d pictures", got, frames)
	}
	if got, _ := m.Get("mjpeg", info.ID); got.Video != "m-jpeg transcoded to h264" {
		t.Fatalf("video = %q", got.Video)
	}
}
