package replaydb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// Lesson states.
const (
	StatusRecording  = "recording"  // still being recorded
	StatusProcessing = "processing" // recorded, replay not built yet
	StatusReady      = "ready"      // playable
	StatusFailed     = "failed"     // building the replay failed
	// StatusInterrupted: the recorder stopped before the lesson ended; the
	// recording resumes or is closed (then processed).
	StatusInterrupted = "interrupted"
	StatusEmpty       = "empty" // ended with nothing recorded
)

// LessonRecord is one lesson of the catalog.
//
// Titles: the database keeps the recorded title (the manifest's) and a
// teacher's rename in separate columns. UpsertLesson writes only the
// recorded one, SetLessonMeta only the rename, and every read returns the
// rename when there is one, else the recorded title. Re-indexing a manifest
// therefore never undoes a rename, and clearing the rename brings the
// recorded title back.
type LessonRecord struct {
	ID string
	// Title is the shown title on reads; on UpsertLesson, the recorded one.
	Title string
	// Course is the course the lesson is filed in, "" = unsorted.
	// UpsertLesson uses it only when it creates the lesson; after that only
	// SetLessonMeta and DeleteCourse change it.
	Course    string
	Teacher   string
	StartedAt time.Time
	EndedAt   time.Time // zero while recording
	Duration  float64   // seconds
	Status    string    // StatusRecording, ...
	UpdatedAt time.Time // read only: the last write to the row
}

// LessonFilter selects lessons for ListLessons and CountLessons.
//
// Lessons, Courses and All are what a token grants: All grants every
// lesson; otherwise, when Lessons or Courses is non-nil, only lessons whose
// id is in Lessons or whose course is in Courses are listed (non-nil but
// empty lists grant nothing). With All false and both lists nil nothing is
// restricted, so the zero filter lists everything: a caller holding a
// grant must pass its lists, never nil for "none".
type LessonFilter struct {
	Lessons []string
	Courses []string
	All     bool
	// Query keeps lessons where every word of it (split on spaces)
	// appears, case-insensitively, in the shown title or the teacher's
	// name, anywhere in a word ("geo" finds "Geometry").
	Query string
	// Course keeps the lessons filed in that course ("" = any).
	Course string
	Limit  int // at most this many (0 = no limit)
	Offset int // skip this many first
}

// maxFilterIDs bounds Lessons and Courses in a filter (each is one query
// parameter; SQLite takes 32766).
const maxFilterIDs = 10000

// maxSearchText bounds a lesson's search text, which is in an index:
// PostgreSQL refuses index entries above about 2.7 kB.
const maxSearchText = 1024

// searchText is what a lesson's words are looked up in: lower-cased (in
// Go, so non-ASCII letters fold the same on both backends) teacher and
// shown title, one per line so that no query word spans both, cut to
// maxSearchText bytes (the end of a very long title is not searched).
func searchText(title, teacher string) string {
	s := strings.ToLower(teacher + "\n" + title)
	if len(s) > maxSearchText {
		s = strings.ToValidUTF8(s[:maxSearchText], "")
	}
	return s
}

// likeWord is a LIKE pattern matching s anywhere (with ESCAPE '\').
func likeWord(s string) string {
	s = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
	return "%" + s + "%"
}

func validStatus(s string) bool {
	switch s {
	case StatusRecording, StatusProcessing, StatusReady, StatusFailed, StatusInterrupted, StatusEmpty:
		return true
	}
	return false
}

// UpsertLesson indexes what a recording manifest says about a lesson:
// it creates the lesson, or updates its recorded title, teacher, times,
// duration and status. It never changes a rename or the course of an
// existing lesson (see LessonRecord).
func (d *DB) UpsertLesson(ctx context.Context, l LessonRecord) error {
	if l.ID == "" {
		return errors.New("replaydb: upsert lesson: an id is required")
	}
	if !validStatus(l.Status) {
		return fmt.Errorf("replaydb: upsert lesson %s: unknown status %q", l.ID, l.Status)
	}
	if math.IsNaN(l.Duration) || math.IsInf(l.Duration, 0) || l.Duration < 0 {
		return fmt.Errorf("replaydb: upsert lesson %s: bad duration %g", l.ID, l.Duration)
	}
	now := ms(d.now())
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		course := sql.NullString{String: l.Course, Valid: l.Course != ""}
		res, err := tx.ExecContext(ctx, `INSERT INTO lessons
	(id, title, course_id, teacher, started_at, ended_at, duration, status, search, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (id) DO NOTHING`,
			l.ID, l.Title, course, l.Teacher, ms(l.StartedAt), nullMS(l.EndedAt), l.Duration, l.Status,
			searchText(l.Title, l.Teacher), now)
		if isForeignKeyViolation(err) {
			return fmt.Errorf("course %s: %w", l.Course, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			return nil // created
		}
		// It exists: keep its rename, so the search text is made from it.
		var edit sql.NullString
		if err := tx.QueryRowContext(ctx, "SELECT title_edit FROM lessons WHERE id = $1"+d.forUpdate(), l.ID).Scan(&edit); err != nil {
			return err
		}
		shown := l.Title
		if edit.Valid {
			shown = edit.String
		}
		_, err = tx.ExecContext(ctx, `UPDATE lessons SET title = $2, teacher = $3, started_at = $4, ended_at = $5,
	duration = $6, status = $7, search = $8, updated_at = $9
WHERE id = $1`,
			l.ID, l.Title, l.Teacher, ms(l.StartedAt), nullMS(l.EndedAt), l.Duration, l.Status,
			searchText(shown, l.Teacher), now)
		return err
	})
	if err != nil {
		return fmt.Errorf("replaydb: upsert lesson %s: %w", l.ID, err)
	}
	return nil
}

// SetLessonMeta applies what a teacher edits: a non-nil title renames the
// lesson ("" drops the rename, showing the recorded title again); a non-nil
// course files it in that course ("" = unsorted; ErrNotFound when the
// course does not exist). ErrNotFound when the lesson does not exist.
func (d *DB) SetLessonMeta(ctx context.Context, id string, title *string, course *string) error {
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		var recorded, teacher string
		var edit, courseID sql.NullString
		err := tx.QueryRowContext(ctx, "SELECT title, title_edit, teacher, course_id FROM lessons WHERE id = $1"+d.forUpdate(), id).
			Scan(&recorded, &edit, &teacher, &courseID)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if title != nil {
			edit = sql.NullString{String: *title, Valid: *title != ""}
		}
		if course != nil {
			courseID = sql.NullString{String: *course, Valid: *course != ""}
		}
		shown := recorded
		if edit.Valid {
			shown = edit.String
		}
		_, err = tx.ExecContext(ctx, "UPDATE lessons SET title_edit = $2, course_id = $3, search = $4, updated_at = $5 WHERE id = $1",
			id, edit, courseID, searchText(shown, teacher), ms(d.now()))
		if isForeignKeyViolation(err) {
			return fmt.Errorf("course %s: %w", courseID.String, ErrNotFound)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("replaydb: set lesson %s: %w", id, err)
	}
	return nil
}

const lessonColumns = `id, COALESCE(title_edit, title), COALESCE(course_id, ''), teacher,
	started_at, ended_at, duration, status, updated_at`

func scanLesson(row interface{ Scan(...any) error }) (LessonRecord, error) {
	var l LessonRecord
	var started, updated int64
	var ended sql.NullInt64
	err := row.Scan(&l.ID, &l.Title, &l.Course, &l.Teacher, &started, &ended, &l.Duration, &l.Status, &updated)
	l.StartedAt, l.EndedAt, l.UpdatedAt = fromMS(started), fromNullMS(ended), fromMS(updated)
	return l, err
}

// GetLesson returns one lesson.
func (d *DB) GetLesson(ctx context.Context, id string) (LessonRecord, error) {
	l, err := scanLesson(d.db.QueryRowContext(ctx, "SELECT "+lessonColumns+" FROM lessons WHERE id = $1", id))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return LessonRecord{}, fmt.Errorf("replaydb: get lesson %s: %w", id, err)
	}
	return l, nil
}

// DeleteLesson deletes a lesson and its clips (ErrNotFound when there is
// none). Its audit lines stay.
func (d *DB) DeleteLesson(ctx context.Context, id string) error {
	res, err := d.db.ExecContext(ctx, "DELETE FROM lessons WHERE id = $1", id)
	if err == nil {
		var n int64
		if n, err = res.RowsAffected(); err == nil && n == 0 {
			err = ErrNotFound
		}
	}
	if err != nil {
		return fmt.Errorf("replaydb: delete lesson %s: %w", id, err)
	}
	return nil
}

// maxSearchCandidates: a search whose words the SQLite trigram index finds
// in at most this many lessons reads those lessons by id; one with more
// walks the list index newest first instead, where a page of matches
// comes soon (50 of 200 in 100,000 lessons: a quarter of the walk). The
// index stops at the first maxSearchCandidates+1 matches: each costs it
// a check of the lesson's text, so a common word's probe stays small.
const maxSearchCandidates = 200

// searchCandidates returns, on SQLite, the ids of the lessons whose search
// text has every word of query that the trigram index can look up (three
// characters or more, no LIKE wildcard), and whether there is such a list:
// not when no word can use the index or more than maxSearchCandidates
// lessons match. The list only narrows: the search's own LIKE conditions
// still decide. (PostgreSQL's planner uses its trigram index by itself.)
func (d *DB) searchCandidates(ctx context.Context, query string) ([]string, bool, error) {
	if d.backend != SQLite {
		return nil, false, nil
	}
	var conds []string
	var args []any
	for _, w := range strings.Fields(strings.ToLower(query)) {
		// FTS5 answers LIKE without ESCAPE only.
		if utf8.RuneCountInString(w) < 3 || strings.ContainsAny(w, `%_\`) {
			continue
		}
		args = append(args, "%"+w+"%")
		conds = append(conds, fmt.Sprintf("search LIKE $%d", len(args)))
	}
	if len(conds) == 0 {
		return nil, false, nil
	}
	args = append(args, maxSearchCandidates+1)
	rows, err := d.db.QueryContext(ctx, "SELECT id FROM lessons_search WHERE "+strings.Join(conds, " AND ")+
		fmt.Sprintf(" LIMIT $%d", len(args)), args...)
	if err != nil {
		return nil, false, fmt.Errorf("search index: %w", err)
	}
	defer rows.Close()
	ids := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, false, fmt.Errorf("search index: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("search index: %w", err)
	}
	if len(ids) > maxSearchCandidates {
		return nil, false, nil
	}
	return ids, true, nil
}

// lessonWhere is the WHERE clause (with its leading " WHERE", or "") and
// the arguments of a filter. A search first asks the trigram index for its
// candidates (searchCandidates).
func (d *DB) lessonWhere(ctx context.Context, f LessonFilter) (string, []any, error) {
	if len(f.Lessons) > maxFilterIDs || len(f.Courses) > maxFilterIDs {
		return "", nil, fmt.Errorf("at most %d lessons and %d courses in a filter", maxFilterIDs, maxFilterIDs)
	}
	var conds []string
	var args []any
	// A list is one parameter, whatever its length: a JSON array SQLite
	// unpacks, a text[] on PostgreSQL. (As "$1, $2, ..." SQLite binds
	// n parameters in n² time: 10,000 lessons took half a second.)
	in := func(col string, ids []string) string {
		if d.backend == Postgres {
			args = append(args, ids)
			return fmt.Sprintf("%s = ANY($%d)", col, len(args))
		}
		b, _ := json.Marshal(ids) // []string always marshals
		args = append(args, string(b))
		return fmt.Sprintf("%s IN (SELECT value FROM json_each($%d))", col, len(args))
	}
	if !f.All && (f.Lessons != nil || f.Courses != nil) {
		var grant []string
		if len(f.Lessons) > 0 {
			grant = append(grant, in("id", f.Lessons))
		}
		if len(f.Courses) > 0 {
			grant = append(grant, in("course_id", f.Courses))
		}
		if len(grant) == 0 {
			grant = []string{"1 = 0"} // granted nothing
		}
		conds = append(conds, "("+strings.Join(grant, " OR ")+")")
	}
	if f.Course != "" {
		args = append(args, f.Course)
		conds = append(conds, fmt.Sprintf("course_id = $%d", len(args)))
	}
	only, ok, err := d.searchCandidates(ctx, f.Query)
	if err != nil {
		return "", nil, err
	}
	if ok {
		conds = append(conds, in("id", only))
	}
	for _, w := range strings.Fields(strings.ToLower(f.Query)) {
		args = append(args, likeWord(w))
		conds = append(conds, fmt.Sprintf(`search LIKE $%d ESCAPE '\'`, len(args)))
	}
	if len(conds) == 0 {
		return "", args, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

// ListLessons lists lessons newest first (started_at descending, then id).
func (d *DB) ListLessons(ctx context.Context, f LessonFilter) ([]LessonRecord, error) {
	where, args, err := d.lessonWhere(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("replaydb: list lessons: %w", err)
	}
	q := "SELECT " + lessonColumns + " FROM lessons" + where + " ORDER BY started_at DESC, id"
	switch {
	case f.Limit > 0:
		args = append(args, f.Limit, max(f.Offset, 0))
		q += fmt.Sprintf(" LIMIT $%d OFFSET $%d", len(args)-1, len(args))
	case f.Offset > 0 && d.backend == SQLite:
		args = append(args, f.Offset)
		q += fmt.Sprintf(" LIMIT -1 OFFSET $%d", len(args)) // SQLite has no OFFSET without LIMIT
	case f.Offset > 0:
		args = append(args, f.Offset)
		q += fmt.Sprintf(" OFFSET $%d", len(args))
	}
	return d.queryLessons(ctx, "list lessons", q, args...)
}

// CountLessons counts the lessons a filter selects, ignoring its Limit
// and Offset.
func (d *DB) CountLessons(ctx context.Context, f LessonFilter) (int, error) {
	where, args, err := d.lessonWhere(ctx, f)
	if err != nil {
		return 0, fmt.Errorf("replaydb: count lessons: %w", err)
	}
	var n int
	if err := d.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM lessons"+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("replaydb: count lessons: %w", err)
	}
	return n, nil
}

// LessonsStartedBefore lists the lessons that started before t, oldest
// first (what a retention policy deletes).
func (d *DB) LessonsStartedBefore(ctx context.Context, t time.Time) ([]LessonRecord, error) {
	return d.queryLessons(ctx, "list lessons started before "+t.UTC().Format(time.RFC3339),
		"SELECT "+lessonColumns+" FROM lessons WHERE started_at < $1 ORDER BY started_at, id", ms(t))
}

func (d *DB) queryLessons(ctx context.Context, what, q string, args ...any) ([]LessonRecord, error) {
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("replaydb: %s: %w", what, err)
	}
	defer rows.Close()
	var out []LessonRecord
	for rows.Next() {
		l, err := scanLesson(rows)
		if err != nil {
			return nil, fmt.Errorf("replaydb: %s: %w", what, err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("replaydb: %s: %w", what, err)
	}
	return out, nil
}
