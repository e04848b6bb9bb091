package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"podium/clients/goclient"
	"podium/internal/testenv"
	"podium/internal/testmedia"
	"podium/recorder"
	"podium/sfu"
	"podium/storage"
	"podium/storage/s3"
)

// recSentCounter counts the media time a pion track was given.
type recSentCounter struct {
	mu   sync.Mutex
	w    testmedia.SampleWriter
	sent []recSentSample
}

type recSentSample struct {
	at  time.Time
	dur time.Duration
}

func (c *recSentCounter) WriteSample(s media.Sample) error {
	c.mu.Lock()
	c.sent = append(c.sent, recSentSample{time.Now(), s.Duration})
	c.mu.Unlock()
	return c.w.WriteSample(s)
}

// since returns the media time written from the wall-clock time from on.
func (c *recSentCounter) since(from time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var d time.Duration
	for _, s := range c.sent {
		if !s.at.Before(from) {
			d += s.dur
		}
	}
	return d
}

// recTeacher joins with a pion client and publishes H.264 camera and Opus
// microphone from the test media until stop is called.
func recTeacher(t *testing.T, ctx context.Context, url, token string, files testmedia.Files) (stop func()) {
	stop, _ = recTeacherCounted(t, ctx, url, token, files)
	return stop
}

func recTeacherCounted(t *testing.T, ctx context.Context, url, token string, files testmedia.Files) (stop func(), sent map[string]*recSentCounter) {
	t.Helper()
	c, err := goclient.Dial(ctx, url, token, goclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Join(ctx, false); err != nil {
		t.Fatal(err)
	}
	cam, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, "cam", "teacher")
	if err != nil {
		t.Fatal(err)
	}
	mic, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "teacher")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, goclient.LocalTrack{Track: cam, Source: string(sfu.SourceCamera), Name: "camera"},
		goclient.LocalTrack{Track: mic, Source: string(sfu.SourceMicrophone), Name: "microphone"}); err != nil {
		t.Fatal(err)
	}
	playCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	sent = map[string]*recSentCounter{"teacher-camera": {w: cam}, "teacher-microphone": {w: mic}}
	wg.Go(func() { _ = testmedia.PlayH264(playCtx, files.H264, testmedia.FPS, sent["teacher-camera"], true) })
	wg.Go(func() { _ = testmedia.PlayOgg(playCtx, files.Opus, sent["teacher-microphone"], true) })
	return func() { cancel(); wg.Wait(); c.Close() }, sent
}

func recEndLesson(t *testing.T, ctx context.Context, url, token string) {
	t.Helper()
	end, err := goclient.Dial(ctx, url, token, goclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer end.Close()
	if _, err := end.Join(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := end.EndLesson(ctx); err != nil {
		t.Fatal(err)
	}
}

func recWaitComplete(t *testing.T, ctx context.Context, store storage.Store, lesson string) recorder.Manifest {
	t.Helper()
	var m recorder.Manifest
	deadline := time.Now().Add(60 * time.Second)
	for {
		if rc, _, err := store.Get(ctx, storage.ManifestKey(lesson)); err == nil {
			_ = json.NewDecoder(rc).Decode(&m)
			rc.Close()
			if m.Complete {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("manifest of %s never complete: %+v", lesson, m)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// probeTrack assembles a recorded track from the bucket and returns
// ffprobe's codec, frame count and duration, failing when ffmpeg cannot
// decode it cleanly.
func recProbeTrack(t *testing.T, ctx context.Context, store storage.Store, tr recorder.ManifestTrack) (codec string, frames int, seconds float64) {
	t.Helper()
	var buf bytes.Buffer
	for _, k := range append([]string{tr.Init}, recSegKeys(tr)...) {
		rc, _, err := store.Get(ctx, k)
		if err != nil {
			t.Fatalf("get %s: %v", k, err)
		}
		_, _ = io.Copy(&buf, rc)
		rc.Close()
	}
	file := filepath.Join(t.TempDir(), tr.ID+".mp4")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ffprobe := testenv.RequireBinary(t, "ffprobe")
	out, err := exec.Command(ffprobe, "-v", "error", "-count_frames", "-show_entries", "stream=codec_name,nb_read_frames:format=duration", "-of", "csv=p=0", file).CombinedOutput()
	f := strings.FieldsFunc(string(out), func(r rune) bool { return r == ',' || r == '\n' || r == ' ' })
	if err != nil || len(f) != 3 {
		t.Fatalf("ffprobe %s: %v\n%s", tr.ID, err, out)
	}
	frames, _ = strconv.Atoi(f[1])
	seconds, _ = strconv.ParseFloat(f[2], 64)
	ffmpeg := testenv.RequireBinary(t, "ffmpeg")
	if out, err := exec.Command(ffmpeg, "-v", "error", "-i", file, "-f", "null", "-").CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("track %s does not decode cleanly: %v %s", tr.ID, err, out)
	}
	return f[0], frames, seconds
}

func recRecordingStatus(t *testing.T, url, token, lesson string) (recorder.Status, int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/api/lessons/"+lesson+"/recording", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return recorder.Status{}, 0
	}
	defer res.Body.Close()
	var st recorder.Status
	_ = json.NewDecoder(res.Body).Decode(&st)
	return st, res.StatusCode
}

// TestRecorderE2EPionTeacherAndSIGKILL: a pion teacher publishes H.264 and
// Opus through a real podium into a real MinIO; podium is killed with
// SIGKILL mid-lesson and restarted on the same data dir; the teacher comes
// back and ends the lesson. The recording in the bucket is complete,
// plays, and lost at most the open segment of each track.
func TestRecorderE2EPionTeacherAndSIGKILL(t *testing.T) {
	minio := testenv.StartMinIO(t)
	files := testmedia.ForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	p := testenv.StartPodium(t, "--storage", "s3", "--s3-endpoint", minio.Endpoint, "--s3-bucket", "recordings",
		"--s3-access-key", minio.AccessKey, "--s3-secret-key", minio.SecretKey,
		"--record-segment-duration", "2s")
	token := func(role, name string) string { return p.Token("rec-e2e", role, name) }
	admin := token("admin", "ops")
	stopTeacher := recTeacher(t, ctx, p.URL, token("teacher", "Ms Teacher"), files)
	if _, code := recRecordingStatus(t, p.URL, token("teacher", "Ms Teacher"), "rec-e2e"); code != http.StatusForbidden {
		t.Fatalf("teacher reading the recording API got %d, want 403", code)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, code := recRecordingStatus(t, p.URL, admin, "rec-e2e")
		if code == http.StatusOK && st.State == "recording" && len(st.Tracks) == 2 && st.Tracks[0].Segments >= 3 && st.Tracks[1].Segments >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("recording status %d %+v", code, st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	res, err := http.Get(p.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, name := range []string{"podium_recorder_uploads_pending", "podium_recorder_spool_bytes", "podium_recorder_upload_errors_total", "podium_recorder_recording_lessons 1"} {
		if !strings.Contains(string(metrics), name) {
			t.Fatalf("/metrics lacks %s", name)
		}
	}

	p.Kill()
	killedAt := time.Now()
	stopTeacher()

	// The node comes back on the same data dir (and spool) at once; the
	// teacher's page, on its reconnect backoff, a few seconds later. The
	// downtime lasts until the teacher's media is back, not until the node
	// is: a restarted node offers its lessons again within a second.
	p.Restart()
	time.Sleep(3 * time.Second)
	stopTeacher = recTeacher(t, ctx, p.URL, token("teacher", "Ms Teacher"), files)
	// Meanwhile another lesson runs 20 s undisturbed on the new process.
	token20 := func(role, name string) string { return p.Token("rec-e2e-20s", role, name) }
	stop20, sent20 := recTeacherCounted(t, ctx, p.URL, token20("teacher", "Mr Second"), files)
	time.Sleep(6 * time.Second)
	recEndLesson(t, ctx, p.URL, token("teacher", "Ms Teacher (tablet)"))
	stopTeacher()
	time.Sleep(14 * time.Second)
	stop20()
	recEndLesson(t, ctx, p.URL, token20("teacher", "Mr Second (tablet)"))

	store, err := s3.New(ctx, s3.Config{Endpoint: minio.Endpoint, Bucket: "recordings", AccessKey: minio.AccessKey, SecretKey: minio.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"teacher-camera": "h264", "teacher-microphone": "opus"}

	m := recWaitComplete(t, ctx, store, "rec-e2e")
	if len(m.Tracks) != 2 {
		t.Fatalf("tracks %+v", m.Tracks)
	}
	// The downtime is one interruption, cut from the recording clock (on
	// which every segment start is) but for a short pause.
	if len(m.Interruptions) != 1 || m.Interruptions[0].Cut < 3*time.Second-recorder.ResumePause {
		t.Fatalf("interruptions %+v, want one that cuts the 3 s until the teacher came back", m.Interruptions)
	}
	resumedAt := m.Interruptions[0].At
	for _, tr := range m.Tracks {
		if want[tr.ID] != tr.Codec {
			t.Fatalf("track %s codec %s", tr.ID, tr.Codec)
		}
		var lastBefore recorder.ManifestSegment
		for i, s := range tr.Segments {
			if s.Seq != i {
				t.Fatalf("track %s: segment %d has seq %d (a closed segment was lost)", tr.ID, i, s.Seq)
			}
			if i > 0 && s.MediaStart < tr.Segments[i-1].MediaStart+tr.Segments[i-1].MediaDuration {
				t.Fatalf("track %s: media time goes back at segment %d", tr.ID, i)
			}
			if s.Start.Before(resumedAt) {
				lastBefore = s
			}
		}
		// Segments are 2 s, cut on a keyframe (every second): what was lost
		// at the kill is at most the open segment.
		if lost := killedAt.Sub(lastBefore.Start.Add(lastBefore.Duration)); lost < 0 || lost > 4*time.Second {
			t.Fatalf("track %s: %v before the kill lost", tr.ID, lost)
		}
		var starts []string
		for _, s := range tr.Segments {
			starts = append(starts, s.Start.Sub(resumedAt).Round(100*time.Millisecond).String())
		}
		t.Logf("killed lesson, track %s: segment starts relative to the interruption (recording clock) %v, gaps %+v", tr.ID, starts, tr.Gaps)
		codec, frames, secs := recProbeTrack(t, ctx, store, tr)
		t.Logf("killed lesson, track %s: %d segments, %d gaps, ffprobe %s %d frames %.2fs", tr.ID, len(tr.Segments), len(tr.Gaps), codec, frames, secs)
		if codec != want[tr.ID] {
			t.Fatalf("track %s: ffprobe codec %s", tr.ID, codec)
		}
	}

	m = recWaitComplete(t, ctx, store, "rec-e2e-20s")
	if len(m.Tracks) != 2 {
		t.Fatalf("tracks %+v", m.Tracks)
	}
	for _, tr := range m.Tracks {
		codec, frames, secs := recProbeTrack(t, ctx, store, tr)
		sent := sent20[tr.ID].since(time.Time{})
		t.Logf("20 s lesson, track %s: %d segments, ffprobe %s %d frames %.2fs, sent %v", tr.ID, len(tr.Segments), codec, frames, secs, sent)
		if codec != want[tr.ID] {
			t.Fatalf("track %s: ffprobe codec %s", tr.ID, codec)
		}
		if sent < 17*time.Second {
			t.Fatalf("the pion teacher sent only %v in 20 s", sent)
		}
		// What the teacher sent from the first recorded sample on (the
		// first keyframe the server got, up to a second after the pion
		// track started sending; loopback takes well under 50 ms).
		want := sent20[tr.ID].since(tr.Segments[0].Start.Add(-50 * time.Millisecond)).Seconds()
		if secs < want-1 || secs > want+1 {
			t.Fatalf("track %s lasts %.2fs, want %.2fs ±1 s", tr.ID, secs, want)
		}
	}
}

func recSegKeys(tr recorder.ManifestTrack) []string {
	var out []string
	for _, s := range tr.Segments {
		out = append(out, s.Key)
	}
	return out
}
