package recorder

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"podium/internal/testmedia"
	"podium/sfu"
	"podium/storage/s3"
)

// The crash test runs the recorder in a child process (this test binary,
// re-executed) so that it can be killed with SIGKILL for real.
const crashChildEnv = "PODIUM_RECORDER_CRASH_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		if err := runCrashChild(); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runCrashChild records lesson "crash" with a teacher publishing until it
// is killed (or a minute passes).
func runCrashChild() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := s3.New(ctx, s3.Config{Endpoint: os.Getenv("CRASH_S3"), Bucket: "recordings",
		AccessKey: os.Getenv("CRASH_AK"), SecretKey: os.Getenv("CRASH_SK")})
	if err != nil {
		return err
	}
	rec, err := New(Config{Store: store, SpoolDir: os.Getenv("CRASH_SPOOL"), SegmentDuration: 4 * time.Second})
	if err != nil {
		return err
	}
	rooms := sfu.NewRooms(nil)
	rec.Attach(rooms, true)
	room, err := rooms.CreateRoom(sfu.LessonInfo{ID: "crash"})
	if err != nil {
		return err
	}
	if err := room.AddParticipant(sfu.ParticipantInfo{ID: "t1", Name: "Ms Teacher", Role: sfu.RoleTeacher}); err != nil {
		return err
	}
	cam := sfu.NewTrack(sfu.TrackInfo{ID: "cam", ParticipantID: "t1", Kind: sfu.KindVideo, Source: sfu.SourceCamera,
		Codec: sfu.Codec{MimeType: "video/H264", ClockRate: 90000}}, nil)
	mic := sfu.NewTrack(sfu.TrackInfo{ID: "mic", ParticipantID: "t1", Kind: sfu.KindAudio, Source: sfu.SourceMicrophone,
		Codec: sfu.Codec{MimeType: "audio/opus", ClockRate: 48000, Channels: 2}}, nil)
	if err := room.Publish(cam); err != nil {
		return err
	}
	if err := room.Publish(mic); err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() {
		errc <- testmedia.PlayH264(ctx, os.Getenv("CRASH_H264"), testmedia.FPS, newRTPWriter(cam, 0, codecH264), true)
	}()
	go func() { errc <- testmedia.PlayOgg(ctx, os.Getenv("CRASH_OPUS"), newRTPWriter(mic, 0, codecOpus), true) }()
	fmt.Println("publishing")
	return <-errc
}

// A recorder killed with SIGKILL mid-lesson, while storage is also down,
// loses at most the open segment of each track: after a restart the
// spooled segments are uploaded and the resumed lesson continues the same
// recording, the downtime cut from its clock.
func TestSIGKILLLosesAtMostOpenSegment(t *testing.T) {
	t.Parallel()
	minio, store := minioStore(t)
	files := testmedia.ForTest(t)
	spoolDir := t.TempDir()

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), crashChildEnv+"=1", "CRASH_S3="+minio.Endpoint, "CRASH_AK="+minio.AccessKey,
		"CRASH_SK="+minio.SecretKey, "CRASH_SPOOL="+spoolDir, "CRASH_H264="+files.H264, "CRASH_OPUS="+files.Opus)
	logPath := filepath.Join(t.TempDir(), "child.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	child.Stdout, child.Stderr = logf, logf
	child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { child.Wait(); close(exited) }()
	t.Cleanup(func() { child.Process.Kill(); <-exited })

	// Segments reach the bucket, then storage goes away and the next
	// segments can only be spooled.
	waitManifest(t, store, "crash", 20*time.Second, func(m Manifest) bool {
		return len(m.Tracks) == 2 && len(m.Tracks[0].Segments) >= 1 && len(m.Tracks[1].Segments) >= 1
	})
	minio.Stop()
	time.Sleep(9 * time.Second)
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	killedAt := time.Now()
	spooled := countSpooled(t, spoolDir)
	if spooled < 2 {
		log, _ := os.ReadFile(logPath)
		t.Fatalf("only %d segments spooled during the outage; child log:\n%s", spooled, log)
	}

	// Restart: storage back, a new recorder on the same spool, and the
	// teacher back in the lesson for a few seconds.
	minio.Start()
	rec := newRecorder(t, store, spoolDir)
	f := startLesson(t, rec, "crash")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, waitCam := f.publish(t, ctx, "cam-2", sfu.SourceCamera, codecH264)
	_, _, waitMic := f.publish(t, ctx, "mic-2", sfu.SourceMicrophone, codecOpus)
	waitCam()
	waitMic()
	f.room.End("lesson over")

	m := waitManifest(t, store, "crash", 60*time.Second, func(m Manifest) bool { return m.Complete })
	if len(m.Tracks) != 2 {
		t.Fatalf("tracks %+v", m.Tracks)
	}
	// The downtime is one interruption, cut from the recording clock but
	// for a short pause: it started at the last media recorded before the
	// kill and ended when the lesson resumed.
	if len(m.Interruptions) != 1 || m.Interruptions[0].Reason != "recording interrupted" {
		t.Fatalf("interruptions %+v", m.Interruptions)
	}
	in := m.Interruptions[0]
	// What was lost at the kill is at most the open segment of each track
	// (4-5 s plus a keyframe interval).
	if lost := killedAt.Sub(in.From); lost < 0 || lost > 6*time.Second {
		t.Fatalf("interruption from %v, %v before the kill: more than the open segment was lost", in.From, lost)
	}
	if want := in.To.Sub(in.From) - ResumePause; in.Cut != want {
		t.Fatalf("cut %v, want the downtime %v less the pause", in.Cut, want)
	}
	t.Logf("lost at the kill: %v of media; downtime %v, cut %v", killedAt.Sub(in.From).Round(time.Millisecond),
		in.To.Sub(in.From).Round(time.Millisecond), in.Cut.Round(time.Millisecond))
	for _, tr := range m.Tracks {
		checkContinuous(t, store, tr)
		// On the recording clock, the track resumes right after the pause.
		var resumed ManifestSegment
		for _, s := range tr.Segments {
			if s.Start.After(in.At) {
				resumed = s
				break
			}
		}
		if resumed.Start.IsZero() || resumed.Start.Sub(in.At) > ResumePause+2*time.Second {
			t.Fatalf("track %s: first segment after the interruption at %v starts %v", tr.ID, in.At, resumed.Start)
		}
		var interrupted bool
		for _, g := range tr.Gaps {
			interrupted = interrupted || g.Reason == "recording interrupted"
		}
		if !interrupted {
			t.Fatalf("track %s: no 'recording interrupted' gap in %+v", tr.ID, tr.Gaps)
		}
		file := assemble(t, store, tr)
		p := probeFile(t, file)
		t.Logf("track %s: %d segments, ffprobe %+v", tr.ID, len(tr.Segments), p)
		if errs := decodeErrors(t, file); errs != "" {
			t.Fatalf("track %s does not decode cleanly: %s", tr.ID, errs)
		}
	}
}

func countSpooled(t *testing.T, dir string) int {
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(p) == ".m4s" {
			n++
		}
		return nil
	})
	return n
}
