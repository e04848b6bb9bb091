package ingest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"podium/internal/rtspcam"
	"podium/internal/testenv"
)

// BenchmarkCameraToClassroomDelay measures how long a camera's picture
// takes to reach a classroom's down-track: from the moment the camera sends
// the last packet of picture N to the moment the last packet of picture N
// leaves the source's track toward a subscriber, for an H.264 camera
// (forwarded as it is), an H.265 and an MJPEG camera (transcoded by ffmpeg).
// Each picture carries its number as six black or white bands, so pictures
// are matched after transcoding by what they show. Network and browser
// jitter buffer come on top. Run: go test -run '^$' -bench
// BenchmarkCameraToClassroomDelay -benchtime 1x ./sfu/ingest/
func BenchmarkCameraToClassroomDelay(b *testing.B) {
	for _, codec := range []string{"h264", "h265", "mjpeg"} {
		b.Run(codec, func(b *testing.B) { benchCameraDelay(b, codec) })
	}
}

func benchCameraDelay(b *testing.B, codec string) {
	var mu sync.Mutex
	var sent []time.Time
	cam := rtspcam.Start(b, rtspcam.Options{Codec: codec, FrameCode: true, OnFrameSent: func(at time.Time) {
		mu.Lock()
		sent = append(sent, at)
		mu.Unlock()
	}})
	_, _, track := benchSource(b, cam)
	vs := &videoSink{}
	track.AddSink("classroom", vs)
	defer track.RemoveSink("classroom")
	const pictures = 250 // 10 s at 25 fps
	b.ResetTimer()
	for range b.N {
		testenv.WaitFor(b, 60*time.Second, "10 s of pictures", func() bool { f, _, _, _ := vs.snapshot(); return f >= pictures })
	}
	b.StopTimer()

	vs.mu.Lock()
	annexB := append([]byte(nil), vs.annexB.Bytes()...)
	arrivals := slices.Clone(vs.arrivals)
	vs.mu.Unlock()
	mu.Lock()
	sentAt := slices.Clone(sent)
	mu.Unlock()
	codes := frameCodes(b, annexB)
	if len(codes) != len(arrivals) {
		b.Fatalf("decoded %d pictures of %d received", len(codes), len(arrivals))
	}
	var delays []time.Duration
	for i, code := range codes {
		// The latest picture sent before this arrival that shows this
		// number (pictures repeat their number every 64, 2.56 s).
		for n := len(sentAt) - 1; n >= 0; n-- {
			if n%64 == code && !sentAt[n].After(arrivals[i]) {
				delays = append(delays, arrivals[i].Sub(sentAt[n]))
				break
			}
		}
	}
	if len(delays) < len(codes)*9/10 {
		b.Fatalf("matched %d of %d pictures", len(delays), len(codes))
	}
	slices.Sort(delays)
	p := func(q float64) float64 {
		return float64(delays[int(q*float64(len(delays)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(p(0.5), "p50-ms")
	b.ReportMetric(p(0.95), "p95-ms")
	b.ReportMetric(float64(len(delays)), "pictures")
}

// frameCodes decodes Annex-B H.264 and reads each picture's number from its
// six bands.
func frameCodes(tb testing.TB, annexB []byte) []int {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "video.h264")
	if err := os.WriteFile(path, annexB, 0o600); err != nil {
		tb.Fatal(err)
	}
	return frameCodesOf(tb, "-f", "h264", "-i", path)
}

// frameCodesOf decodes the input ffmpeg's args name and reads each
// picture's number from its six bands.
func frameCodesOf(tb testing.TB, input ...string) []int {
	tb.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(testenv.RequireBinary(tb, "ffmpeg"), append(append([]string{"-v", "error"}, input...),
		"-vf", "scale=1:6:flags=area", "-pix_fmt", "gray", "-fps_mode", "passthrough", "-f", "rawvideo", "-")...)
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		tb.Fatalf("ffmpeg: %v: %s", err, stderr.String())
	}
	codes := make([]int, 0, len(raw)/6)
	for f := 0; f+6 <= len(raw); f += 6 {
		code := 0
		for k := range 6 {
			if raw[f+k] > 128 {
				code |= 1 << k
			}
		}
		codes = append(codes, code)
	}
	return codes
}
