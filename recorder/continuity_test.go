package recorder

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"podium/internal/testmedia"
	"podium/sfu"
)

// publishSimulcast publishes the teacher camera as three VP8 simulcast
// layers; cancel(i) stops layer i alone, as a browser does when bandwidth
// drops.
func publishSimulcast(t *testing.T, ctx context.Context, f *lessonFixture, id string) (stop [3]context.CancelFunc, wait func()) {
	t.Helper()
	tr := sfu.NewTrack(sfu.TrackInfo{ID: id, ParticipantID: "t1", Kind: sfu.KindVideo, Source: sfu.SourceCamera,
		Codec: sfu.Codec{MimeType: "video/VP8", ClockRate: 90000}, Layers: []string{"q", "h", "f"}}, nil)
	if err := f.room.Publish(tr); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 3 {
		lctx, cancel := context.WithCancel(ctx)
		stop[i] = cancel
		w := newRTPWriter(tr, i, codecVP8)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := testmedia.PlayIVF(lctx, f.files.VP8[i], w, true); err != nil {
				t.Errorf("play layer %d: %v", i, err)
			}
		}()
	}
	return stop, func() {
		for _, c := range stop {
			c()
		}
		wg.Wait()
	}
}

// A publisher losing its top layer, then leaving and coming back with new
// SSRCs, still yields one continuous, playable recorded track with the gap
// marked.
func TestLayerSwitchAndReconnectStayContinuous(t *testing.T) {
	t.Parallel()
	_, store := minioStore(t)
	rec := newRecorder(t, store, t.TempDir())
	f := startLesson(t, rec, "reconnect")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	stop, wait := publishSimulcast(t, ctx, f, "cam-a")
	time.Sleep(5 * time.Second)
	stop[2]() // the 720p layer goes away; the 360p layer takes over
	time.Sleep(4 * time.Second)
	wait()
	f.room.Unpublish("cam-a")
	time.Sleep(2 * time.Second)
	_, wait = publishSimulcast(t, ctx, f, "cam-b")
	time.Sleep(4 * time.Second)
	wait()
	f.room.End("lesson over")

	m := waitManifest(t, store, "reconnect", 60*time.Second, func(m Manifest) bool { return m.Complete })
	if len(m.Tracks) != 1 {
		t.Fatalf("want one recorded camera across the reconnect, got %+v", m.Tracks)
	}
	cam := manifestTrack(t, m, "teacher-camera")
	if cam.Codec != "vp8" {
		t.Fatalf("codec %q", cam.Codec)
	}
	checkContinuous(t, store, cam)
	var left bool
	for _, g := range cam.Gaps {
		d := g.End.Sub(g.Start)
		if g.Reason == "publisher left" && d > 1500*time.Millisecond && d < 4*time.Second {
			left = true
		}
	}
	if !left {
		t.Fatalf("no ~2 s 'publisher left' gap in %+v", cam.Gaps)
	}
	file := assemble(t, store, cam)
	p := probeFile(t, file)
	t.Logf("recorded %d segments, gaps %+v, ffprobe %+v", len(cam.Segments), cam.Gaps, p)
	if p.codec != "vp8" {
		t.Fatalf("ffprobe codec %q", p.codec)
	}
	// 13 s of media plus the 2 s gap, held on the last frame.
	if p.duration < 13.5 || p.duration > 17 {
		t.Fatalf("duration %.2fs, want about 15 s", p.duration)
	}
	// Up to a second is spent waiting for a keyframe at the switch and at
	// the reconnect.
	if p.frames < 290 {
		t.Fatalf("%d frames decoded", p.frames)
	}
	if errs := decodeErrors(t, file); errs != "" && !strings.Contains(errs, "frame size changed") {
		t.Fatalf("does not decode cleanly: %s", errs)
	}
	width := frameWidths(t, file)
	if !strings.Contains(width, "1280") || !strings.Contains(width, "640") {
		t.Fatalf("want the 1280 layer first and the 640 layer after the switch, got widths %s", width)
	}
}
