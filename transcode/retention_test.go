package transcode

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"podium/internal/audit"
	"podium/internal/testenv"
	"podium/storage/local"
	"podium/vod"
)

type auditLines struct {
	mu    sync.Mutex
	lines []audit.Entry
}

func (a *auditLines) Record(_ context.Context, e audit.Entry) {
	a.mu.Lock()
	a.lines = append(a.lines, e)
	a.mu.Unlock()
}

func (a *auditLines) count(action string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, e := range a.lines {
		if e.Action == action {
			n++
		}
	}
	return n
}

// TestRetentionRunsOnceAcrossNodes: two nodes on one database, each able
// to run retention; the periodic pass deletes the lesson past its time
// once (one audit line), and keeps the recent one.
func TestRetentionRunsOnceAcrossNodes(t *testing.T) {
	store, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	db := sqliteDB(t)
	ctx := context.Background()
	now := time.Now()
	for id, started := range map[string]time.Time{"old-one": now.Add(-400 * 24 * time.Hour), "recent": now.Add(-time.Hour)} {
		b, _ := json.Marshal(vod.Manifest{Version: 1, Lesson: id, StartedAt: started, Complete: true})
		if err := store.Put(ctx, "lessons/"+id+"/manifest.json", bytes.NewReader(b), int64(len(b)), "application/json"); err != nil {
			t.Fatal(err)
		}
	}
	lines := &auditLines{}
	svc, err := vod.New(store, db, nil, vod.Config{Retention: 365 * 24 * time.Hour, Audit: lines}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Sync(ctx, true); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		n := startNode(t, db, store, QueueConfig{Workers: 1, RetentionEvery: time.Second})
		n.SetRetainer(svc)
	}
	testenv.WaitFor(t, 30*time.Second, "the retention pass to delete old-one", func() bool {
		left, _ := store.List(ctx, "lessons/old-one/")
		return len(left) == 0
	})
	time.Sleep(2500 * time.Millisecond) // more passes run: none deletes again
	if n := lines.count(audit.RetentionDelete); n != 1 {
		t.Errorf("%d retention.delete audit lines, want 1", n)
	}
	if left, _ := store.List(ctx, "lessons/recent/"); len(left) != 1 {
		t.Errorf("the recent lesson lost its manifest")
	}
}

// TestLessonWithoutVideoShowsFailed: a lesson whose teacher never went
// live cannot make a replay; the catalog says "failed" with the reason,
// not "processing" forever.
func TestLessonWithoutVideoShowsFailed(t *testing.T) {
	store, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	db := sqliteDB(t)
	ctx := context.Background()
	// The teacher's voice was recorded, no picture ever was (a lesson
	// with nothing recorded at all is "empty" and gets no job).
	voice := vod.ManifestTrack{ID: "teacher-microphone", Role: "teacher", Kind: "audio", Source: "microphone", Codec: "opus", Init: "init.mp4",
		Segments: []vod.ManifestSegment{{Seq: 1, Key: "lessons/no-show/rec/teacher-microphone/1.m4s", Duration: 4 * time.Second, Bytes: 1000}}}
	b, _ := json.Marshal(vod.Manifest{Version: 1, Lesson: "no-show", StartedAt: time.Now().Add(-time.Hour), Complete: true, Tracks: []vod.ManifestTrack{voice}})
	if err := store.Put(ctx, "lessons/no-show/manifest.json", bytes.NewReader(b), int64(len(b)), "application/json"); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, db, store, QueueConfig{Workers: 1, PollInterval: 100 * time.Millisecond})
	svc, err := vod.New(store, db, n, vod.Config{TranscodeFailure: n.LessonFailure}, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitLesson(t, n.Queue, "no-show", 60*time.Second)
	if err := svc.Sync(ctx, true); err != nil {
		t.Fatal(err)
	}
	l, err := db.GetLesson(ctx, "no-show")
	if err != nil || l.Status != vod.StatusFailed {
		t.Fatalf("catalog row = %+v, %v; want status failed", l, err)
	}
	reason, failed := n.LessonFailure(ctx, "no-show")
	if !failed || reason == "" {
		t.Fatalf("LessonFailure = %q, %v", reason, failed)
	}
}
