package vod

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"podium/internal/audit"
	"podium/internal/httpx"
	"podium/replaydb"
	"podium/storage"
)

// Handlers of the catalog API. Routes and their scopes are declared where
// they are registered (cmd/podium, through package signaling/auth's
// router); lists and lessons show only what the caller may see.

// record writes an audit line of the caller's action.
func (s *Service) record(r *http.Request, action, lesson, object, detail string) {
	e := audit.Entry{At: s.now(), Action: action, Lesson: lesson, Object: object, Detail: detail, RemoteAddr: r.RemoteAddr, Actor: "unknown"}
	if c := s.caller(r); c != nil {
		e.Actor, e.Role = c.Actor(), c.RoleName()
	}
	s.cfg.Audit.Record(r.Context(), e)
}

// ListCourses answers GET /api/vod/courses: the courses holding lessons the
// caller may see (every course for a server admin).
func (s *Service) ListCourses(w http.ResponseWriter, r *http.Request) {
	caller := s.caller(r)
	courses, err := s.db.ListCourses(r.Context())
	if err != nil {
		httpx.WriteError(w, http.StatusServiceUnavailable, "database", err.Error())
		return
	}
	out := []Course{}
	seesAll := filterFor(caller).All
	add := func(c CourseRecord, course string, total int) bool {
		n := total // the database counted every lesson of the course
		if !seesAll {
			f := filterFor(caller)
			f.Course = course
			var err error
			if n, err = s.db.CountLessons(r.Context(), f); err != nil {
				httpx.WriteError(w, http.StatusServiceUnavailable, "database", err.Error())
				return false
			}
		}
		if n > 0 || (caller != nil && caller.ServerAdmin()) {
			out = append(out, Course{CourseRecord: c, LessonCount: n})
		}
		return true
	}
	for _, c := range courses {
		if !add(CourseRecord{ID: c.ID, Title: c.Title, Description: c.Description}, c.ID, c.LessonCount) {
			return
		}
	}
	// Lessons in no course: the filter's Course "" means any, so count them
	// as all minus the filed ones.
	f := filterFor(caller)
	all, err := s.db.CountLessons(r.Context(), f)
	if err != nil {
		httpx.WriteError(w, http.StatusServiceUnavailable, "database", err.Error())
		return
	}
	for _, c := range out {
		all -= c.LessonCount
	}
	if all > 0 {
		out = append(out, Course{CourseRecord: CourseRecord{ID: UnsortedCourse, Title: "Unsorted lessons"}, LessonCount: all})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Title < out[j].Title })
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"courses": out})
}

// PutCourse answers PUT /api/vod/courses/{course}: create or rename.
func (s *Service) PutCourse(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("course")
	var c CourseRecord
	if !ValidID(id) || id == UnsortedCourse {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", "invalid course id")
		return
	}
	if err := readBody(r, &c); err != nil || strings.TrimSpace(c.Title) == "" || len(c.Title) > 200 || len(c.Description) > 2000 {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", "body must be {\"title\": 1-200 chars, \"description\": optional}")
		return
	}
	c.ID = id
	if err := s.db.PutCourse(r.Context(), replaydb.Course{ID: id, Title: c.Title, Description: c.Description}); err != nil {
		httpx.WriteError(w, http.StatusServiceUnavailable, "database", err.Error())
		return
	}
	s.record(r, audit.CourseUpdate, "", id, c.Title)
	httpx.WriteJSON(w, http.StatusOK, c)
}

// DeleteCourse answers DELETE /api/vod/courses/{course}; its lessons move
// to the unsorted course.
func (s *Service) DeleteCourse(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("course")
	if !ValidID(id) {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", "invalid course id")
		return
	}
	if err := s.db.DeleteCourse(r.Context(), id); err != nil && !errors.Is(err, replaydb.ErrNotFound) {
		httpx.WriteError(w, http.StatusServiceUnavailable, "database", err.Error())
		return
	}
	s.record(r, audit.CourseDelete, "", id, "")
	w.WriteHeader(http.StatusNoContent)
}

// ListLessons answers GET /api/vod/lessons?q=&course=&limit=&offset=:
// search by title and teacher, newest first, among what the caller may see.
func (s *Service) ListLessons(w http.ResponseWriter, r *http.Request) {
	s.listLessons(w, r, r.URL.Query().Get("course"))
}

// CourseLessons answers GET /api/vod/courses/{course}/lessons.
func (s *Service) CourseLessons(w http.ResponseWriter, r *http.Request) {
	s.listLessons(w, r, r.PathValue("course"))
}

// maxListLimit bounds one page of a lesson list.
const maxListLimit = 500

func (s *Service) listLessons(w http.ResponseWriter, r *http.Request, course string) {
	q := r.URL.Query()
	f := filterFor(s.caller(r))
	f.Query, f.Limit = q.Get("q"), maxListLimit
	for name, dst := range map[string]*int{"limit": &f.Limit, "offset": &f.Offset} {
		if v := q.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || (name == "limit" && (n < 1 || n > maxListLimit)) {
				httpx.WriteError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("%s must be a number (limit 1 to %d)", name, maxListLimit))
				return
			}
			*dst = n
		}
	}
	switch course {
	case "":
	case UnsortedCourse:
		f.Course = "" // filtered below: lessons filed nowhere
	default:
		if _, err := s.db.GetCourse(r.Context(), course); errors.Is(err, replaydb.ErrNotFound) {
			httpx.WriteError(w, http.StatusNotFound, "not_found", "no such course")
			return
		}
		f.Course = course
	}
	recs, err := s.db.ListLessons(r.Context(), f)
	if err != nil {
		httpx.WriteError(w, http.StatusServiceUnavailable, "database", err.Error())
		return
	}
	g := s.grantFor(r, s.cfg.URLTTL)
	out := []Lesson{}
	for _, rec := range recs {
		if course == UnsortedCourse && rec.Course != "" {
			continue
		}
		out = append(out, s.summary(r.Context(), rec, g))
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"lessons": out})
}

// GetLesson answers GET /api/vod/lessons/{lesson}.
func (s *Service) GetLesson(w http.ResponseWriter, r *http.Request) {
	e, ok := s.lesson(w, r)
	if !ok {
		return
	}
	httpx.WriteJSON(w, http.StatusOK, s.view(r.Context(), e, true, s.grantFor(r, s.cfg.URLTTL)))
}

// PatchLesson answers PATCH /api/vod/lessons/{lesson} {"title", "course"}
// ("course": "" or "unsorted" takes it out of its course).
func (s *Service) PatchLesson(w http.ResponseWriter, r *http.Request) {
	e, ok := s.lesson(w, r)
	if !ok {
		return
	}
	var p struct {
		Title  *string `json:"title"`
		Course *string `json:"course"`
	}
	if err := readBody(r, &p); err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if p.Title != nil {
		t := strings.TrimSpace(*p.Title)
		if len(t) > 200 {
			httpx.WriteError(w, http.StatusBadRequest, "bad_request", "title is longer than 200 characters")
			return
		}
		p.Title = &t
	}
	if p.Course != nil {
		if *p.Course == UnsortedCourse {
			*p.Course = ""
		}
		if *p.Course != "" {
			if _, err := s.db.GetCourse(r.Context(), *p.Course); err != nil {
				httpx.WriteError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("no course %q", *p.Course))
				return
			}
		}
	}
	if err := s.db.SetLessonMeta(r.Context(), e.id, p.Title, p.Course); err != nil {
		httpx.WriteError(w, http.StatusServiceUnavailable, "database", err.Error())
		return
	}
	e, err := s.readLesson(r.Context(), e.id)
	if err != nil {
		httpx.WriteError(w, http.StatusServiceUnavailable, "storage", err.Error())
		return
	}
	s.record(r, audit.LessonRename, e.id, "", fmt.Sprintf("title %q, course %q", e.title(), e.course()))
	httpx.WriteJSON(w, http.StatusOK, s.view(r.Context(), e, true, s.grantFor(r, s.cfg.URLTTL)))
}

// DeleteLesson answers DELETE /api/vod/lessons/{lesson}: the recording, its
// VOD assets, clips and catalog record are removed.
func (s *Service) DeleteLesson(w http.ResponseWriter, r *http.Request) {
	e, ok := s.lesson(w, r)
	if !ok {
		return
	}
	if err := s.deleteLesson(r.Context(), e.id); err != nil {
		httpx.WriteError(w, http.StatusServiceUnavailable, "storage", err.Error())
		return
	}
	s.record(r, audit.LessonDelete, e.id, "", e.title())
	w.WriteHeader(http.StatusNoContent)
}

// CreateClip answers POST /api/vod/lessons/{lesson}/clips
// {"title", "start", "end"[, "id"]} with 202 and the job id.
func (s *Service) CreateClip(w http.ResponseWriter, r *http.Request) {
	e, ok := s.lesson(w, r)
	if !ok {
		return
	}
	if s.clips == nil {
		httpx.WriteError(w, http.StatusServiceUnavailable, "unavailable", "clip cutting is not enabled on this node")
		return
	}
	if e.assets == nil {
		httpx.WriteError(w, http.StatusConflict, "not_ready", "the lesson has no VOD yet; try again when it is ready")
		return
	}
	var c ClipRequest
	if err := readBody(r, &c); err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	c.Title = strings.TrimSpace(c.Title)
	if c.ID == "" {
		c.ID = clipID(c)
	}
	if err := c.Validate(e.assets.Duration); err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	job, err := s.clips.SubmitClip(r.Context(), e.id, c)
	if err != nil {
		httpx.WriteError(w, http.StatusConflict, "clip_rejected", err.Error())
		return
	}
	s.record(r, audit.ClipCreate, e.id, c.ID, fmt.Sprintf("%q %.1f-%.1f s", c.Title, c.Start, c.End))
	httpx.WriteJSON(w, http.StatusAccepted, map[string]any{"clip": c, "job": job})
}

// clipID derives a readable id from the title and range.
func clipID(c ClipRequest) string {
	var b strings.Builder
	for _, r := range strings.ToLower(c.Title) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
		if b.Len() >= 40 {
			break
		}
	}
	return strings.Trim(fmt.Sprintf("%s-%d-%d", strings.Trim(b.String(), "-"), int(c.Start), int(c.End)), "-")
}

// DeleteClip answers DELETE /api/vod/lessons/{lesson}/clips/{clip}.
func (s *Service) DeleteClip(w http.ResponseWriter, r *http.Request) {
	e, ok := s.lesson(w, r)
	if !ok {
		return
	}
	id := r.PathValue("clip")
	if _, ok := e.clips[id]; !ok || !ValidID(id) {
		httpx.WriteError(w, http.StatusNotFound, "not_found", "no such clip")
		return
	}
	base := ClipBase(e.id, id)
	if err := s.deletePrefix(r.Context(), base+AssetsFile, base); err != nil {
		httpx.WriteError(w, http.StatusServiceUnavailable, "storage", err.Error())
		return
	}
	s.record(r, audit.ClipDelete, e.id, id, "")
	w.WriteHeader(http.StatusNoContent)
}

// lesson reads the {lesson} of the request from storage (indexing it) or
// answers 404.
func (s *Service) lesson(w http.ResponseWriter, r *http.Request) (*lessonEntry, bool) {
	id := r.PathValue("lesson")
	if !ValidID(id) {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", "invalid lesson id")
		return nil, false
	}
	e, err := s.readLesson(r.Context(), id)
	if errors.Is(err, storage.ErrNotFound) {
		httpx.WriteError(w, http.StatusNotFound, "not_found", "no such lesson")
		return nil, false
	}
	if err != nil {
		httpx.WriteError(w, http.StatusServiceUnavailable, "storage", err.Error())
		return nil, false
	}
	return e, true
}

// deleteLesson removes a lesson's recording, VOD assets, clips and catalog
// record. The manifest goes first: from then on the lesson is out of the
// catalog even if deleting the rest is interrupted.
func (s *Service) deleteLesson(ctx context.Context, id string) error {
	if err := s.deletePrefix(ctx, "lessons/"+id+"/manifest.json", "lessons/"+id+"/"); err != nil {
		return err
	}
	if err := s.db.DeleteLesson(ctx, id); err != nil && !errors.Is(err, replaydb.ErrNotFound) {
		return err
	}
	return nil
}

// deletePrefix deletes the given keys first, then every object under the
// last one (a prefix).
func (s *Service) deletePrefix(ctx context.Context, keysThenPrefix ...string) error {
	n := len(keysThenPrefix)
	for _, k := range keysThenPrefix[:n-1] {
		if err := s.store.Delete(ctx, k); err != nil {
			return fmt.Errorf("delete %s: %w", k, err)
		}
	}
	objs, err := s.store.List(ctx, keysThenPrefix[n-1])
	if err != nil {
		return fmt.Errorf("list %s: %w", keysThenPrefix[n-1], err)
	}
	for _, o := range objs {
		if err := s.store.Delete(ctx, o.Key); err != nil {
			return fmt.Errorf("delete %s: %w", o.Key, err)
		}
	}
	return nil
}

func readBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad JSON body: %w", err)
	}
	return nil
}

// Media serves GET /api/vod/media/{lesson}/{path...}: objects under the
// lesson's VOD base. A request carrying a valid signature of that very
// object (exp, by, sig) is served as is (ValidSignature, asked by the
// router); any other needs a token that may replay the lesson. Playlists
// and the thumbnails track are rewritten so that every URI in them is
// signed as well.
func (s *Service) Media() http.Handler {
	return signedRoute{serve: s.serveMedia, verify: s.verify}
}

// signedRoute is a media handler the router asks first whether the
// request's URL is signed for its object (auth.SignatureChecker).
type signedRoute struct {
	serve  http.HandlerFunc
	verify func(lesson, rel string, q url.Values) (by string, ok bool)
}

func (h signedRoute) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.serve(w, r) }

// ValidSignature reports whether the request is signed for its object.
func (h signedRoute) ValidSignature(r *http.Request) bool {
	_, ok := h.verify(r.PathValue("lesson"), r.PathValue("path"), r.URL.Query())
	return ok
}

func (s *Service) serveMedia(w http.ResponseWriter, r *http.Request) {
	lesson, rel := r.PathValue("lesson"), r.PathValue("path")
	if !ValidID(lesson) || !validMediaPath(rel) {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", "invalid media path")
		return
	}
	key := LessonBase(lesson) + rel
	if rng := r.Header.Get("Range"); path.Base(rel) == "download.mp4" && (rng == "" || strings.HasPrefix(rng, "bytes=0-")) {
		s.recordDownload(r, lesson, rel)
	}
	rc, info, err := s.store.Get(r.Context(), key)
	if errors.Is(err, storage.ErrNotFound) {
		httpx.WriteError(w, http.StatusNotFound, "not_found", "no such media")
		return
	}
	if err != nil {
		httpx.WriteError(w, http.StatusServiceUnavailable, "storage", err.Error())
		return
	}
	defer rc.Close()
	ext := path.Ext(rel)
	ctype := map[string]string{
		".m3u8": "application/vnd.apple.mpegurl", ".m4s": "video/iso.segment", ".mp4": "video/mp4",
		".jpg": "image/jpeg", ".vtt": "text/vtt; charset=utf-8", ".json": "application/json",
	}[ext]
	if ctype == "" {
		ctype = info.ContentType
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "private, max-age=300")
	if ext == ".m3u8" || ext == ".vtt" {
		b, err := io.ReadAll(io.LimitReader(rc, 8<<20))
		if err != nil {
			httpx.WriteError(w, http.StatusServiceUnavailable, "storage", err.Error())
			return
		}
		w.Header().Set("Cache-Control", "no-store") // holds expiring signatures
		_, _ = w.Write(s.rewrite(r, lesson, rel, b))
		return
	}
	if rs, ok := rc.(io.ReadSeeker); ok {
		http.ServeContent(w, r, "", info.LastModified, rs) // ranges for <video src=mp4>
		return
	}
	if info.Size > 0 {
		w.Header().Set("Content-Length", fmt.Sprint(info.Size))
	}
	_, _ = io.Copy(w, rc)
}

// recordDownload writes the audit line of a download's first byte range.
func (s *Service) recordDownload(r *http.Request, lesson, rel string) {
	if by, ok := s.verify(lesson, rel, r.URL.Query()); ok && s.caller(r) == nil {
		s.cfg.Audit.Record(r.Context(), audit.Entry{At: s.now(), Actor: by, Action: audit.LessonDownload,
			Lesson: lesson, Object: rel, Detail: "signed URL", RemoteAddr: r.RemoteAddr})
		return
	}
	s.record(r, audit.LessonDownload, lesson, rel, "")
}

// rewrite signs every URI of a playlist (or thumbnails track) found at rel.
// The URIs live as long as the playlist plays, plus URLTTL, so a player
// can finish a lesson it started.
func (s *Service) rewrite(r *http.Request, lesson, rel string, b []byte) []byte {
	by := "signed"
	if v, ok := s.verify(lesson, rel, r.URL.Query()); ok {
		by = v
	} else if c := s.caller(r); c != nil {
		by = c.Actor()
	}
	q := urlGrant{exp: s.now().Add(s.cfg.URLTTL + playSpan(b)), by: by}
	dir := path.Dir(rel)
	resolve := func(uri string) string {
		if uri == "" || strings.Contains(uri, "://") || strings.HasPrefix(uri, "/") {
			return uri // absolute: leave it
		}
		frag := ""
		if i := strings.IndexByte(uri, '#'); i >= 0 {
			uri, frag = uri[:i], uri[i:]
		}
		target := path.Clean(path.Join(dir, uri))
		if strings.HasPrefix(target, "../") || target == ".." {
			return uri + frag
		}
		if path.Ext(target) == ".m3u8" {
			return s.mediaURL(lesson, target, q) + frag
		}
		return s.directURL(r.Context(), lesson, target, q) + frag
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	vtt := path.Ext(rel) == ".vtt"
	for sc.Scan() {
		line := sc.Text()
		switch {
		case vtt:
			if strings.Contains(line, "#xywh=") && !strings.Contains(line, "-->") {
				line = resolve(line)
			}
		case strings.HasPrefix(line, "#"):
			if i := strings.Index(line, `URI="`); i >= 0 {
				rest := line[i+5:]
				if j := strings.IndexByte(rest, '"'); j >= 0 {
					line = line[:i+5] + resolve(rest[:j]) + rest[j:]
				}
			}
		case strings.TrimSpace(line) != "":
			line = resolve(strings.TrimSpace(line))
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// playSpan is how long a playlist plays (the sum of its #EXTINF), or the
// end of a WebVTT track's last cue.
func playSpan(b []byte) time.Duration {
	var total, last float64
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "#EXTINF:"); ok {
			v, _, _ = strings.Cut(v, ",")
			if d, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && d > 0 && d < 3600 {
				total += d
			}
		} else if _, end, ok := strings.Cut(line, "-->"); ok {
			if d, ok := vttSeconds(strings.Fields(end)); ok && d > last {
				last = d
			}
		}
	}
	return time.Duration(math.Min(math.Max(total, last), 24*3600) * float64(time.Second))
}

// vttSeconds reads a WebVTT timestamp ([hh:]mm:ss.ttt), the first field.
func vttSeconds(fields []string) (float64, bool) {
	if len(fields) == 0 {
		return 0, false
	}
	var secs float64
	for _, p := range strings.Split(fields[0], ":") {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil {
			return 0, false
		}
		secs = secs*60 + v
	}
	return secs, true
}

// validMediaPath accepts the object names transcode writes (hls/720p/
// seg_00001.m4s, clips/<id>/poster.jpg): short, clean, slash-separated
// names of letters, digits, '.', '_' and '-' that do not start with a dot.
func validMediaPath(rel string) bool {
	if rel == "" || len(rel) > 256 || path.Clean("/"+rel) != "/"+rel {
		return false
	}
	for _, part := range strings.Split(rel, "/") {
		if part == "" || part[0] == '.' {
			return false
		}
		for _, r := range part {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
				return false
			}
		}
	}
	return true
}
