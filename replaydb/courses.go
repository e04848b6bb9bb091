package replaydb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Course groups lessons.
type Course struct {
	ID          string
	Title       string
	Description string
	LessonCount int       // read only: lessons filed in it
	UpdatedAt   time.Time // read only
}

// PutCourse creates or replaces a course (its lessons stay filed in it).
func (d *DB) PutCourse(ctx context.Context, c Course) error {
	if c.ID == "" {
		return errors.New("replaydb: put course: an id is required")
	}
	_, err := d.db.ExecContext(ctx, `INSERT INTO courses (id, title, description, updated_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (id) DO UPDATE SET title = excluded.title, description = excluded.description, updated_at = excluded.updated_at`,
		c.ID, c.Title, c.Description, ms(d.now()))
	if err != nil {
		return fmt.Errorf("replaydb: put course %s: %w", c.ID, err)
	}
	return nil
}

// DeleteCourse deletes a course; its lessons become unsorted.
func (d *DB) DeleteCourse(ctx context.Context, id string) error {
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		// The foreign key would unsort them too (ON DELETE SET NULL);
		// doing it here also marks them updated.
		if _, err := tx.ExecContext(ctx, "UPDATE lessons SET course_id = NULL, updated_at = $2 WHERE course_id = $1",
			id, ms(d.now())); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM courses WHERE id = $1", id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("replaydb: delete course %s: %w", id, err)
	}
	return nil
}

func scanCourse(row interface{ Scan(...any) error }) (Course, error) {
	var c Course
	var updated int64
	err := row.Scan(&c.ID, &c.Title, &c.Description, &updated, &c.LessonCount)
	c.UpdatedAt = fromMS(updated)
	return c, err
}

// GetCourse returns one course with its lesson count.
func (d *DB) GetCourse(ctx context.Context, id string) (Course, error) {
	c, err := scanCourse(d.db.QueryRowContext(ctx, `SELECT c.id, c.title, c.description, c.updated_at,
	(SELECT COUNT(*) FROM lessons l WHERE l.course_id = c.id)
FROM courses c WHERE c.id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Course{}, fmt.Errorf("replaydb: get course %s: %w", id, err)
	}
	return c, nil
}

// ListCourses lists every course with its lesson count, by title.
func (d *DB) ListCourses(ctx context.Context) ([]Course, error) {
	// One pass over the lessons' course index, not one count per course.
	rows, err := d.db.QueryContext(ctx, `SELECT c.id, c.title, c.description, c.updated_at, COALESCE(n.lessons, 0)
FROM courses c
LEFT JOIN (SELECT course_id, COUNT(*) AS lessons FROM lessons WHERE course_id IS NOT NULL GROUP BY course_id) n
	ON n.course_id = c.id
ORDER BY c.title, c.id`)
	if err != nil {
		return nil, fmt.Errorf("replaydb: list courses: %w", err)
	}
	defer rows.Close()
	var out []Course
	for rows.Next() {
		c, err := scanCourse(rows)
		if err != nil {
			return nil, fmt.Errorf("replaydb: list courses: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("replaydb: list courses: %w", err)
	}
	return out, nil
}
