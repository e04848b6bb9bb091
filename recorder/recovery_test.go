package recorder

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"podium/sfu"
	"podium/storage"
	"podium/storage/local"
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

// Another node's unfinished recording is closed only once its node has
// been silent for TakeoverAfter; a live node's is never touched.
func TestTakeoverOnlyOfSilentNodes(t *testing.T) {
	t.Parallel()
	store, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now().Add(-time.Hour).UTC()
	put := func(id, node string, heartbeat time.Time) []byte {
		t.Helper()
		m := Manifest{Version: ManifestVersion, Lesson: id, StartedAt: start, State: StateRecording, Node: node, Heartbeat: heartbeat,
			Tracks: []ManifestTrack{{ID: "teacher-camera", Kind: "video", Codec: codecH264, Init: "lessons/" + id + "/rec/teacher-camera/init.mp4",
				Segments: []ManifestSegment{{Seq: 0, Key: "lessons/" + id + "/rec/teacher-camera/000000.m4s", Start: start, Duration: 4 * time.Second}}}},
			Events: []ManifestEvent{}}
		data, _ := json.Marshal(&m)
		if err := store.Put(ctx, storage.ManifestKey(id), bytes.NewReader(data), int64(len(data)), "application/json"); err != nil {
			t.Fatal(err)
		}
		return data
	}
	read := func(id string) ([]byte, Manifest) {
		rc, _, err := store.Get(ctx, storage.ManifestKey(id))
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		data, _ := io.ReadAll(rc)
		var m Manifest
		_ = json.Unmarshal(data, &m)
		return data, m
	}
	put("gone", "node-a", start.Add(4*time.Second))
	time.Sleep(1500 * time.Millisecond) // the gone node's manifest ages past TakeoverAfter
	// A live node writes its manifest every HeartbeatInterval; this one's
	// heartbeat stays fresh for the whole test.
	alive := put("alive", "node-b", time.Now().Add(time.Hour))

	rec, err := New(Config{Store: store, SpoolDir: t.TempDir(), Node: "node-c", TakeoverAfter: time.Second,
		OpenLessons: func(context.Context) ([]string, error) { return []string{"gone", "alive"}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rec.Close(context.Background()) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, m := read("gone"); m.Complete {
			if m.Node != "node-c" || !m.EndedAt.Equal(start.Add(4*time.Second)) || len(m.Interruptions) != 1 ||
				!strings.Contains(m.Interruptions[0].Reason, "node-a") {
				t.Fatalf("closed manifest: node %q, ended %v, interruptions %+v", m.Node, m.EndedAt, m.Interruptions)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the silent node's recording was never closed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if data, _ := read("alive"); !bytes.Equal(data, alive) {
		t.Fatalf("the live node's manifest was rewritten:\n%s", data)
	}
}
