package recorder

import (
	"context"
	"testing"
	"time"

	"podium/sfu"
)

// A lesson whose room a shutting-down node closes is interrupted, not
// complete (no transcode of a lesson that goes on); the next recorder on
// the same spool closes it at its last media once nobody resumed it.
func TestShutdownInterruptsAndRestartCloses(t *testing.T) {
	t.Parallel()
	_, store := minioStore(t)
	spoolDir := t.TempDir()
	rec, err := New(Config{Store: store, SpoolDir: spoolDir, SegmentDuration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f := startLesson(t, rec, "shutdown")
	ctx, cancel := context.WithCancel(context.Background())
	_, _, waitCam := f.publish(t, ctx, "cam", sfu.SourceCamera, codecH264)
	_, _, waitMic := f.publish(t, ctx, "mic", sfu.SourceMicrophone, codecOpus)
	waitManifest(t, store, "shutdown", 30*time.Second, func(m Manifest) bool {
		return len(m.Tracks) == 2 && len(m.Tracks[0].Segments) >= 2 && len(m.Tracks[1].Segments) >= 2
	})
	f.room.End(sfu.EndReasonShutdown)
	cancel()
	waitCam()
	waitMic()
	closeCtx, closeCancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := rec.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	closeCancel()
	m := waitManifest(t, store, "shutdown", 10*time.Second, func(m Manifest) bool { return m.State == StateInterrupted })
	if m.Complete || !m.EndedAt.IsZero() {
		t.Fatalf("interrupted manifest: complete %v, ended %v", m.Complete, m.EndedAt)
	}

	again, err := New(Config{Store: store, SpoolDir: spoolDir, SegmentDuration: 2 * time.Second, ResumeGrace: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { again.Close(context.Background()) })
	closed := waitManifest(t, store, "shutdown", 30*time.Second, func(m Manifest) bool { return m.Complete })
	l := newLesson(again, closed)
	last := l.lastMediaEndLocked()
	if closed.State != StateComplete || !closed.EndedAt.Equal(last) || len(closed.Interruptions) != 1 || closed.Interruptions[0].Cut != 0 {
		t.Fatalf("closed manifest: state %q, ended %v (last media %v), interruptions %+v", closed.State, closed.EndedAt, last, closed.Interruptions)
	}
}
