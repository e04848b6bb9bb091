package transcode

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"podium/storage"
	"podium/storage/s3/s3test"
	"podium/transcode/transcodetest"
	"podium/vod"
)

// fakeBucket fills a store with lessons as the recorder and transcode
// leave them, with segs segment objects per lesson (one byte each: the
// scan must never read them): done lessons (complete, with assets), live
// ones (recording) and new ones (complete, not transcoded).
func fakeBucket(t testing.TB, s storage.Store, done, live, fresh, segs int) {
	t.Helper()
	put := func(key, body string) {
		if err := s.Put(context.Background(), key, strings.NewReader(body), int64(len(body)), ""); err != nil {
			t.Fatal(err)
		}
	}
	lesson := func(id string, complete, assets bool) {
		for i := range segs {
			put(storage.RecSegmentKey(id, "cam", i), "x")
		}
		cam := vod.ManifestTrack{ID: "cam", Kind: "video", Codec: "h264", Segments: []vod.ManifestSegment{{Seq: 0, Key: storage.RecSegmentKey(id, "cam", 0), Bytes: 1}}}
		transcodetest.PutJSON(t, s, vod.ManifestKey(id), vod.Manifest{Version: vod.ManifestVersion, Lesson: id, Complete: complete, Tracks: []vod.ManifestTrack{cam}})
		if assets {
			put(vod.LessonBase(id)+vod.AssetsFile, "{}")
		}
	}
	for i := range done {
		lesson(fmt.Sprintf("done-%03d", i), true, true)
	}
	for i := range live {
		lesson(fmt.Sprintf("live-%03d", i), false, false)
	}
	for i := range fresh {
		lesson(fmt.Sprintf("new-%03d", i), true, false)
	}
}

// TestScanCostIsFlatInSegments: finding completed recordings costs the
// same storage calls whether each lesson has 10 segments or 200, never
// lists objects (List), and a poll that finds nothing new costs one
// delimiter listing plus one Stat per lesson still recording. Each new
// complete recording gets exactly one job, also when two nodes scan.
func TestScanCostIsFlatInSegments(t *testing.T) {
	const done, live, fresh = 10, 5, 5
	var first, steady map[string]int
	for _, segs := range []int{10, 200} {
		store := newCountingStore(localStore(t))
		fakeBucket(t, store, done, live, fresh, segs)
		db := sqliteDB(t)
		// Two nodes that only queue (no workers), scanning by hand.
		a := startNode(t, db, store, QueueConfig{Workers: -1})
		b := startNode(t, db, store, QueueConfig{Workers: -1})
		before, _ := store.snapshot()
		start := time.Now()
		if err := a.ScanRecordings(context.Background()); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		mid, _ := store.snapshot()
		if err := a.ScanRecordings(context.Background()); err != nil {
			t.Fatal(err)
		}
		after, _ := store.snapshot()
		if err := b.ScanRecordings(context.Background()); err != nil {
			t.Fatal(err)
		}
		f, s := diff(before, mid), diff(mid, after)
		t.Logf("%d segments per lesson, %d lessons: first scan %v (%s), next %v", segs, done+live+fresh, f, took.Round(time.Millisecond), s)
		if f["List"] != 0 || s["List"] != 0 {
			t.Fatalf("a scan listed objects: %v, %v", f, s)
		}
		if want := map[string]int{"ListDirs": 1, "Stat": live}; fmt.Sprint(s) != fmt.Sprint(want) {
			t.Errorf("a poll with nothing new: %v, want %v", s, want)
		}
		if first == nil {
			first, steady = f, s
		} else if fmt.Sprint(f) != fmt.Sprint(first) || fmt.Sprint(s) != fmt.Sprint(steady) {
			t.Errorf("cost grew with segments: first scan %v then %v; next %v then %v", first, f, steady, s)
		}
		jobs, err := a.Jobs(context.Background(), 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) != fresh {
			t.Fatalf("jobs: %+v, want one per new recording (%d)", jobs, fresh)
		}
		for _, j := range jobs {
			if !strings.HasPrefix(j.Lesson, "new-") || j.State != StateQueued {
				t.Errorf("job %+v", j)
			}
		}
	}
}

func diff(before, after map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// TestScanSeesARecordingCompletedWithinTheSameSecond: S3 keeps an object's
// time to the second, and a recording's last two manifests ("stopped",
// then "complete" once the last segments are up) are often written within
// one. A scan that read the first must still queue the second.
func TestScanSeesARecordingCompletedWithinTheSameSecond(t *testing.T) {
	_, store := s3test.Start(t, "recordings")
	q := startNode(t, sqliteDB(t), store, QueueConfig{Workers: -1})
	ctx := context.Background()
	const lesson = "same-second"
	cam := vod.ManifestTrack{ID: "cam", Kind: "video", Codec: "h264", Segments: []vod.ManifestSegment{{Seq: 0, Key: storage.RecSegmentKey(lesson, "cam", 0), Bytes: 1}}}
	write := func(complete bool) storage.ObjectInfo {
		transcodetest.PutJSON(t, store, vod.ManifestKey(lesson), vod.Manifest{Version: vod.ManifestVersion, Lesson: lesson, Complete: complete, Tracks: []vod.ManifestTrack{cam}})
		st, err := store.Stat(ctx, vod.ManifestKey(lesson))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	for attempt := 0; ; attempt++ {
		stopped := write(false)
		if err := q.ScanRecordings(ctx); err != nil {
			t.Fatal(err)
		}
		complete := write(true)
		if !complete.LastModified.Equal(stopped.LastModified) {
			if attempt < 10 {
				continue // a second boundary fell between them: again
			}
			t.Fatalf("never two writes within a second: %v, %v", stopped.LastModified, complete.LastModified)
		}
		break
	}
	if err := q.ScanRecordings(ctx); err != nil {
		t.Fatal(err)
	}
	jobs, err := q.Jobs(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || jobs[0].Lesson != lesson {
		t.Fatalf("jobs %+v, want the completed recording's", jobs)
	}
}
