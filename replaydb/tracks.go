package replaydb

import (
	"context"
	"database/sql"
	"fmt"
)

// Track is one recorded track of a lesson and how much of it storage holds.
type Track struct {
	ID          string
	Participant string // display name
	Role        string // teacher, classroom, source
	Kind        string // audio, video
	Source      string // camera, microphone, screen, ...
	Codec       string
	Segments    int
	Recorded    float64 // seconds of media recorded
}

// Chapter is a marker on a lesson's timeline.
type Chapter struct {
	Time  float64 // seconds from the lesson's start
	Type  string  // "stage", "screenStart"
	Title string
}

// SetLessonDetail replaces a lesson's tracks and chapters (as its manifest
// says now), in one transaction. The lesson must exist (ErrNotFound).
func (d *DB) SetLessonDetail(ctx context.Context, lesson string, tracks []Track, chapters []Chapter) error {
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, "SELECT 1 FROM lessons WHERE id = $1", lesson).Scan(&one); err != nil {
			if err == sql.ErrNoRows {
				return ErrNotFound
			}
			return err
		}
		for _, q := range []string{"DELETE FROM lesson_tracks WHERE lesson_id = $1", "DELETE FROM chapters WHERE lesson_id = $1"} {
			if _, err := tx.ExecContext(ctx, q, lesson); err != nil {
				return err
			}
		}
		// Upserts: two nodes indexing the same lesson at once each delete
		// what they see, and on PostgreSQL the one that commits second does
		// not see the other's rows (read committed), so plain inserts failed
		// with a duplicate key for minutes.
		for _, t := range tracks {
			if _, err := tx.ExecContext(ctx, `INSERT INTO lesson_tracks
(lesson_id, id, participant, role, kind, source, codec, segments, recorded_s) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (lesson_id, id) DO UPDATE SET participant = excluded.participant, role = excluded.role, kind = excluded.kind,
source = excluded.source, codec = excluded.codec, segments = excluded.segments, recorded_s = excluded.recorded_s`,
				lesson, t.ID, t.Participant, t.Role, t.Kind, t.Source, t.Codec, t.Segments, t.Recorded); err != nil {
				return err
			}
		}
		for i, c := range chapters {
			if _, err := tx.ExecContext(ctx, `INSERT INTO chapters (lesson_id, seq, time_s, type, title) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (lesson_id, seq) DO UPDATE SET time_s = excluded.time_s, type = excluded.type, title = excluded.title`,
				lesson, i, c.Time, c.Type, c.Title); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("replaydb: set tracks and chapters of %s: %w", lesson, err)
	}
	return nil
}

// LessonTracks lists a lesson's recorded tracks by id.
func (d *DB) LessonTracks(ctx context.Context, lesson string) ([]Track, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT id, participant, role, kind, source, codec, segments, recorded_s
FROM lesson_tracks WHERE lesson_id = $1 ORDER BY id`, lesson)
	if err != nil {
		return nil, fmt.Errorf("replaydb: tracks of %s: %w", lesson, err)
	}
	defer rows.Close()
	var out []Track
	for rows.Next() {
		var t Track
		if err := rows.Scan(&t.ID, &t.Participant, &t.Role, &t.Kind, &t.Source, &t.Codec, &t.Segments, &t.Recorded); err != nil {
			return nil, fmt.Errorf("replaydb: tracks of %s: %w", lesson, err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// LessonChapters lists a lesson's chapters in time order.
func (d *DB) LessonChapters(ctx context.Context, lesson string) ([]Chapter, error) {
	rows, err := d.db.QueryContext(ctx, "SELECT time_s, type, title FROM chapters WHERE lesson_id = $1 ORDER BY seq", lesson)
	if err != nil {
		return nil, fmt.Errorf("replaydb: chapters of %s: %w", lesson, err)
	}
	defer rows.Close()
	var out []Chapter
	for rows.Next() {
		var c Chapter
		if err := rows.Scan(&c.Time, &c.Type, &c.Title); err != nil {
			return nil, fmt.Errorf("replaydb: chapters of %s: %w", lesson, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
