package vod_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"podium/internal/testenv"
	"podium/replaydb"
	"podium/sfu"
	"podium/signaling/auth"
	"podium/storage"
	"podium/storage/local"
	"podium/storage/s3/s3test"
	"podium/transcode"
	"podium/transcode/transcodetest"
	"podium/vod"
)

// server is the VOD part as cmd/podium wires it: real token auth, the
// catalog, the transcode queue and (for the page test) the web directory.
type server struct {
	*httptest.Server
	q      *transcode.Queue
	issuer *auth.Issuer
	db     *replaydb.DB
	store  storage.Store
}

func startServer(t *testing.T, store storage.Store, playback string) *server {
	return startServerWith(t, store, playback, 1)
}

// startServerWith runs the server with that many transcode workers (below
// 0: none, the node only queues; startWorker adds one later).
func startServerWith(t *testing.T, store storage.Store, playback string, workers int) *server {
	t.Helper()
	issuer, err := auth.NewIssuer("vod-test-secret-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	db, err := replaydb.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "podium.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	q := newQueue(t, db, store, workers)
	svc, err := vod.New(store, db, q, vod.Config{Playback: playback}, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	rt := auth.NewRouter(mux, issuer, nil)
	svc.Mount(rt)
	transcode.Handlers{Q: q}.Mount(rt)
	// The replay page, as package clients serves it (/replay -> replay.html).
	web := http.FileServer(http.Dir("../clients/web"))
	mux.Handle("GET /", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/replay" {
			http.ServeFile(w, r, "../clients/web/replay.html")
			return
		}
		web.ServeHTTP(w, r)
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	// The catalog follows storage as cmd/podium runs it, faster.
	synced := make(chan struct{})
	go func() { defer close(synced); svc.RunSync(ctx, 100*time.Millisecond, 200*time.Millisecond) }()
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		<-synced
		q.Close()
	})
	return &server{Server: srv, q: q, issuer: issuer, db: db, store: store}
}

// newQueue is the transcode queue as cmd/podium builds it, with a small
// ladder and a fast poll.
func newQueue(t *testing.T, db *replaydb.DB, store storage.Store, workers int) *transcode.Queue {
	t.Helper()
	q, err := transcode.NewQueue(context.Background(), db, store, transcode.QueueConfig{
		Config: transcode.Config{
			FFmpeg: testenv.RequireBinary(t, "ffmpeg"), FFprobe: testenv.RequireBinary(t, "ffprobe"), TempDir: t.TempDir(),
			Ladder: []transcode.Rung{{Name: "720p", Height: 720, VideoKbps: 1500}, {Name: "360p", Height: 360, VideoKbps: 500}},
		},
		Workers: workers, PollInterval: 200 * time.Millisecond,
	}, slog.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// startWorker adds a transcoding node on the server's database and store
// (a `podium worker`), stopped in t.Cleanup.
func (s *server) startWorker(t *testing.T) {
	t.Helper()
	q := newQueue(t, s.db, s.store, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		q.Close()
	})
}

// token is a live token of lesson math-101 (admins: of every lesson).
func (s *server) token(t *testing.T, role sfu.Role) string {
	t.Helper()
	room := "math-101"
	if role == sfu.RoleAdmin {
		room = auth.AnyRoom
	}
	return s.tokenFor(t, auth.Request{Room: room, Role: role})
}

func (s *server) tokenFor(t *testing.T, r auth.Request) string {
	t.Helper()
	r.Name, r.TTL = string(r.Role)+" user", time.Hour
	tok, _, err := s.issuer.Issue(r)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// do sends a request and decodes a JSON answer into out (when not nil).
func (s *server) do(t *testing.T, method, path, token string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	u := path
	if !strings.HasPrefix(path, "http") {
		u = s.URL + path
	}
	req, _ := http.NewRequest(method, u, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

func (s *server) get(t *testing.T, u string) (int, []byte) {
	t.Helper()
	if !strings.HasPrefix(u, "http") {
		u = s.URL + u
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (s *server) waitReady(t *testing.T, lesson, tok string) vod.Lesson {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for {
		var l vod.Lesson
		if s.do(t, "GET", "/api/vod/lessons/"+lesson, tok, nil, &l) == http.StatusOK && l.Status == vod.StatusReady {
			return l
		}
		if time.Now().After(deadline) {
			jobs, err := s.q.Jobs(context.Background(), 100)
			t.Fatalf("lesson %s not ready: %+v jobs=%+v (%v)", lesson, l, jobs, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func minioStore(t *testing.T) storage.Store {
	t.Helper()
	_, s := s3test.Start(t, "podium")
	return s
}

// TestCatalogAndSignedPlayback: on real MinIO, a recorded lesson becomes a
// catalog entry a student can find, open and play through signed URLs, and
// that only staff can edit, cut and delete.
func TestCatalogAndSignedPlayback(t *testing.T) {
	store := minioStore(t)
	s := startServer(t, store, vod.PlaybackSigned)
	transcodetest.WriteRecording(t, store, "math-101", 8, true)
	transcodetest.WriteRecording(t, store, "live-one", 4, false) // still recording
	student, teacher, admin := s.token(t, sfu.RoleViewer), s.token(t, sfu.RoleTeacher), s.token(t, sfu.RoleAdmin)
	everyLesson := s.tokenFor(t, auth.Request{Role: auth.RoleStudent, Replay: &auth.Grant{All: true}})
	otherTeacher := s.tokenFor(t, auth.Request{Room: "live-one", Role: sfu.RoleTeacher})

	l := s.waitReady(t, "math-101", student)
	if l.Title != "Fractions math-101" || l.Teacher != "Ms. Okafor" || l.Duration < 7 || l.Duration > 9 || l.Course != vod.UnsortedCourse {
		t.Errorf("lesson: %+v", l)
	}
	if len(l.Chapters) != 2 || l.Chapters[0].Type != "screenStart" || l.Chapters[0].Time != 2 || l.Chapters[1].Type != "screenStop" {
		t.Errorf("chapters: %+v", l.Chapters)
	}
	if len(l.Renditions) != 3 {
		t.Errorf("renditions: %+v", l.Renditions)
	}

	// Playback: master and media playlists through podium, signed; the
	// segments straight from MinIO with presigned URLs.
	code, master := s.get(t, l.HLS)
	if code != http.StatusOK || !strings.HasPrefix(string(master), "#EXTM3U") {
		t.Fatalf("master: %d %s", code, master)
	}
	var media string
	for _, line := range strings.Split(string(master), "\n") {
		if strings.HasPrefix(line, "/api/vod/media/math-101/hls/360p/index.m3u8?") {
			media = line
		}
	}
	if media == "" {
		t.Fatalf("master does not point at a signed 360p playlist:\n%s", master)
	}
	code, pl := s.get(t, media)
	if code != http.StatusOK {
		t.Fatalf("media playlist: %d %s", code, pl)
	}
	var segs []string
	for _, line := range strings.Split(string(pl), "\n") {
		if strings.HasPrefix(line, "http") {
			segs = append(segs, line)
		}
	}
	if len(segs) < 2 || !strings.Contains(segs[0], "X-Amz-Signature") || !strings.Contains(string(pl), `#EXT-X-MAP:URI="http`) {
		t.Fatalf("segments are not presigned storage URLs:\n%s", pl)
	}
	if code, b := s.get(t, segs[0]); code != http.StatusOK || len(b) < 1000 {
		t.Fatalf("presigned segment: %d, %d bytes", code, len(b))
	}
	if code, b := s.get(t, l.Download); code != http.StatusOK || !bytes.Contains(b[:64], []byte("ftyp")) {
		t.Fatalf("download: %d", code)
	}

	// Access control.
	if code, _ := s.get(t, "/api/vod/media/math-101/hls/master.m3u8"); code != http.StatusUnauthorized {
		t.Errorf("unsigned media without token: %d, want 401", code)
	}
	tampered := strings.Replace(l.HLS, "sig=", "sig=x", 1)
	if code, _ := s.get(t, tampered); code != http.StatusUnauthorized {
		t.Errorf("tampered signature: %d, want 401", code)
	}
	u, _ := url.Parse(l.HLS)
	if code, _ := s.get(t, strings.Replace(u.Path, "math-101", "live-one", 1)+"?"+u.RawQuery); code != http.StatusUnauthorized {
		t.Errorf("signature of another lesson: %d, want 401", code)
	}
	if code := s.do(t, "GET", "/api/vod/media/math-101/hls/master.m3u8", student, nil, nil); code != http.StatusOK {
		t.Errorf("media with a student token: %d", code)
	}
	if code := s.do(t, "GET", "/api/vod/media/math-101/..%2fmanifest.json", student, nil, nil); code != http.StatusBadRequest && code != http.StatusNotFound {
		t.Errorf("path escape: %d", code)
	}
	if code := s.do(t, "GET", "/api/vod/courses", "", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("catalog without token: %d", code)
	}
	if code := s.do(t, "DELETE", "/api/vod/lessons/math-101", student, nil, nil); code != http.StatusForbidden {
		t.Errorf("student delete: %d, want 403", code)
	}
	if code := s.do(t, "POST", "/api/vod/lessons/math-101/clips", student, vod.ClipRequest{Title: "x", Start: 1, End: 3}, nil); code != http.StatusForbidden {
		t.Errorf("student clip: %d, want 403", code)
	}
	if code := s.do(t, "GET", "/api/vod/jobs", student, nil, nil); code != http.StatusForbidden {
		t.Errorf("student jobs: %d, want 403", code)
	}
	// A token of one lesson reaches nothing of another.
	if code := s.do(t, "GET", "/api/vod/lessons/live-one", student, nil, nil); code != http.StatusForbidden {
		t.Errorf("viewer of math-101 reading live-one: %d, want 403", code)
	}
	for _, m := range []string{"PATCH", "DELETE"} {
		if code := s.do(t, m, "/api/vod/lessons/math-101", otherTeacher, map[string]string{"title": "x"}, nil); code != http.StatusForbidden {
			t.Errorf("%s by another lesson's teacher: %d, want 403", m, code)
		}
	}
	// A signature covers one object: the poster's does not open the video.
	poster, _ := url.Parse(l.Poster)
	if poster.Host == "" {
		if code, _ := s.get(t, "/api/vod/media/math-101/download.mp4?"+poster.RawQuery); code != http.StatusUnauthorized {
			t.Errorf("poster signature on the download: %d, want 401", code)
		}
	}

	// Catalog: courses, search, the recording-in-progress lesson.
	if code := s.do(t, "PUT", "/api/vod/courses/maths-7", teacher, vod.CourseRecord{Title: "Maths, year 7"}, nil); code != http.StatusForbidden {
		t.Fatalf("a teacher put a course: %d, want 403 (courses are the server admin's)", code)
	}
	if code := s.do(t, "PUT", "/api/vod/courses/maths-7", admin, vod.CourseRecord{Title: "Maths, year 7"}, nil); code != http.StatusOK {
		t.Fatalf("put course: %d", code)
	}
	var patched vod.Lesson
	if code := s.do(t, "PATCH", "/api/vod/lessons/math-101", teacher, map[string]string{"course": "maths-7"}, &patched); code != http.StatusOK || patched.Course != "maths-7" {
		t.Fatalf("patch lesson: %d %+v", code, patched)
	}
	if code := s.do(t, "PATCH", "/api/vod/lessons/math-101", teacher, map[string]string{"course": "nope"}, nil); code != http.StatusBadRequest {
		t.Errorf("patch to a missing course: %d", code)
	}
	var courses struct{ Courses []vod.Course }
	s.do(t, "GET", "/api/vod/courses", everyLesson, nil, &courses)
	got := map[string]int{}
	for _, c := range courses.Courses {
		got[c.ID] = c.LessonCount
	}
	if got["maths-7"] != 1 || got[vod.UnsortedCourse] != 1 {
		t.Errorf("courses: %+v", courses.Courses)
	}
	// A student of the course sees that course's lessons and nothing else.
	courseStudent := s.tokenFor(t, auth.Request{Role: auth.RoleStudent, Replay: &auth.Grant{Courses: []string{"maths-7"}}})
	var mine struct{ Lessons []vod.Lesson }
	s.do(t, "GET", "/api/vod/lessons", courseStudent, nil, &mine)
	if len(mine.Lessons) != 1 || mine.Lessons[0].ID != "math-101" {
		t.Errorf("course student's catalog: %+v", mine.Lessons)
	}
	if code := s.do(t, "GET", "/api/vod/lessons/math-101", courseStudent, nil, nil); code != http.StatusOK {
		t.Errorf("course student opening its lesson: %d", code)
	}
	if code := s.do(t, "GET", "/api/vod/lessons/live-one", courseStudent, nil, nil); code != http.StatusForbidden {
		t.Errorf("course student opening another lesson: %d, want 403", code)
	}
	for q, want := range map[string]string{"okafor": "live-one,math-101", "fractions MATH-101": "math-101", "biology": ""} {
		var res struct{ Lessons []vod.Lesson }
		s.do(t, "GET", "/api/vod/lessons?q="+url.QueryEscape(q), everyLesson, nil, &res)
		var ids []string
		for _, l := range res.Lessons {
			ids = append(ids, l.ID)
		}
		if strings.Join(sortedCopy(ids), ",") != want {
			t.Errorf("search %q: %v, want %s", q, ids, want)
		}
	}
	var live vod.Lesson
	s.do(t, "GET", "/api/vod/lessons/live-one", everyLesson, nil, &live)
	if live.Status != vod.StatusRecording || live.Playback != vod.PlaybackRaw || live.HLS == "" {
		t.Errorf("lesson still recording: %+v, want its recording as raw HLS", live)
	}

	// A clip: asked for by a teacher, cut by a job, listed with the lesson.
	var created struct {
		Clip vod.ClipRequest
		Job  string
	}
	if code := s.do(t, "POST", "/api/vod/lessons/math-101/clips", teacher, vod.ClipRequest{Title: "Halves", Start: 1.5, End: 5.5}, &created); code != http.StatusAccepted {
		t.Fatalf("create clip: %d", code)
	}
	if code := s.do(t, "POST", "/api/vod/lessons/math-101/clips", teacher, vod.ClipRequest{Title: "bad", Start: 5, End: 2}, nil); code != http.StatusBadRequest {
		t.Errorf("reversed clip range: %d", code)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		var j transcode.Job
		s.do(t, "GET", "/api/vod/jobs/"+created.Job, admin, nil, &j)
		if j.State == transcode.StateDone {
			break
		}
		if j.Finished() || time.Now().After(deadline) {
			t.Fatalf("clip job: %+v", j)
		}
		time.Sleep(200 * time.Millisecond)
	}
	l = s.waitReady(t, "math-101", student)
	if len(l.Clips) != 1 || l.Clips[0].Title != "Halves" || l.Clips[0].Duration < 3 || l.Clips[0].Duration > 5 {
		t.Fatalf("clips: %+v", l.Clips)
	}
	if code, b := s.get(t, l.Clips[0].HLS); code != http.StatusOK || !bytes.Contains(b, []byte("#EXT-X-STREAM-INF")) {
		t.Errorf("clip master: %d", code)
	}

	// Delete: staff only, and everything goes.
	if code := s.do(t, "DELETE", "/api/vod/lessons/math-101", admin, nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	if code := s.do(t, "GET", "/api/vod/lessons/math-101", student, nil, nil); code != http.StatusNotFound {
		t.Errorf("deleted lesson: %d", code)
	}
	if left, _ := store.List(context.Background(), "lessons/math-101/"); len(left) != 0 {
		t.Errorf("%d objects left after delete, e.g. %s", len(left), left[0].Key)
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func localStore(t *testing.T) storage.Store {
	s, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var _ = fmt.Sprint
