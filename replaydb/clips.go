package replaydb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"
)

// Clip is a stretch of a lesson kept as its own video. Clips go with their
// lesson (DeleteLesson).
type Clip struct {
	Lesson    string
	ID        string
	Title     string
	Start     float64   // seconds from the lesson's start
	End       float64   // seconds, > Start
	CreatedAt time.Time // read only
}

// PutClip creates or replaces a clip of an existing lesson (ErrNotFound
// when the lesson does not exist).
func (d *DB) PutClip(ctx context.Context, c Clip) error {
	if c.Lesson == "" || c.ID == "" {
		return errors.New("replaydb: put clip: a lesson and an id are required")
	}
	if math.IsNaN(c.Start) || math.IsInf(c.Start, 0) || math.IsNaN(c.End) || math.IsInf(c.End, 0) ||
		c.Start < 0 || c.End <= c.Start {
		return fmt.Errorf("replaydb: put clip %s/%s: want 0 <= start < end, got %g..%g", c.Lesson, c.ID, c.Start, c.End)
	}
	_, err := d.db.ExecContext(ctx, `INSERT INTO clips (lesson_id, id, title, start_s, end_s, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (lesson_id, id) DO UPDATE SET title = excluded.title, start_s = excluded.start_s, end_s = excluded.end_s`,
		c.Lesson, c.ID, c.Title, c.Start, c.End, ms(d.now()))
	if isForeignKeyViolation(err) {
		err = fmt.Errorf("lesson %s: %w", c.Lesson, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("replaydb: put clip %s/%s: %w", c.Lesson, c.ID, err)
	}
	return nil
}

// DeleteClip deletes one clip (ErrNotFound when there is none).
func (d *DB) DeleteClip(ctx context.Context, lesson, id string) error {
	res, err := d.db.ExecContext(ctx, "DELETE FROM clips WHERE lesson_id = $1 AND id = $2", lesson, id)
	if err == nil {
		var n int64
		if n, err = res.RowsAffected(); err == nil && n == 0 {
			err = ErrNotFound
		}
	}
	if err != nil {
		return fmt.Errorf("replaydb: delete clip %s/%s: %w", lesson, id, err)
	}
	return nil
}

const clipColumns = "lesson_id, id, title, start_s, end_s, created_at"

func scanClip(row interface{ Scan(...any) error }) (Clip, error) {
	var c Clip
	var created int64
	err := row.Scan(&c.Lesson, &c.ID, &c.Title, &c.Start, &c.End, &created)
	c.CreatedAt = fromMS(created)
	return c, err
}

// GetClip returns one clip.
func (d *DB) GetClip(ctx context.Context, lesson, id string) (Clip, error) {
	c, err := scanClip(d.db.QueryRowContext(ctx, "SELECT "+clipColumns+" FROM clips WHERE lesson_id = $1 AND id = $2", lesson, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Clip{}, fmt.Errorf("replaydb: get clip %s/%s: %w", lesson, id, err)
	}
	return c, nil
}

// ListClips lists a lesson's clips by start time (none for a lesson that
// does not exist).
func (d *DB) ListClips(ctx context.Context, lesson string) ([]Clip, error) {
	rows, err := d.db.QueryContext(ctx, "SELECT "+clipColumns+" FROM clips WHERE lesson_id = $1 ORDER BY start_s, id", lesson)
	if err != nil {
		return nil, fmt.Errorf("replaydb: list clips of %s: %w", lesson, err)
	}
	defer rows.Close()
	var out []Clip
	for rows.Next() {
		c, err := scanClip(rows)
		if err != nil {
			return nil, fmt.Errorf("replaydb: list clips of %s: %w", lesson, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("replaydb: list clips of %s: %w", lesson, err)
	}
	return out, nil
}
