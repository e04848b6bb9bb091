package vod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"podium/replaydb"
	"podium/signaling/auth"
	"podium/storage"
)

// UnsortedCourse holds every lesson not put in a course.
const UnsortedCourse = "unsorted"

// CourseRecord is a course as stored.
type CourseRecord struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
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
	StatusFailed     = "failed"     // recorded, but no replay can be built (Lesson.Error says why)
	// StatusInterrupted: the recorder stopped before the lesson ended (its
	// node restarted, crashed or lost storage); the recording resumes with
	// the lesson, or is closed at its last media and then transcoded.
	StatusInterrupted = "interrupted"
	StatusEmpty       = "empty" // the lesson ended with nothing recorded: no replay, no job
)

// nothingRecorded is an empty lesson's Error.
const nothingRecorded = "nothing was recorded"

// Chapter is a marker on a lesson's timeline.
type Chapter struct {
	Time  float64 `json:"time"` // seconds
	Type  string  `json:"type"` // "stage", "screenStart", "screenStop"
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
	Error      string      `json:"error,omitempty"` // why a failed lesson has no replay
	Poster     string      `json:"poster,omitempty"`
	Thumbnails string      `json:"thumbnails,omitempty"`
	HLS        string      `json:"hls,omitempty"`
	Playback   string      `json:"playback,omitempty"` // what HLS plays: PlaybackTranscoded, else PlaybackRaw(Audio); "" none yet
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

// lessonEntry is one lesson as storage holds it (the recorder's manifest,
// transcode's assets) joined with its catalog row (title, course).
type lessonEntry struct {
	id       string
	manifest *Manifest
	assets   *Assets
	clips    map[string]*Assets
	record   replaydb.LessonRecord
	failure  string // why no replay can be built ("" when none is known)
}

func (e *lessonEntry) course() string {
	if e.record.Course == "" {
		return UnsortedCourse
	}
	return e.record.Course
}

func (e *lessonEntry) title() string {
	if e.record.Title != "" {
		return e.record.Title
	}
	return e.id
}

// status is the lesson's state as storage says.
func (e *lessonEntry) status() string {
	switch {
	case e.assets != nil:
		return StatusReady
	case e.manifest.Complete && e.manifest.Empty():
		return StatusEmpty
	case e.manifest.Complete && e.failure != "":
		return StatusFailed
	case e.manifest.Complete:
		return StatusProcessing
	case e.manifest.State == StatusInterrupted:
		return StatusInterrupted
	default:
		return StatusRecording
	}
}

// readLesson reads a lesson from storage (ErrNotFound without a manifest)
// and indexes what it read in the catalog, so the catalog follows what the
// recorder and transcode wrote.
func (s *Service) readLesson(ctx context.Context, id string) (*lessonEntry, error) {
	e := &lessonEntry{id: id, clips: map[string]*Assets{}}
	var m Manifest
	if err := s.getJSON(ctx, "lessons/"+id+"/manifest.json", &m); err != nil {
		return nil, err
	}
	e.manifest = &m
	var a Assets
	switch err := s.getJSON(ctx, LessonBase(id)+AssetsFile, &a); {
	case err == nil:
		e.assets = &a
	case !errors.Is(err, storage.ErrNotFound):
		return nil, err
	}
	if e.assets == nil && m.Complete && m.Empty() {
		e.failure = nothingRecorded
	} else if e.assets == nil && m.Complete && s.cfg.TranscodeFailure != nil {
		if reason, failed := s.cfg.TranscodeFailure(ctx, id); failed {
			e.failure = reason
		}
	}
	clipIDs, err := s.store.ListDirs(ctx, LessonBase(id)+"clips/")
	if err != nil {
		return nil, fmt.Errorf("list clips of %s: %w", id, err)
	}
	for _, c := range clipIDs {
		var ca Assets
		if err := s.getJSON(ctx, ClipBase(id, c)+AssetsFile, &ca); err == nil {
			e.clips[c] = &ca
		}
	}
	rec := replaydb.LessonRecord{ID: id, Title: m.Title, Teacher: m.Teacher, StartedAt: m.StartedAt, EndedAt: m.EndedAt,
		Duration: math.Round(m.Duration().Seconds()*1000) / 1000, Status: e.status()}
	if e.assets != nil {
		rec.Duration = e.assets.Duration
	}
	prev, err := s.db.GetLesson(ctx, id)
	if err != nil && !errors.Is(err, replaydb.ErrNotFound) {
		return nil, fmt.Errorf("index lesson %s: %w", id, err)
	}
	// A ready lesson's recording and replay do not change: reading it
	// (every student's view) writes nothing but clip changes.
	if err == nil && prev.Status == StatusReady && rec.Status == StatusReady {
		e.record = prev
	} else {
		if err := s.db.UpsertLesson(ctx, rec); err != nil {
			return nil, fmt.Errorf("index lesson %s: %w", id, err)
		}
		if e.record, err = s.db.GetLesson(ctx, id); err != nil {
			return nil, fmt.Errorf("index lesson %s: %w", id, err)
		}
		if err := s.indexDetail(ctx, e, rec.Duration); err != nil {
			return nil, fmt.Errorf("index lesson %s: %w", id, err)
		}
	}
	if err := s.indexClips(ctx, e); err != nil {
		return nil, fmt.Errorf("index lesson %s: %w", id, err)
	}
	return e, nil
}

// indexDetail keeps the lesson's tracks (and how much of each is
// recorded) and chapters in the catalog as its manifest says.
func (s *Service) indexDetail(ctx context.Context, e *lessonEntry, duration float64) error {
	tracks := make([]replaydb.Track, 0, len(e.manifest.Tracks))
	for _, t := range e.manifest.Tracks {
		var rec time.Duration
		for _, seg := range t.Segments {
			rec += seg.Duration
		}
		tracks = append(tracks, replaydb.Track{ID: t.ID, Participant: t.Participant, Role: t.Role, Kind: t.Kind,
			Source: t.Source, Codec: t.Codec, Segments: len(t.Segments), Recorded: math.Round(rec.Seconds()*1000) / 1000})
	}
	var chs []replaydb.Chapter
	for _, c := range lessonChapters(e.manifest, e.assets, e.timelineStart(), duration) {
		chs = append(chs, replaydb.Chapter{Time: c.Time, Type: c.Type, Title: c.Title})
	}
	return s.db.SetLessonDetail(ctx, e.id, tracks, chs)
}

// indexClips makes the catalog's clips of a lesson those storage holds,
// writing only what differs.
func (s *Service) indexClips(ctx context.Context, e *lessonEntry) error {
	indexed, err := s.db.ListClips(ctx, e.id)
	if err != nil {
		return err
	}
	for _, c := range indexed {
		if e.clips[c.ID] == nil {
			if err := s.db.DeleteClip(ctx, e.id, c.ID); err != nil && !errors.Is(err, replaydb.ErrNotFound) {
				return err
			}
		}
	}
	for id, a := range e.clips {
		if !(a.ClipEnd > a.ClipStart && a.ClipStart >= 0) || slices.ContainsFunc(indexed, func(c replaydb.Clip) bool { return c.ID == id }) {
			continue
		}
		if err := s.db.PutClip(ctx, replaydb.Clip{Lesson: e.id, ID: id, Title: a.Title, Start: a.ClipStart, End: a.ClipEnd}); err != nil {
			return err
		}
	}
	return nil
}

// timelineStart is the wall-clock time of the replay's t=0.
func (e *lessonEntry) timelineStart() time.Time {
	if e.assets != nil && !e.assets.StartedAt.IsZero() {
		return e.assets.StartedAt
	}
	if t, ok := rawTimelineStart(e.manifest); e.assets == nil && ok {
		return t // the raw replay plays until the transcoded one is ready
	}
	return e.manifest.StartedAt
}

// getJSON reads a small JSON object.
func (s *Service) getJSON(ctx context.Context, key string, v any) error {
	rc, _, err := s.store.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 16<<20))
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s is corrupt: %w", key, err)
	}
	return nil
}

// Sync brings the catalog up to what storage holds: lessons it does not
// know yet (recorded by another node, or by an older version) are imported
// when importAll is set, and lessons still recording or processing are read
// again. It lists lesson names, never their segments.
func (s *Service) Sync(ctx context.Context, importAll bool) error {
	var ids []string
	if importAll {
		if err := s.importLegacyCatalog(ctx); err != nil {
			return fmt.Errorf("catalog sync: %w", err)
		}
		onDisk, err := s.store.ListDirs(ctx, "lessons/")
		if err != nil {
			return fmt.Errorf("catalog sync: %w", err)
		}
		known, err := s.db.LessonIDs(ctx)
		if err != nil {
			return fmt.Errorf("catalog sync: %w", err)
		}
		for _, id := range onDisk {
			if !known[id] && ValidID(id) {
				ids = append(ids, id)
			}
		}
	}
	active, err := s.db.LessonsInProgress(ctx)
	if err != nil {
		return fmt.Errorf("catalog sync: %w", err)
	}
	for _, l := range active {
		ids = append(ids, l.ID)
	}
	expected := s.takeExpected()
	ids = append(ids, expected...)
	var errs []error
	for _, id := range ids {
		_, err := s.readLesson(ctx, id)
		switch {
		case errors.Is(err, storage.ErrNotFound) && slices.Contains(expected, id):
			s.Expect(id) // its recorder has not written the manifest yet
		case errors.Is(err, storage.ErrNotFound):
			// A lesson dir without a manifest (being deleted, or VOD left
			// behind): not in the catalog.
			if derr := s.db.DeleteLesson(ctx, id); derr != nil && !errors.Is(derr, replaydb.ErrNotFound) {
				errs = append(errs, derr)
			}
		case err != nil:
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// importLegacyCatalog moves what versions before the replay database kept
// in storage (catalog/courses/{id}.json, catalog/lessons/{id}.json: course
// records, teachers' titles and course choices) into the database, then
// deletes those objects. What the database holds already wins.
func (s *Service) importLegacyCatalog(ctx context.Context) error {
	objs, err := s.store.List(ctx, "catalog/")
	if err != nil || len(objs) == 0 {
		return err
	}
	// Courses first: lesson records name them.
	sort.Slice(objs, func(i, j int) bool { return objs[i].Key < objs[j].Key })
	for _, o := range objs {
		parts := strings.Split(o.Key, "/")
		if len(parts) != 3 || !strings.HasSuffix(parts[2], ".json") {
			continue
		}
		id := strings.TrimSuffix(parts[2], ".json")
		switch parts[1] {
		case "courses":
			var c CourseRecord
			if err := s.getJSON(ctx, o.Key, &c); err != nil || !ValidID(id) {
				s.log.Warn("vod: legacy course record skipped", "key", o.Key, "err", err)
				break
			}
			if _, err := s.db.GetCourse(ctx, id); errors.Is(err, replaydb.ErrNotFound) {
				if err := s.db.PutCourse(ctx, replaydb.Course{ID: id, Title: c.Title, Description: c.Description}); err != nil {
					return err
				}
			}
		case "lessons":
			var m struct{ Course, Title string }
			if err := s.getJSON(ctx, o.Key, &m); err != nil || !ValidID(id) {
				s.log.Warn("vod: legacy lesson record skipped", "key", o.Key, "err", err)
				break
			}
			if _, err := s.readLesson(ctx, id); errors.Is(err, storage.ErrNotFound) {
				break // its recording is gone
			} else if err != nil {
				return err
			}
			var title, course *string
			if m.Title != "" {
				title = &m.Title
			}
			if _, err := s.db.GetCourse(ctx, m.Course); err == nil {
				course = &m.Course
			}
			if err := s.db.SetLessonMeta(ctx, id, title, course); err != nil {
				return err
			}
		default:
			continue
		}
		if err := s.store.Delete(ctx, o.Key); err != nil {
			return err
		}
		s.log.Info("vod: imported a catalog record of an older version", "key", o.Key)
	}
	return nil
}

// expectFor is how long an expected lesson is looked for.
const expectFor = 2 * time.Minute

// Expect tells the catalog that a lesson is starting on this node, so that
// it appears within one sync interval rather than at the next import.
func (s *Service) Expect(lesson string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.expected[lesson]; !ok {
		s.expected[lesson] = s.now().Add(expectFor)
	}
}

// takeExpected returns the expected lessons still worth looking for and
// forgets them (Sync puts back those not found yet).
func (s *Service) takeExpected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	now := s.now()
	for id, until := range s.expected {
		if now.Before(until) {
			out = append(out, id)
		}
		delete(s.expected, id)
	}
	return out
}

// RunSync keeps the catalog in step with storage until ctx ends: lessons in
// progress every interval, a full import every importEvery.
func (s *Service) RunSync(ctx context.Context, interval, importEvery time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastImport time.Time
	for {
		full := time.Since(lastImport) >= importEvery
		if err := s.Sync(ctx, full); err != nil && ctx.Err() == nil {
			s.log.Warn("vod: catalog sync incomplete", "err", err)
		} else if full {
			lastImport = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// view turns an entry into its API form, its URLs signed for g; full adds
// chapters, renditions and clips.
func (s *Service) view(ctx context.Context, e *lessonEntry, full bool, g urlGrant) Lesson {
	m := e.manifest
	l := Lesson{ID: e.id, Course: e.course(), Title: e.title(), Teacher: m.Teacher, Date: m.StartedAt,
		Duration: math.Round(m.Duration().Seconds()*1000) / 1000, Status: e.status(), Error: e.failure}
	q := g
	if a := e.assets; a != nil {
		l.Duration = a.Duration
		l.Poster = s.directURL(ctx, e.id, a.Poster, q)
		if full {
			l.HLS = s.mediaURL(e.id, a.Master, q)
			l.Thumbnails = s.mediaURL(e.id, a.Thumbnails, q)
			l.Download = s.directURL(ctx, e.id, a.Download, q)
			l.Renditions = a.Renditions
			l.Playback = PlaybackTranscoded
		}
	} else if full {
		s.rawView(&l, e, q)
	}
	if !full {
		return l
	}
	l.Chapters = lessonChapters(m, e.assets, e.timelineStart(), l.Duration)
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

// summary is a lesson in lists, from its catalog row alone (no storage
// read): a ready lesson's poster is transcode's PosterFile.
func (s *Service) summary(ctx context.Context, r replaydb.LessonRecord, g urlGrant) Lesson {
	l := Lesson{ID: r.ID, Course: r.Course, Title: r.Title, Teacher: r.Teacher, Date: r.StartedAt, Duration: r.Duration, Status: r.Status}
	if l.Course == "" {
		l.Course = UnsortedCourse
	}
	if l.Title == "" {
		l.Title = r.ID
	}
	if l.Status == StatusReady {
		l.Poster = s.directURL(ctx, r.ID, PosterFile, g)
	}
	return l
}

// filterFor is what the caller may list.
func filterFor(c *auth.Claims) replaydb.LessonFilter {
	switch {
	case c == nil:
		return replaydb.LessonFilter{Lessons: []string{}} // nothing
	case c.SeesAll():
		return replaydb.LessonFilter{All: true}
	case c.Role == auth.RoleStudent && c.Replay != nil:
		return replaydb.LessonFilter{Lessons: nonNil(c.Replay.Lessons), Courses: nonNil(c.Replay.Courses)}
	default:
		return replaydb.LessonFilter{Lessons: []string{c.Room}}
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// CourseOf is the course of a recorded lesson ("" when unknown or none),
// for the router's check of course-wide student grants.
func (s *Service) CourseOf(ctx context.Context, lesson string) string {
	r, err := s.db.GetLesson(ctx, lesson)
	if err != nil {
		return ""
	}
	return r.Course
}
