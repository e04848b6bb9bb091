package vod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"podium/signaling/auth"
	"podium/storage"
)

// Catalog record keys (owned by vod).
func courseKey(id string) string     { return "catalog/courses/" + id + ".json" }
func lessonMetaKey(id string) string { return "catalog/lessons/" + id + ".json" }

// UnsortedCourse holds every lesson not put in a course.
const UnsortedCourse = "unsorted"

// CourseRecord is a course as stored.
type CourseRecord struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
}

// LessonMeta is what teachers edit about a lesson (stored).
type LessonMeta struct {
	Course string `json:"course,omitempty"`
	Title  string `json:"title,omitempty"`
}

// Course is a course in API answers.
type Course struct {
	CourseRecord
	LessonCount int `json:"lessonCount"`
}

// Lesson states in the catalog.
const (
	StatusRecording  = "recording"  // still being recorded
	StatusProcessing = "processing" // recorded, VOD not built yet
	StatusReady      = "ready"      // playable
)

// Chapter is a marker on a lesson's timeline.
type Chapter struct {
	Time  float64 `json:"time"` // seconds
	Type  string  `json:"type"` // "stage", "screenStart"
	Title string  `json:"title"`
}

// Lesson is a lesson in API answers. URLs are signed and short-lived.
type Lesson struct {
	ID         string      `json:"id"`
	Course     string      `json:"course"`
	Title      string      `json:"title"`
	Teacher    string      `json:"teacher"`
	Date       time.Time   `json:"date"`
	Duration   float64     `json:"duration"` // seconds
	Status     string      `json:"status"`
	Poster     string      `json:"poster,omitempty"`
	Thumbnails string      `json:"thumbnails,omitempty"`
	HLS        string      `json:"hls,omitempty"`
	Download   string      `json:"download,omitempty"`
	Renditions []Rendition `json:"renditions,omitempty"`
	Chapters   []Chapter   `json:"chapters,omitempty"`
	Clips      []Clip      `json:"clips,omitempty"`
}

// Clip is a micro-lecture clip in API answers.
type Clip struct {
	ID         string      `json:"id"`
	Lesson     string      `json:"lesson"`
	Title      string      `json:"title"`
	Start      float64     `json:"start"`
	End        float64     `json:"end"`
	Duration   float64     `json:"duration"`
	Poster     string      `json:"poster,omitempty"`
	Thumbnails string      `json:"thumbnails,omitempty"`
	HLS        string      `json:"hls,omitempty"`
	Download   string      `json:"download,omitempty"`
	Renditions []Rendition `json:"renditions,omitempty"`
}

// index is the catalog as read from storage at one moment.
type index struct {
	built   time.Time
	courses map[string]CourseRecord
	lessons map[string]*lessonEntry
}

type lessonEntry struct {
	id       string
	manifest *Manifest
	meta     LessonMeta
	assets   *Assets
	clips    map[string]*Assets
}

// load returns the catalog, rebuilding it when older than CacheTTL. Only
// objects that changed since the last build are read again.
func (s *Service) load(ctx context.Context) (*index, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.index != nil && s.now().Sub(s.index.built) < s.cfg.CacheTTL {
		return s.index, nil
	}
	ix := &index{built: s.now(), courses: map[string]CourseRecord{}, lessons: map[string]*lessonEntry{}}
	ix.courses[UnsortedCourse] = CourseRecord{ID: UnsortedCourse, Title: "Unsorted lessons"}
	objs, err := s.store.List(ctx, "catalog/")
	if err != nil {
		return nil, fmt.Errorf("list catalog: %w", err)
	}
	lessonObjs, err := s.store.List(ctx, "lessons/")
	if err != nil {
		return nil, fmt.Errorf("list lessons: %w", err)
	}
	objs = append(objs, lessonObjs...)
	live := map[string]bool{}
	entry := func(id string) *lessonEntry {
		e := ix.lessons[id]
		if e == nil {
			e = &lessonEntry{id: id, clips: map[string]*Assets{}}
			ix.lessons[id] = e
		}
		return e
	}
	metas := map[string]LessonMeta{}
	for _, o := range objs {
		parts := strings.Split(o.Key, "/")
		switch {
		case len(parts) == 3 && parts[0] == "catalog" && parts[1] == "courses":
			var c CourseRecord
			if s.decode(ctx, o, &c, live) && ValidID(c.ID) {
				ix.courses[c.ID] = c
			}
		case len(parts) == 3 && parts[0] == "catalog" && parts[1] == "lessons":
			var m LessonMeta
			if s.decode(ctx, o, &m, live) {
				metas[strings.TrimSuffix(parts[2], ".json")] = m
			}
		case len(parts) == 3 && parts[0] == "lessons" && parts[2] == "manifest.json" && ValidID(parts[1]):
			var m Manifest
			if s.decode(ctx, o, &m, live) {
				entry(parts[1]).manifest = &m
			}
		case len(parts) == 4 && parts[0] == "lessons" && parts[2] == "vod" && parts[3] == AssetsFile:
			var a Assets
			if s.decode(ctx, o, &a, live) {
				entry(parts[1]).assets = &a
			}
		case len(parts) == 6 && parts[0] == "lessons" && parts[2] == "vod" && parts[3] == "clips" && parts[5] == AssetsFile:
			var a Assets
			if s.decode(ctx, o, &a, live) {
				entry(parts[1]).clips[parts[4]] = &a
			}
		}
	}
	for id, e := range ix.lessons {
		if e.manifest == nil { // VOD left behind by a deleted recording
			delete(ix.lessons, id)
			continue
		}
		e.meta = metas[id]
	}
	for k := range s.cache {
		if !live[k] {
			delete(s.cache, k)
		}
	}
	s.index = ix
	return ix, nil
}

// decode reads a JSON record through the cache; a record that cannot be
// read is skipped (and logged) rather than failing the whole catalog.
func (s *Service) decode(ctx context.Context, o storage.ObjectInfo, v any, live map[string]bool) bool {
	live[o.Key] = true
	if c, ok := s.cache[o.Key]; ok && c.mod.Equal(o.LastModified) && c.size == o.Size {
		return json.Unmarshal(c.raw, v) == nil
	}
	rc, _, err := s.store.Get(ctx, o.Key)
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			s.log.Warn("vod: catalog record unreadable", "key", o.Key, "err", err)
		}
		return false
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 16<<20))
	if err != nil {
		s.log.Warn("vod: catalog record unreadable", "key", o.Key, "err", err)
		return false
	}
	if err := json.Unmarshal(b, v); err != nil {
		s.log.Warn("vod: catalog record corrupt", "key", o.Key, "err", err)
		return false
	}
	s.cache[o.Key] = cached{mod: o.LastModified, size: o.Size, raw: b}
	return true
}

// invalidate makes the next request rebuild the catalog.
func (s *Service) invalidate() {
	s.mu.Lock()
	s.index = nil
	s.mu.Unlock()
}

func (e *lessonEntry) course(ix *index) string {
	if _, ok := ix.courses[e.meta.Course]; ok && e.meta.Course != "" {
		return e.meta.Course
	}
	return UnsortedCourse
}

func (e *lessonEntry) title() string {
	switch {
	case e.meta.Title != "":
		return e.meta.Title
	case e.manifest.Title != "":
		return e.manifest.Title
	}
	return e.id
}

// view turns an entry into its API form, its URLs signed for g; full adds
// chapters, renditions and clips.
func (s *Service) view(ctx context.Context, ix *index, e *lessonEntry, full bool, g urlGrant) Lesson {
	m := e.manifest
	l := Lesson{ID: e.id, Course: e.course(ix), Title: e.title(), Teacher: m.Teacher, Date: m.StartedAt,
		Duration: math.Round(m.Duration().Seconds()*1000) / 1000}
	switch {
	case e.assets != nil:
		l.Status = StatusReady
	case m.Complete:
		l.Status = StatusProcessing
	default:
		l.Status = StatusRecording
	}
	q := g
	if a := e.assets; a != nil {
		l.Duration = a.Duration
		l.Poster = s.directURL(ctx, e.id, a.Poster, q)
		if full {
			l.HLS = s.mediaURL(e.id, a.Master, q)
			l.Thumbnails = s.mediaURL(e.id, a.Thumbnails, q)
			l.Download = s.directURL(ctx, e.id, a.Download, q)
			l.Renditions = a.Renditions
		}
	}
	if !full {
		return l
	}
	start := m.StartedAt
	if e.assets != nil && !e.assets.StartedAt.IsZero() {
		start = e.assets.StartedAt
	}
	l.Chapters = chapters(m.Events, start, l.Duration)
	ids := make([]string, 0, len(e.clips))
	for id := range e.clips {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		l.Clips = append(l.Clips, s.clipView(ctx, e.id, id, e.clips[id], q))
	}
	return l
}

func (s *Service) clipView(ctx context.Context, lesson, id string, a *Assets, q urlGrant) Clip {
	rel := "clips/" + id + "/"
	return Clip{ID: id, Lesson: lesson, Title: a.Title, Start: a.ClipStart, End: a.ClipEnd, Duration: a.Duration,
		Poster: s.directURL(ctx, lesson, rel+a.Poster, q), Thumbnails: s.mediaURL(lesson, rel+a.Thumbnails, q),
		HLS: s.mediaURL(lesson, rel+a.Master, q), Download: s.directURL(ctx, lesson, rel+a.Download, q),
		Renditions: a.Renditions}
}

// chapters makes markers of on-stage changes and screen-share starts.
func chapters(events []ManifestEvent, start time.Time, duration float64) []Chapter {
	var out []Chapter
	for _, ev := range events {
		t := math.Max(0, ev.Time.Sub(start).Seconds())
		if duration > 0 && t > duration {
			continue
		}
		var title string
		switch ev.Type {
		case "stage":
			title = "Back to the teacher"
			if ev.Participant != "" {
				title = "On stage: " + ev.Participant
			} else if ev.ParticipantID != "" {
				title = "On stage: " + ev.ParticipantID
			}
		case "screenStart":
			title = "Screen share"
			if ev.Participant != "" {
				title = "Screen share: " + ev.Participant
			}
		default:
			continue
		}
		out = append(out, Chapter{Time: math.Round(t*1000) / 1000, Type: ev.Type, Title: title})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time < out[j].Time })
	return out
}

// matches reports whether every word of q is in the lesson's title or
// teacher (case-insensitive).
func matches(l *Lesson, q string) bool {
	hay := strings.ToLower(l.Title + " " + l.Teacher)
	for _, w := range strings.Fields(strings.ToLower(q)) {
		if !strings.Contains(hay, w) {
			return false
		}
	}
	return true
}

// visible reports whether the caller may see the lesson in lists.
func visible(c *auth.Claims, ix *index, e *lessonEntry) bool {
	return c != nil && (c.SeesAll() || c.MayReplay(e.id, e.course(ix)))
}

// CourseOf is the course of a recorded lesson ("" when unknown or none),
// for the router's check of course-wide student grants.
func (s *Service) CourseOf(ctx context.Context, lesson string) string {
	ix, err := s.load(ctx)
	if err != nil {
		return ""
	}
	e := ix.lessons[lesson]
	if e == nil {
		return ""
	}
	if c := e.course(ix); c != UnsortedCourse {
		return c
	}
	return ""
}
