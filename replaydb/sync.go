package replaydb

import (
	"context"
	"fmt"
)

// LessonIDs lists the id of every lesson, for comparing the catalog with
// what storage holds.
func (d *DB) LessonIDs(ctx context.Context) (map[string]bool, error) {
	rows, err := d.db.QueryContext(ctx, "SELECT id FROM lessons")
	if err != nil {
		return nil, fmt.Errorf("replaydb: list lesson ids: %w", err)
	}
	defer rows.Close()
	ids := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("replaydb: list lesson ids: %w", err)
		}
		ids[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("replaydb: list lesson ids: %w", err)
	}
	return ids, nil
}

// LessonsInProgress lists the lessons still recording, interrupted or
// processing, whose state storage may have moved on since they were
// indexed.
func (d *DB) LessonsInProgress(ctx context.Context) ([]LessonRecord, error) {
	return d.queryLessons(ctx, "list lessons in progress",
		"SELECT "+lessonColumns+" FROM lessons WHERE status IN ($1, $2, $3) ORDER BY started_at, id",
		StatusRecording, StatusInterrupted, StatusProcessing)
}
