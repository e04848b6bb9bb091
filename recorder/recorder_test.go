package recorder

import (
	"context"
	"math"
	"testing"
	"time"

	"podium/internal/testenv"
	"podium/sfu"
	"podium/storage"
	"podium/storage/s3/s3test"
)

func minioStore(t *testing.T) (*testenv.MinIO, storage.Store) {
	t.Helper()
	return s3test.Start(t, "recordings")
}

func newRecorder(t *testing.T, store storage.Store, spoolDir string) *Recorder {
	t.Helper()
	rec, err := New(Config{Store: store, SpoolDir: spoolDir, SpoolMaxBytes: 1 << 30, SegmentDuration: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rec.Close(ctx)
	})
	return rec
}

// checkContinuous asserts what a replay needs: segments numbered without
// holes from 0, each starting where the previous one ended, in a listing of
// the bucket.
func checkContinuous(t *testing.T, store storage.Store, tr ManifestTrack) {
	t.Helper()
	if len(tr.Segments) == 0 {
		t.Fatalf("track %s has no segments", tr.ID)
	}
	objs, err := store.List(context.Background(), "lessons/")
	if err != nil {
		t.Fatal(err)
	}
	inBucket := map[string]bool{}
	for _, o := range objs {
		inBucket[o.Key] = o.Size > 0
	}
	if !inBucket[tr.Init] {
		t.Fatalf("init %s not in bucket", tr.Init)
	}
	for i, s := range tr.Segments {
		if s.Seq != i {
			t.Fatalf("track %s: segment %d has seq %d", tr.ID, i, s.Seq)
		}
		if !inBucket[s.Key] {
			t.Fatalf("segment %s not in bucket", s.Key)
		}
		if i > 0 {
			prev := tr.Segments[i-1]
			if s.MediaStart < prev.MediaStart+prev.MediaDuration {
				t.Fatalf("track %s: segment %d starts at %d before previous ends at %d", tr.ID, i, s.MediaStart, prev.MediaStart+prev.MediaDuration)
			}
			if !s.Start.After(prev.Start) {
				t.Fatalf("track %s: wall-clock start not increasing at %d", tr.ID, i)
			}
		}
	}
}

func checkPlayable(t *testing.T, store storage.Store, tr ManifestTrack, codec string, w *rtpWriter, length time.Duration) {
	t.Helper()
	want := w.sentDuration()
	if want < length*8/10 {
		t.Fatalf("test publisher sent only %v of media in %v", want, length)
	}
	file := assemble(t, store, tr)
	p := probeFile(t, file)
	t.Logf("track %s: %d segments, ffprobe %+v", tr.ID, len(tr.Segments), p)
	if p.codec != codec {
		t.Fatalf("track %s: ffprobe codec %q, want %q", tr.ID, p.codec, codec)
	}
	if math.Abs(p.duration-want.Seconds()) > 1 {
		t.Fatalf("track %s: duration %.2fs, want %v ±1s (the media sent)", tr.ID, p.duration, want)
	}
	perSecond := 30.0
	if codec == "opus" {
		perSecond = 50
	}
	if min := 0.95 * perSecond * want.Seconds(); float64(p.frames) < min {
		t.Fatalf("track %s: %d frames decoded, want at least %.0f", tr.ID, p.frames, min)
	}
	if errs := decodeErrors(t, file); errs != "" {
		t.Fatalf("track %s does not decode cleanly: %s", tr.ID, errs)
	}
}

func TestRecordLessonToMinIO(t *testing.T) {
	t.Parallel()
	_, store := minioStore(t)
	rec := newRecorder(t, store, t.TempDir())
	f := startLesson(t, rec, "lesson-20s")

	const length = 20 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), length)
	defer cancel()
	_, camW, waitCam := f.publish(t, ctx, "cam", sfu.SourceCamera, codecH264)
	_, micW, waitMic := f.publish(t, ctx, "mic", sfu.SourceMicrophone, codecOpus)
	time.Sleep(length / 2)
	if err := f.room.Chat("t1", "page 42 please"); err != nil {
		t.Fatal(err)
	}
	// Segments reach the bucket while the lesson runs.
	waitManifest(t, store, "lesson-20s", 10*time.Second, func(m Manifest) bool {
		return !m.Complete && len(m.Tracks) == 2 && len(m.Tracks[0].Segments) > 0 && len(m.Tracks[1].Segments) > 0
	})
	waitCam()
	waitMic()
	f.room.End("lesson over")

	m := waitManifest(t, store, "lesson-20s", 60*time.Second, func(m Manifest) bool { return m.Complete })
	if m.EndedAt.IsZero() || m.Title != "Fractions" || m.Teacher != "Ms Teacher" {
		t.Fatalf("manifest header: %+v", m)
	}
	cam := manifestTrack(t, m, "teacher-camera")
	mic := manifestTrack(t, m, "teacher-microphone")
	if cam.Codec != "h264" || mic.Codec != "opus" || cam.Role != "teacher" {
		t.Fatalf("tracks: %+v %+v", cam, mic)
	}
	checkContinuous(t, store, cam)
	checkContinuous(t, store, mic)
	if n := len(cam.Segments); n < 4 || n > 6 {
		t.Fatalf("%d video segments for 20 s at 4 s each", n)
	}
	for _, s := range cam.Segments[:len(cam.Segments)-1] {
		if s.Duration < 4*time.Second || s.Duration > 5*time.Second+100*time.Millisecond {
			t.Fatalf("video segment %d lasts %v; want 4-5 s (cut on the first keyframe after 4 s)", s.Seq, s.Duration)
		}
	}
	checkPlayable(t, store, cam, "h264", camW, length)
	checkPlayable(t, store, mic, "opus", micW, length)

	var chat bool
	for _, e := range m.Events {
		chat = chat || (e.Type == "chat" && e.Text == "page 42 please")
	}
	if !chat {
		t.Fatalf("chat marker missing from events %+v", m.Events)
	}
	st, err := rec.Status("lesson-20s")
	if err != nil || st.State != "complete" || st.SegmentsPending != 0 {
		t.Fatalf("status = %+v, %v", st, err)
	}
}

func TestRecordingSurvivesMinIOOutage(t *testing.T) {
	t.Parallel()
	minio, store := minioStore(t)
	spoolDir := t.TempDir()
	rec := newRecorder(t, store, spoolDir)
	f := startLesson(t, rec, "outage")

	const length = 18 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), length)
	defer cancel()
	_, camW, waitCam := f.publish(t, ctx, "cam", sfu.SourceCamera, codecH264)
	_, micW, waitMic := f.publish(t, ctx, "mic", sfu.SourceMicrophone, codecOpus)

	time.Sleep(2 * time.Second)
	minio.Stop()
	// While storage is down, closed segments wait in the spool and the
	// failures show in the status.
	deadline := time.Now().Add(15 * time.Second)
	var st Status
	for time.Now().Before(deadline) {
		st, _ = rec.Status("outage")
		if st.SegmentsPending >= 2 && st.UploadErrors > 0 && st.BytesSpooled > 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st.SegmentsPending < 2 || st.UploadErrors == 0 || st.BytesSpooled == 0 {
		t.Fatalf("status during outage = %+v", st)
	}
	minio.Start()
	waitCam()
	waitMic()
	f.room.End("lesson over")

	m := waitManifest(t, store, "outage", 60*time.Second, func(m Manifest) bool { return m.Complete })
	for _, c := range []struct {
		id, codec string
		w         *rtpWriter
	}{{"teacher-camera", "h264", camW}, {"teacher-microphone", "opus", micW}} {
		tr := manifestTrack(t, m, c.id)
		checkContinuous(t, store, tr)
		checkPlayable(t, store, tr, c.codec, c.w, length)
	}
	st, _ = rec.Status("outage")
	if st.State != "complete" || st.SegmentsPending != 0 || st.BytesSpooled != 0 {
		t.Fatalf("status after recovery = %+v", st)
	}
}
