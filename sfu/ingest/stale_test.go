package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"podium/internal/rtspcam"
	"podium/internal/testenv"
	"podium/recorder"
	"podium/sfu"
	"podium/storage"
	"podium/storage/s3/s3test"
)

// recordedVideo downloads a lesson's recorded track (init and segments, as
// a replay reads them) into one file.
func recordedVideo(t *testing.T, store storage.Store, lesson, track string) string {
	t.Helper()
	ctx := context.Background()
	var m recorder.Manifest
	testenv.WaitFor(t, 30*time.Second, "the recording to complete", func() bool {
		rc, _, err := store.Get(ctx, storage.ManifestKey(lesson))
		if err != nil {
			return false
		}
		defer rc.Close()
		return json.NewDecoder(rc).Decode(&m) == nil && m.Complete
	})
	var buf bytes.Buffer
	for _, tr := range m.Tracks {
		if tr.ID != track {
			continue
		}
		keys := []string{tr.Init}
		for _, s := range tr.Segments {
			keys = append(keys, s.Key)
		}
		for _, k := range keys {
			rc, _, err := store.Get(ctx, k)
			if err != nil {
				t.Fatalf("get %s: %v", k, err)
			}
			_, err = io.Copy(&buf, rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if buf.Len() == 0 {
		t.Fatalf("no recorded track %s in %+v", track, m.Tracks)
	}
	p := filepath.Join(t.TempDir(), track+".mp4")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A camera cannot be asked for a keyframe. Subscribers asking for one —
// a classroom joining between the camera's keyframes, the recorder — must
// not make the source send an old picture again into the shared track:
// every classroom would see a picture seconds old, then smeared video, and
// the recording would carry it out of its place. The late joiner starts at
// the camera's next real keyframe; the recording's decode times stay
// monotonic, one frame every 40 ms, no picture twice. The camera burns its
// picture number into each picture, so what a classroom and the replay
// show is read back and must count up, never back.
func TestKeyframeRequestsNeverInjectStaleFrames(t *testing.T) {
	const gop = 50 // 2 s at 25 fps
	cam := rtspcam.Start(t, rtspcam.Options{GOP: gop, FrameCode: true})
	m, rooms := newTestManager(t)
	_, store := s3test.Start(t, "recordings")
	rec, err := recorder.New(recorder.Config{Store: store, SpoolDir: t.TempDir(), SegmentDuration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = rec.Close(ctx)
	})
	rec.Attach(rooms, true)
	info, err := m.Add("stale", SourceConfig{URL: cam.URL("", ""), Transport: TransportTCP, Name: "Ceiling"})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, m, "stale", info.ID, StateLive)
	video := mustTrack(t, m, "stale", info.ID, sfu.KindVideo)
	live := &videoSink{checkStale: true}
	video.AddSink("classroom-a", live)
	testenv.WaitFor(t, 25*time.Second, "a first keyframe", func() bool { _, idrs, _, _ := live.snapshot(); return idrs >= 1 })

	// Mid-GOP, a classroom joins and asks for a keyframe, as a down-track
	// does, again and again while it waits.
	time.Sleep(700 * time.Millisecond)
	late := &videoSink{checkStale: true}
	video.AddSink("classroom-b", late)
	joined := time.Now()
	var framesAtJoin int
	live.mu.Lock()
	framesAtJoin, joinTS := live.frames, live.lastTS
	live.mu.Unlock()
	for time.Since(joined) < 5*time.Second {
		video.RequestKeyframe(0)
		time.Sleep(600 * time.Millisecond)
	}
	video.RemoveSink("classroom-b")
	video.RemoveSink("classroom-a")

	frames, idrs, annexB, violations := live.snapshot()
	if len(violations) > 0 {
		t.Fatalf("classroom A got stale or broken pictures: %v", violations[:min(5, len(violations))])
	}
	// One keyframe per GOP of the camera, none of the server's making.
	if max := frames/gop + 1; idrs > max {
		t.Errorf("classroom A got %d keyframes in %d pictures; the camera sends one every %d", idrs, frames, gop)
	}
	if got := decodedFrames(t, annexB); got < frames-1 {
		t.Errorf("classroom A decoded %d of %d pictures", got, frames)
	}
	checkCameraClock(t, "classroom A", frameCodes(t, annexB))
	lf, lidrs, lannexB, lviolations := late.snapshot()
	if len(lviolations) > 0 {
		t.Fatalf("classroom B got stale or broken pictures: %v", lviolations[:min(5, len(lviolations))])
	}
	late.mu.Lock()
	firstTS := late.firstTS
	late.mu.Unlock()
	wait := time.Duration(int32(firstTS-joinTS)) * time.Second / 90000
	t.Logf("classroom A: %d pictures, %d keyframes; classroom B joined after picture %d and started %v later at a real keyframe (%d pictures, %d keyframes)",
		frames, idrs, framesAtJoin, wait, lf, lidrs)
	if lidrs == 0 || wait <= 0 || wait > 2*time.Second+200*time.Millisecond {
		t.Errorf("classroom B started %v after it joined; want the camera's next keyframe (within its 2 s GOP)", wait)
	}
	if got := decodedFrames(t, lannexB); got < lf-1 {
		t.Errorf("classroom B decoded %d of %d pictures", got, lf)
	}

	// The recording: what a replay decodes.
	room, _ := rooms.Room("stale")
	room.End("lesson over")
	path := recordedVideo(t, store, "stale", storage.SafeName(info.ID+"-camera"))
	ffprobe := testenv.RequireBinary(t, "ffprobe")
	out, err := exec.Command(ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=dts_time,duration_time,flags",
		"-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var prev float64
	n, keys := 0, 0
	for i, line := range strings.Fields(string(out)) {
		f := strings.Split(line, ",")
		dts, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			t.Fatalf("packet %d: %q", i, line)
		}
		dur, _ := strconv.ParseFloat(f[1], 64)
		if n > 0 && dts <= prev {
			t.Errorf("recording: decode time goes back at packet %d: %.4f after %.4f", i, dts, prev)
		}
		if dur < 0.03 && i < len(strings.Fields(string(out)))-1 {
			t.Errorf("recording: packet %d at %.4f lasts %.4f s; the camera sends one picture every 40 ms", i, dts, dur)
		}
		if strings.Contains(f[2], "K") {
			keys++
		}
		prev = dts
		n++
	}
	t.Logf("recording: %d pictures, %d keyframes", n, keys)
	if n < 100 || keys > n/gop+2 {
		t.Errorf("recording: %d pictures with %d keyframes; the camera sent one every %d", n, keys, gop)
	}
	ffmpeg := testenv.RequireBinary(t, "ffmpeg")
	if errs, err := exec.Command(ffmpeg, "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput(); err != nil || len(bytes.TrimSpace(errs)) > 0 {
		t.Errorf("recording does not decode cleanly: %v %s", err, errs)
	}
	checkCameraClock(t, "recording", frameCodesOf(t, "-i", path))
}

// checkCameraClock reads the camera's burnt-in picture numbers (modulo
// 64) in the order they were shown: each must be the next one, or a few
// ahead (a picture lost); one shown twice or an older one is a stale
// picture.
func checkCameraClock(t *testing.T, who string, codes []int) {
	t.Helper()
	if len(codes) < 50 {
		t.Fatalf("%s: read the camera's clock on only %d pictures", who, len(codes))
	}
	skipped := 0
	for i := 1; i < len(codes); i++ {
		step := (codes[i] - codes[i-1] + 64) % 64
		switch {
		case step == 1:
		case step > 1 && step <= 8:
			skipped += step - 1
		default:
			t.Fatalf("%s: picture %d shows the camera's picture %d after %d: the clock went back or stood still (codes around it %v)",
				who, i, codes[i], codes[i-1], codes[max(0, i-5):min(len(codes), i+5)])
		}
	}
	t.Logf("%s: the camera's burnt-in clock counts up over %d pictures (%d skipped)", who, len(codes), skipped)
}
