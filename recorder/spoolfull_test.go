package recorder

import (
	"context"
	"strings"
	"testing"
	"time"

	"podium/sfu"
)

// With storage down and the spool at its limit, a segment that does not fit
// is dropped and said so: in the status, and as a gap in the manifest.
func TestSpoolFullIsReported(t *testing.T) {
	t.Parallel()
	minio, store := minioStore(t)
	minio.Stop()
	rec, err := New(Config{Store: store, SpoolDir: t.TempDir(), SpoolMaxBytes: 8 << 10, SegmentDuration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rec.Close(ctx)
	})
	f := startLesson(t, rec, "full")
	ctx, cancel := context.WithTimeout(context.Background(), 7*time.Second)
	defer cancel()
	_, _, wait := f.publish(t, ctx, "mic", sfu.SourceMicrophone, codecOpus)

	deadline := time.Now().Add(15 * time.Second)
	var st Status
	for time.Now().Before(deadline) {
		if st, _ = rec.Status("full"); st.SegmentsDropped > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.SegmentsDropped == 0 || !strings.Contains(st.LastError, "spool is full") {
		t.Fatalf("status = %+v, want dropped segments reported", st)
	}
	if st.BytesSpooled > 8<<10 {
		t.Fatalf("spool holds %d bytes over its 8 KiB limit", st.BytesSpooled)
	}
	wait()
	minio.Start()
	f.room.End("lesson over")
	m := waitManifest(t, store, "full", 60*time.Second, func(m Manifest) bool { return m.Complete })
	tr := manifestTrack(t, m, "teacher-microphone")
	var lost bool
	for _, g := range tr.Gaps {
		lost = lost || strings.HasPrefix(g.Reason, "segment lost")
	}
	if !lost {
		t.Fatalf("no 'segment lost' gap in %+v", tr.Gaps)
	}
}
