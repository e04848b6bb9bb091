package vod

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"podium/internal/audit"
	"podium/replaydb"
	"podium/storage/local"
)

// testDB is a fresh embedded replay database.
func testDB(t testing.TB) *replaydb.DB {
	t.Helper()
	db, err := replaydb.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "podium.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newTestService(t testing.TB) *Service {
	store, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(store, testDB(t), nil, Config{URLSecret: "unit-test-secret"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSignatures(t *testing.T) {
	s := newTestService(t)
	now := time.Unix(1_800_000_000, 0)
	s.now = func() time.Time { return now }
	u, _ := url.Parse(s.mediaURL("math-101", "poster.jpg", urlGrant{exp: now.Add(time.Minute), by: "viewer-1"}))
	q := u.Query()
	if by, ok := s.verify("math-101", "poster.jpg", q); !ok || by != "viewer-1" {
		t.Fatalf("fresh signature refused (%q, %v)", by, ok)
	}
	if _, ok := s.verify("math-102", "poster.jpg", q); ok {
		t.Error("signature accepted for another lesson")
	}
	if _, ok := s.verify("math-101", "download.mp4", q); ok {
		t.Error("the poster's signature opened the download")
	}
	bad := url.Values{"exp": {q.Get("exp")}, "by": {"viewer-1"}, "sig": {q.Get("sig") + "A"}}
	if _, ok := s.verify("math-101", "poster.jpg", bad); ok {
		t.Error("tampered signature accepted")
	}
	later := url.Values{"exp": {"1900000000"}, "by": {"viewer-1"}, "sig": {q.Get("sig")}}
	if _, ok := s.verify("math-101", "poster.jpg", later); ok {
		t.Error("signature accepted with a moved expiry")
	}
	other := url.Values{"exp": {q.Get("exp")}, "by": {"admin"}, "sig": {q.Get("sig")}}
	if _, ok := s.verify("math-101", "poster.jpg", other); ok {
		t.Error("signature accepted for another holder")
	}
	now = now.Add(2 * time.Minute)
	if _, ok := s.verify("math-101", "poster.jpg", q); ok {
		t.Error("expired signature accepted")
	}
	if _, ok := s.verify("math-101", "poster.jpg", url.Values{}); ok {
		t.Error("no signature accepted")
	}
}

func TestPlaySpan(t *testing.T) {
	pl := "#EXTM3U\n#EXTINF:4.000,\na.m4s\n#EXTINF:4.5,\nb.m4s\n#EXT-X-ENDLIST\n"
	if got := playSpan([]byte(pl)); got != 8500*time.Millisecond {
		t.Errorf("playlist span %v, want 8.5s", got)
	}
	vtt := "WEBVTT\n\n00:00.000 --> 00:05.000\nsprite.jpg#xywh=0,0,160,90\n\n01:02:03.500 --> 01:02:08.000\nsprite.jpg#xywh=160,0,160,90\n"
	if got := playSpan([]byte(vtt)); got != (3600+120+8)*time.Second {
		t.Errorf("vtt span %v", got)
	}
}

func TestClipRequestValidate(t *testing.T) {
	for _, tc := range []struct {
		c   ClipRequest
		dur float64
		ok  bool
	}{
		{ClipRequest{ID: "a", Start: 0, End: 5}, 10, true},
		{ClipRequest{ID: "a", Start: 5, End: 2}, 10, false},
		{ClipRequest{ID: "a", Start: -1, End: 2}, 10, false},
		{ClipRequest{ID: "a", Start: 1, End: 1.5}, 10, false},
		{ClipRequest{ID: "a", Start: 11, End: 15}, 10, false},
		{ClipRequest{ID: "../x", Start: 0, End: 5}, 10, false},
		{ClipRequest{ID: "a", Title: strings.Repeat("x", 201), Start: 0, End: 5}, 10, false},
	} {
		if err := tc.c.Validate(tc.dur); (err == nil) != tc.ok {
			t.Errorf("%+v in %v s: err %v, want ok=%v", tc.c, tc.dur, err, tc.ok)
		}
	}
	if id := clipID(ClipRequest{Title: "Adding ½ + ¼: the trick!", Start: 61.5, End: 90}); id != "adding-the-trick-61-90" || !ValidID(id) {
		t.Errorf("clipID = %q", id)
	}
	if id := clipID(ClipRequest{Title: "???", Start: 0, End: 9}); !ValidID(id) {
		t.Errorf("clipID of a symbol-only title = %q", id)
	}
}

func TestChapters(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	got := eventChapters([]ManifestEvent{
		{Time: at(30), Type: "stage", Participant: "Hill School"},
		{Time: at(10), Type: "screenStart", Participant: "Ms. Okafor"},
		{Time: at(20), Type: "chat", Text: "hi"},
		{Time: at(40), Type: "stage"},
		{Time: at(500), Type: "screenStart"}, // after the end
	}, t0, 100)
	want := []Chapter{{10, "screenStart", "Screen share: Ms. Okafor"}, {30, "stage", "On stage: Hill School"}, {40, "stage", "Back to the teacher"}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("chapter %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestRewriteSignsEveryURI(t *testing.T) {
	s := newTestService(t)
	r := httptest.NewRequest("GET", "/", nil)
	master := "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n720p/index.m3u8\n"
	out := string(s.rewrite(r, "l1", "hls/master.m3u8", []byte(master)))
	if !strings.Contains(out, "\n/api/vod/media/l1/hls/720p/index.m3u8?by=") {
		t.Errorf("master:\n%s", out)
	}
	media := "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:4.0,\nseg_00000.m4s\n#EXT-X-ENDLIST\n"
	out = string(s.rewrite(r, "l1", "hls/720p/index.m3u8", []byte(media)))
	if !strings.Contains(out, `#EXT-X-MAP:URI="/api/vod/media/l1/hls/720p/init.mp4?by=`) ||
		!strings.Contains(out, "\n/api/vod/media/l1/hls/720p/seg_00000.m4s?by=") {
		t.Errorf("media:\n%s", out)
	}
	vtt := "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nsprite_001.jpg#xywh=0,0,160,90\n"
	out = string(s.rewrite(r, "l1", "thumbs.vtt", []byte(vtt)))
	if !strings.Contains(out, "/api/vod/media/l1/sprite_001.jpg?by=") || !strings.HasSuffix(strings.TrimSpace(out), "#xywh=0,0,160,90") {
		t.Errorf("vtt:\n%s", out)
	}
	escape := "#EXTM3U\n../../../manifest.json\n"
	if out := string(s.rewrite(r, "l1", "hls/master.m3u8", []byte(escape))); strings.Contains(out, "/api/vod/media/l1/../") || strings.Contains(out, "sig=") {
		t.Errorf("a URI leaving the lesson was signed:\n%s", out)
	}
}

func FuzzRewrite(f *testing.F) {
	f.Add("hls/master.m3u8", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n720p/index.m3u8\n")
	f.Add("hls/720p/index.m3u8", "#EXT-X-MAP:URI=\"init.mp4\n#EXTINF:4,\nseg.m4s#frag\n")
	f.Add("thumbs.vtt", "WEBVTT\n\nx.jpg#xywh=1,2,3,4\n")
	s := newTestService(f)
	r := httptest.NewRequest("GET", "/", nil)
	f.Fuzz(func(t *testing.T, rel, body string) {
		out := string(s.rewrite(r, "l1", rel, []byte(body)))
		if strings.Contains(out, "/api/vod/media/l1/..") {
			t.Fatalf("signed a path outside the lesson: %q", out)
		}
	})
}

func TestValidMediaPath(t *testing.T) {
	for rel, want := range map[string]bool{
		"hls/720p/seg_00001.m4s": true, "download.mp4": true, "clips/halves-1-5/poster.jpg": true,
		"": false, "../manifest.json": false, "hls/../../x": false, "hls//a": false, ".hidden": false,
		"a\\b": false, "a%00b": false, "a\x00b": false, "hls/a b.m4s": false, strings.Repeat("a", 300): false,
	} {
		if got := validMediaPath(rel); got != want {
			t.Errorf("validMediaPath(%q) = %v, want %v", rel, got, want)
		}
	}
}

// auditLines keeps what is recorded.
type auditLines struct {
	mu    sync.Mutex
	lines []audit.Entry
}

func (a *auditLines) Record(_ context.Context, e audit.Entry) {
	a.mu.Lock()
	a.lines = append(a.lines, e)
	a.mu.Unlock()
}

func TestRetentionDeletesOnlyOldFinishedLessons(t *testing.T) {
	store, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	lines := &auditLines{}
	s, err := New(store, testDB(t), nil, Config{URLSecret: "unit-test-secret", Retention: 30 * 24 * time.Hour, Audit: lines}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	put := func(key string, v any) {
		b, _ := json.Marshal(v)
		if err := store.Put(ctx, key, bytes.NewReader(b), int64(len(b)), "application/json"); err != nil {
			t.Fatal(err)
		}
	}
	for id, m := range map[string]Manifest{
		"old-done":      {Version: 1, Lesson: "old-done", StartedAt: now.Add(-40 * 24 * time.Hour), Complete: true},
		"old-recording": {Version: 1, Lesson: "old-recording", StartedAt: now.Add(-40 * 24 * time.Hour)},
		"recent":        {Version: 1, Lesson: "recent", StartedAt: now.Add(-2 * 24 * time.Hour), Complete: true},
	} {
		put("lessons/"+id+"/manifest.json", m)
		put("lessons/"+id+"/vod/clips/c1/assets.json", map[string]any{"title": "clip"})
	}
	// Recorded by "another node": the catalog imports them first.
	if err := s.Sync(ctx, true); err != nil {
		t.Fatal(err)
	}
	deleted, err := s.Retention(ctx)
	if err != nil || len(deleted) != 1 || deleted[0] != "old-done" {
		t.Fatalf("Retention = %v, %v; want [old-done]", deleted, err)
	}
	if left, _ := store.List(ctx, "lessons/old-done/"); len(left) != 0 {
		t.Errorf("%d objects of the old lesson left, e.g. %s", len(left), left[0].Key)
	}
	for _, id := range []string{"old-recording", "recent"} {
		if left, _ := store.List(ctx, "lessons/"+id+"/"); len(left) != 2 {
			t.Errorf("lesson %s lost objects: %d left", id, len(left))
		}
	}
	if len(lines.lines) != 1 || lines.lines[0].Action != audit.RetentionDelete || lines.lines[0].Lesson != "old-done" {
		t.Errorf("audit lines: %+v", lines.lines)
	}
}

// TestSyncImportsAnOlderVersionsCatalog: lessons, courses and titles kept
// in storage by versions before the replay database come into the
// database, and the old records leave the bucket.
func TestSyncImportsAnOlderVersionsCatalog(t *testing.T) {
	s := newTestService(t)
	ctx := context.Background()
	put := func(key string, v any) {
		b, _ := json.Marshal(v)
		if err := s.store.Put(ctx, key, bytes.NewReader(b), int64(len(b)), "application/json"); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	recorded := []ManifestTrack{{ID: "teacher-camera", Role: "teacher", Kind: "video", Source: "camera", Codec: "h264", Init: "init.mp4",
		Segments: []ManifestSegment{{Seq: 1, Key: "lessons/geo-1/rec/teacher-camera/1.m4s", Duration: 4 * time.Second, Bytes: 1000}}}}
	put("lessons/geo-1/manifest.json", Manifest{Version: 1, Lesson: "geo-1", Title: "geo-1", Teacher: "Mr. Diallo", StartedAt: now.Add(-time.Hour), Complete: true, Tracks: recorded})
	put("lessons/geo-2/manifest.json", Manifest{Version: 1, Lesson: "geo-2", Teacher: "Mr. Diallo", StartedAt: now})
	put("catalog/courses/geography.json", CourseRecord{ID: "geography", Title: "Geography, year 8"})
	put("catalog/lessons/geo-1.json", map[string]string{"course": "geography", "title": "Rivers of Africa"})
	put("catalog/lessons/gone.json", map[string]string{"title": "deleted long ago"})

	if err := s.Sync(ctx, true); err != nil {
		t.Fatal(err)
	}
	l, err := s.db.GetLesson(ctx, "geo-1")
	if err != nil || l.Title != "Rivers of Africa" || l.Course != "geography" || l.Status != StatusProcessing || l.Teacher != "Mr. Diallo" {
		t.Errorf("geo-1 = %+v, %v", l, err)
	}
	if l, err := s.db.GetLesson(ctx, "geo-2"); err != nil || l.Status != StatusRecording {
		t.Errorf("geo-2 = %+v, %v", l, err)
	}
	if c, err := s.db.GetCourse(ctx, "geography"); err != nil || c.Title != "Geography, year 8" {
		t.Errorf("course = %+v, %v", c, err)
	}
	if left, _ := s.store.List(ctx, "catalog/"); len(left) != 0 {
		t.Errorf("%d old catalog records left, e.g. %s", len(left), left[0].Key)
	}
	// A second sync changes nothing, and a finished transcode shows.
	put("lessons/geo-1/vod/assets.json", Assets{Version: 1, Lesson: "geo-1", Duration: 42, Master: "hls/master.m3u8", Poster: PosterFile})
	if err := s.Sync(ctx, false); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.db.GetLesson(ctx, "geo-1"); l.Status != StatusReady || l.Duration != 42 || l.Title != "Rivers of Africa" {
		t.Errorf("after transcode: %+v", l)
	}
}

// TestSyncIndexesTracksChaptersAndClips: what the manifest and the clip
// assets say is queryable in the database, and follows storage.
func TestSyncIndexesTracksChaptersAndClips(t *testing.T) {
	s := newTestService(t)
	ctx := context.Background()
	put := func(key string, v any) {
		b, _ := json.Marshal(v)
		if err := s.store.Put(ctx, key, bytes.NewReader(b), int64(len(b)), "application/json"); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	seg := func(n int) []ManifestSegment {
		var out []ManifestSegment
		for i := range n {
			out = append(out, ManifestSegment{Seq: i, Duration: 4 * time.Second})
		}
		return out
	}
	put("lessons/sci-1/manifest.json", Manifest{Version: 1, Lesson: "sci-1", StartedAt: t0, EndedAt: t0.Add(60 * time.Second), Complete: true,
		Tracks: []ManifestTrack{
			{ID: "teacher-cam", Participant: "Ms. Okafor", Role: "teacher", Kind: "video", Source: "camera", Codec: "h264", Segments: seg(15)},
			{ID: "teacher-mic", Participant: "Ms. Okafor", Role: "teacher", Kind: "audio", Source: "microphone", Codec: "opus", Segments: seg(15)},
		},
		Events: []ManifestEvent{{Time: t0.Add(10 * time.Second), Type: "stage", Participant: "Hill School"}}})
	put("lessons/sci-1/vod/clips/c1/assets.json", Assets{Version: 1, Lesson: "sci-1", Clip: "c1", Title: "Photosynthesis", ClipStart: 5, ClipEnd: 25})
	if err := s.Sync(ctx, true); err != nil {
		t.Fatal(err)
	}
	tracks, err := s.db.LessonTracks(ctx, "sci-1")
	if err != nil || len(tracks) != 2 || tracks[0].ID != "teacher-cam" || tracks[0].Segments != 15 || tracks[0].Recorded != 60 {
		t.Errorf("tracks = %+v, %v", tracks, err)
	}
	chs, err := s.db.LessonChapters(ctx, "sci-1")
	if err != nil || len(chs) != 1 || chs[0].Time != 10 || chs[0].Title != "On stage: Hill School" {
		t.Errorf("chapters = %+v, %v", chs, err)
	}
	clips, err := s.db.ListClips(ctx, "sci-1")
	if err != nil || len(clips) != 1 || clips[0].Title != "Photosynthesis" || clips[0].End != 25 {
		t.Errorf("clips = %+v, %v", clips, err)
	}
	// The clip deleted from storage leaves the catalog at the next read.
	if err := s.store.Delete(ctx, "lessons/sci-1/vod/clips/c1/assets.json"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.readLesson(ctx, "sci-1"); err != nil {
		t.Fatal(err)
	}
	if clips, _ := s.db.ListClips(ctx, "sci-1"); len(clips) != 0 {
		t.Errorf("a deleted clip stayed: %+v", clips)
	}
}
