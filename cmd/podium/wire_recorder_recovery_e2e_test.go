package main

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"podium/internal/testenv"
	"podium/internal/testmedia"
	"podium/recorder"
	"podium/storage"
	"podium/storage/s3"
	"podium/transcode"
	"podium/transcode/transcodetest"
	"podium/vod"
)

// The recovery tests run real `podium serve` processes on a real MinIO,
// publish with a real pion teacher, and check the replay transcode makes
// (ffprobe on its MP4): every lesson becomes a replay as long as what was
// recorded, whatever happened to the node recording it.

// recoveryNode starts a node recording into minio with 2 s segments and a
// fast, small transcode.
func recoveryNode(t *testing.T, minio *testenv.MinIO, extra ...string) *testenv.Podium {
	t.Helper()
	return testenv.StartPodium(t, append(recoveryArgs(minio), extra...)...)
}

func recoveryArgs(minio *testenv.MinIO) []string {
	return []string{"--storage", "s3", "--s3-endpoint", minio.Endpoint, "--s3-bucket", "recordings",
		"--s3-access-key", minio.AccessKey, "--s3-secret-key", minio.SecretKey,
		"--record-segment-duration", "2s", "--vod-poll", "200ms", "--vod-ladder", "360:500"}
}

func recoveryStore(t *testing.T, ctx context.Context, minio *testenv.MinIO) storage.Store {
	t.Helper()
	store, err := s3.New(ctx, s3.Config{Endpoint: minio.Endpoint, Bucket: "recordings", AccessKey: minio.AccessKey, SecretKey: minio.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// recoveryManifest reads a lesson's manifest from storage (zero if none).
func recoveryManifest(ctx context.Context, store storage.Store, lesson string) recorder.Manifest {
	var m recorder.Manifest
	if rc, _, err := store.Get(ctx, storage.ManifestKey(lesson)); err == nil {
		_ = json.NewDecoder(rc).Decode(&m)
		rc.Close()
	}
	return m
}

// recoveryCatalog is the lesson as the catalog shows it to token.
func recoveryCatalog(url, token, lesson string) vod.Lesson {
	var l vod.Lesson
	req, _ := http.NewRequest(http.MethodGet, url+"/api/vod/lessons/"+lesson, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return l
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusOK {
		_ = json.NewDecoder(res.Body).Decode(&l)
	}
	return l
}

// recoveryJobs lists the transcode jobs of a lesson (a server admin token).
func recoveryJobs(t *testing.T, url, token, lesson string) []transcode.Job {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/api/vod/jobs", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("jobs: %v", err)
	}
	defer res.Body.Close()
	var body struct{ Jobs []transcode.Job }
	if res.StatusCode != http.StatusOK || json.NewDecoder(res.Body).Decode(&body) != nil {
		t.Fatalf("jobs: %d", res.StatusCode)
	}
	var out []transcode.Job
	for _, j := range body.Jobs {
		if j.Lesson == lesson {
			out = append(out, j)
		}
	}
	return out
}

// recoveryWaitReady waits for the catalog to show the lesson ready, logging
// each status it passes through.
func recoveryWaitReady(t *testing.T, p *testenv.Podium, lesson string) {
	t.Helper()
	viewer, admin := p.Token(lesson, "viewer", "Student"), p.Token("*", "admin", "ops")
	from := time.Now()
	last := ""
	testenv.WaitFor(t, 3*time.Minute, "lesson "+lesson+" ready in the catalog", func() bool {
		l := recoveryCatalog(p.URL, viewer, lesson)
		if l.Status != last {
			t.Logf("%s: catalog %q %s after %.1fs; jobs %+v", lesson, l.Status, l.Error, time.Since(from).Seconds(), recoveryJobs(t, p.URL, admin, lesson))
			last = l.Status
		}
		if l.Status == vod.StatusFailed {
			t.Fatalf("lesson %s failed: %s", lesson, l.Error)
		}
		return l.Status == vod.StatusReady
	})
}

// replayDurations downloads a ready lesson's MP4 and returns where its
// video and audio streams end, as ffprobe reads the packets.
func replayDurations(t *testing.T, ctx context.Context, store storage.Store, lesson string) (video, audio float64) {
	t.Helper()
	var a vod.Assets
	rc, _, err := store.Get(ctx, vod.LessonBase(lesson)+vod.AssetsFile)
	if err != nil {
		t.Fatalf("assets of %s: %v", lesson, err)
	}
	err = json.NewDecoder(rc).Decode(&a)
	rc.Close()
	if err != nil || a.Download == "" {
		t.Fatalf("assets of %s: %v %+v", lesson, err, a)
	}
	rc, _, err = store.Get(ctx, vod.LessonBase(lesson)+a.Download)
	if err != nil {
		t.Fatalf("download of %s: %v", lesson, err)
	}
	path := filepath.Join(t.TempDir(), lesson+".mp4")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(f, rc)
	rc.Close()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	return transcodetest.StreamEnd(t, path, "v:0"), transcodetest.StreamEnd(t, path, "a:0")
}

// recordedSpan is the stretch of the lesson's recording clock that holds
// media: from the first sample of any track to the end of the last.
func recordedSpan(m recorder.Manifest) (first, last time.Time) {
	for _, tr := range m.Tracks {
		if len(tr.Segments) == 0 {
			continue
		}
		s, e := tr.Segments[0], tr.Segments[len(tr.Segments)-1]
		if first.IsZero() || s.Start.Before(first) {
			first = s.Start
		}
		if end := e.Start.Add(e.Duration); end.After(last) {
			last = end
		}
	}
	return first, last
}

// framesBetween counts the samples a pion track was given in [from, until).
func (c *recSentCounter) framesBetween(from, until time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.sent {
		if !s.at.Before(from) && s.at.Before(until) {
			n++
		}
	}
	return n
}

// cameraFrames counts the frames of the teacher's recorded camera
// (ffprobe) and those the pion teacher sent from the first recorded one
// (loopback takes well under 50 ms) until until.
func cameraFrames(t *testing.T, ctx context.Context, store storage.Store, m recorder.Manifest, sent *recSentCounter, until time.Time) (cam recorder.ManifestTrack, recorded, sentFrames int) {
	t.Helper()
	for _, tr := range m.Tracks {
		if tr.ID == "teacher-camera" {
			cam = tr
		}
	}
	if len(cam.Segments) == 0 {
		t.Fatalf("no camera recorded: %+v", m.Tracks)
	}
	_, recorded, _ = recProbeTrack(t, ctx, store, cam)
	return cam, recorded, sent.framesBetween(cam.Segments[0].Start.Add(-50*time.Millisecond), until)
}

// recWaitSegments waits until the node records the lesson's two tracks
// with at least n segments each.
func recWaitSegments(t *testing.T, p *testenv.Podium, lesson string, n int) {
	t.Helper()
	admin := p.Token(lesson, "admin", "ops")
	testenv.WaitFor(t, 60*time.Second, lesson+" recording "+strconv.Itoa(n)+" segments per track", func() bool {
		st, code := recRecordingStatus(t, p.URL, admin, lesson)
		return code == http.StatusOK && st.State == "recording" && len(st.Tracks) == 2 &&
			st.Tracks[0].Segments >= n && st.Tracks[1].Segments >= n
	})
}

// checkReplay asserts what a student sees of a recovered lesson: a replay
// as long as the recorded media (not the downtime), audio as long as
// video.
func checkReplay(t *testing.T, ctx context.Context, store storage.Store, lesson string) (m recorder.Manifest, video float64) {
	t.Helper()
	m = recoveryManifest(ctx, store, lesson)
	if !m.Complete || m.State != recorder.StateComplete || len(m.Tracks) != 2 {
		t.Fatalf("manifest of %s: complete %v state %q, %d tracks", lesson, m.Complete, m.State, len(m.Tracks))
	}
	for _, tr := range m.Tracks {
		for i, s := range tr.Segments {
			if s.Seq != i {
				t.Fatalf("%s track %s: segment %d has seq %d (a closed segment was lost)", lesson, tr.ID, i, s.Seq)
			}
		}
	}
	first, last := recordedSpan(m)
	span := last.Sub(first).Seconds()
	video, audio := replayDurations(t, ctx, store, lesson)
	t.Logf("%s: replay video %.2fs, audio %.2fs; recorded media %.2fs; interruptions %+v", lesson, video, audio, span, m.Interruptions)
	if math.Abs(video-audio) > 0.1 {
		t.Fatalf("%s: replay video %.2fs and audio %.2fs differ by more than 0.1 s", lesson, video, audio)
	}
	if math.Abs(video-span) > 2 {
		t.Fatalf("%s: replay lasts %.2fs, the recorded media %.2fs", lesson, video, span)
	}
	return m, video
}

// TestRecoveryKill9BecomesReplay: podium is killed (SIGKILL) mid-lesson
// and started again on the same data dir; nobody comes back. The node
// closes the recording at its last media once the lesson's grace is over,
// and the replay becomes ready by itself, as long as what was recorded
// before the kill.
func TestRecoveryKill9BecomesReplay(t *testing.T) {
	testenv.RequireBinary(t, "ffmpeg")
	minio := testenv.StartMinIO(t)
	files := testmedia.ForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	store := recoveryStore(t, ctx, minio)
	p := recoveryNode(t, minio, "--lesson-empty-grace", "3s")
	const lesson = "kill9"

	stop, sent := recTeacherCounted(t, ctx, p.URL, p.Token(lesson, "teacher", "Ms Teacher"), files)
	recWaitSegments(t, p, lesson, 4)
	// Half a segment later: the open segment is what a crash loses.
	time.Sleep(time.Second)
	p.Kill()
	killedAt := time.Now()
	stop()
	if m := recoveryManifest(ctx, store, lesson); m.Complete || m.State != recorder.StateRecording {
		t.Fatalf("manifest after the kill: complete %v state %q", m.Complete, m.State)
	}

	restartedAt := time.Now()
	p.Restart()
	recoveryWaitReady(t, p, lesson)
	readyAfter := time.Since(restartedAt)
	m, video := checkReplay(t, ctx, store, lesson)
	if len(m.Interruptions) != 1 || m.Interruptions[0].Cut != 0 {
		t.Fatalf("interruptions %+v, want the one at the end", m.Interruptions)
	}
	first, last := recordedSpan(m)
	if !m.EndedAt.Equal(last) {
		t.Fatalf("ended at %v, the last media at %v", m.EndedAt, last)
	}
	if max := killedAt.Sub(first).Seconds() + 0.5; video > max {
		t.Fatalf("replay lasts %.2fs, more than the %.2fs from its first frame to the kill", video, max)
	}
	cam, frames, sentFrames := cameraFrames(t, ctx, store, m, sent["teacher-camera"], killedAt)
	camEnd := cam.Segments[len(cam.Segments)-1]
	t.Logf("kill -9: %d camera frames sent from the first recorded one to the kill, %d recorded: %d frames (%.2fs) lost; the camera's recording ends %.2fs before the kill; restart to ready %.1fs (lesson grace 3 s; load %s)",
		sentFrames, frames, sentFrames-frames, float64(sentFrames-frames)/testmedia.FPS, killedAt.Sub(camEnd.Start.Add(camEnd.Duration)).Seconds(),
		readyAfter.Seconds(), loadAverage())
}

// TestRecoveryStorageDownAtSIGTERM: MinIO stops mid-lesson, then podium gets
// SIGTERM: every segment stays in the spool and the node says so; MinIO and
// podium come back, the spool is uploaded, the recording is closed and the
// replay is ready and complete.
func TestRecoveryStorageDownAtSIGTERM(t *testing.T) {
	testenv.RequireBinary(t, "ffmpeg")
	minio := testenv.StartMinIO(t)
	files := testmedia.ForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	store := recoveryStore(t, ctx, minio)
	p := recoveryNode(t, minio, "--lesson-empty-grace", "3s", "--drain-timeout", "3s")
	const lesson = "outage"
	admin := p.Token(lesson, "admin", "ops")

	stop, sent := recTeacherCounted(t, ctx, p.URL, p.Token(lesson, "teacher", "Ms Teacher"), files)
	recWaitSegments(t, p, lesson, 2)
	minio.Stop()
	testenv.WaitFor(t, 60*time.Second, "segments waiting in the spool", func() bool {
		st, code := recRecordingStatus(t, p.URL, admin, lesson)
		return code == http.StatusOK && st.SegmentsPending >= 4 && st.UploadErrors > 0
	})
	stoppedAt := time.Now()
	if err := p.Stop(); err != nil {
		t.Logf("podium exit: %v", err)
	}
	stop()
	spooled := 0
	filepath.WalkDir(filepath.Join(p.DataDir, "spool"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(path) == ".m4s" {
			spooled++
		}
		return nil
	})
	if spooled == 0 || !strings.Contains(p.Log(), "recording left in the spool for the next start") {
		t.Fatalf("%d segments spooled at exit; the log must say what is left", spooled)
	}
	t.Logf("SIGTERM with storage down: %d segments left in the spool", spooled)

	minio.Start()
	restartedAt := time.Now()
	p.Restart()
	recoveryWaitReady(t, p, lesson)
	readyAfter := time.Since(restartedAt)
	m, _ := checkReplay(t, ctx, store, lesson)
	// Nothing was lost: the open segments were spooled at SIGTERM, so the
	// camera holds what the teacher sent until then (the last frames in
	// flight aside).
	_, frames, sentFrames := cameraFrames(t, ctx, store, m, sent["teacher-camera"], stoppedAt)
	t.Logf("storage down at SIGTERM: %d camera frames sent until SIGTERM, %d recorded; restart to ready %.1fs (load %s)",
		sentFrames, frames, readyAfter.Seconds(), loadAverage())
	if lost := sentFrames - frames; lost > testmedia.FPS {
		t.Fatalf("%d camera frames lost though the node was stopped gracefully", lost)
	}
}

// TestRecoveryGracefulRestartNoTranscodeOfRunningLessons: two nodes share
// MinIO and PostgreSQL, each recording a lesson. Node A is stopped
// (SIGTERM), stays down for a while and comes back; its teacher rejoins
// and the lesson goes on. Neither lesson is transcoded while it runs (B's
// is not touched by A at all), and A's replay skips the downtime.
func TestRecoveryGracefulRestartNoTranscodeOfRunningLessons(t *testing.T) {
	testenv.RequireBinary(t, "ffmpeg")
	dsn := testenv.StartPostgres(t)
	minio := testenv.StartMinIO(t)
	files := testmedia.ForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	store := recoveryStore(t, ctx, minio)
	a := recoveryNode(t, minio, "--db", dsn, "--lesson-empty-grace", "30s")
	b := recoveryNode(t, minio, "--db", dsn, "--lesson-empty-grace", "30s")
	const onA, onB = "goes-on-a", "runs-on-b"

	stopA, _ := recTeacherCounted(t, ctx, a.URL, a.Token(onA, "teacher", "Ms A"), files)
	stopB, _ := recTeacherCounted(t, ctx, b.URL, b.Token(onB, "teacher", "Mr B"), files)
	recWaitSegments(t, a, onA, 3)
	recWaitSegments(t, b, onB, 1)
	var nodeB string
	testenv.WaitFor(t, 30*time.Second, "B's manifest in storage", func() bool {
		nodeB = recoveryManifest(ctx, store, onB).Node
		return nodeB != ""
	})

	noJobs := func(when string) {
		t.Helper()
		admin := b.Token("*", "admin", "ops")
		for _, lesson := range []string{onA, onB} {
			if jobs := recoveryJobs(t, b.URL, admin, lesson); len(jobs) > 0 {
				t.Fatalf("%s: a transcode of the running lesson %s was queued: %+v", when, lesson, jobs)
			}
			if m := recoveryManifest(ctx, store, lesson); m.Complete {
				t.Fatalf("%s: the recording of the running lesson %s is marked complete", when, lesson)
			}
		}
		if m := recoveryManifest(ctx, store, onB); m.Node != nodeB || m.State != recorder.StateRecording {
			t.Fatalf("%s: B's lesson is now node %q state %q", when, m.Node, m.State)
		}
	}

	if err := a.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	stoppedAt := time.Now()
	stopA()
	if m := recoveryManifest(ctx, store, onA); m.State != recorder.StateInterrupted {
		t.Fatalf("A's lesson after SIGTERM: state %q", m.State)
	}
	// A stays down a while, as a real restart may (an upgrade, a reboot);
	// the other node scans and transcodes meanwhile.
	time.Sleep(8 * time.Second)
	noJobs("A down")
	a.Restart()
	stopA2, sentA2 := recTeacherCounted(t, ctx, a.URL, a.Token(onA, "teacher", "Ms A"), files)
	resumedAt := time.Now()
	recWaitSegments(t, a, onA, 1)
	time.Sleep(4 * time.Second) // a few more segments of the resumed lesson
	noJobs("A back")

	recEndLesson(t, ctx, a.URL, a.Token(onA, "teacher", "Ms A (tablet)"))
	stopA2()
	recEndLesson(t, ctx, b.URL, b.Token(onB, "teacher", "Mr B (tablet)"))
	stopB()
	recoveryWaitReady(t, a, onA)
	recoveryWaitReady(t, b, onB)
	m, video := checkReplay(t, ctx, store, onA)
	checkReplay(t, ctx, store, onB)
	if len(m.Interruptions) != 1 || m.Interruptions[0].Cut <= 0 {
		t.Fatalf("A's lesson: interruptions %+v, want one cut", m.Interruptions)
	}
	in := m.Interruptions[0]
	downtime := in.To.Sub(in.From)
	first, _ := recordedSpan(m)
	content := stoppedAt.Sub(first) + sentA2["teacher-camera"].since(resumedAt.Add(-time.Second))
	t.Logf("graceful restart: down %.1fs, cut %.1fs; replay %.2fs for about %.2fs of content", downtime.Seconds(), in.Cut.Seconds(), video, content.Seconds())
	// The content is measured from the test's side (the camera waits for a
	// keyframe after the pause, the voice does not): 3 s of slack, while
	// the downtime to catch is over 8 s.
	if downtime < 8*time.Second {
		t.Fatalf("A was down only %v: the test cannot tell a cut from none", downtime)
	}
	if video > content.Seconds()+recorder.ResumePause.Seconds()+3 {
		t.Fatalf("A's replay lasts %.2fs for %.2fs of content: the %.1fs downtime is in it", video, content.Seconds(), downtime.Seconds())
	}
}

// loadAverage is the machine's 1-minute load, for figures in logs.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// TestEmptyLessonIsEmptyNotAJob: a teacher joins and ends the lesson
// without publishing anything. The catalog says "empty: nothing was
// recorded", and no transcode job is queued for it.
func TestEmptyLessonIsEmptyNotAJob(t *testing.T) {
	p := testenv.StartPodium(t, "--vod-poll", "200ms")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const lesson = "nothing-recorded"
	teacher := p.Token(lesson, "teacher", "Ms Teacher")
	recEndLesson(t, ctx, p.URL, teacher)
	viewer, admin := p.Token(lesson, "viewer", "Student"), p.Token("*", "admin", "ops")
	var l vod.Lesson
	testenv.WaitFor(t, 30*time.Second, "the lesson in the catalog as empty", func() bool {
		l = recoveryCatalog(p.URL, viewer, lesson)
		return l.Status == vod.StatusEmpty
	})
	if l.Error != "nothing was recorded" {
		t.Fatalf("empty lesson's error %q", l.Error)
	}
	// Several scans later, still no job.
	time.Sleep(time.Second)
	if jobs := recoveryJobs(t, p.URL, admin, lesson); len(jobs) > 0 {
		t.Fatalf("a transcode of an empty lesson was queued: %+v", jobs)
	}
}
