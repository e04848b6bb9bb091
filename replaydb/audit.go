package replaydb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// AuditEntry is one line of the audit log: who did what to which lesson's
// recording or to which token.
type AuditEntry struct {
	ID         int64 // set by the database; ignored by AppendAudit
	At         time.Time
	Actor      string // the token subject, or "system" (retention)
	Role       string
	Action     string // "lesson.delete", "lesson.rename", "lesson.download", "clip.create", "clip.delete", "course.put", "course.delete", "token.issue", "token.revoke", "retention.delete", ...
	Lesson     string
	Object     string // clip id, course id, token id, file
	Detail     string
	RemoteAddr string
}

// AuditFilter selects audit lines. The zero value is every line.
type AuditFilter struct {
	Lesson string    // only this lesson's lines ("" = all)
	Since  time.Time // only lines at or after it (zero = all)
	Limit  int       // at most this many (0 = no limit)
}

// AppendAudit adds a line (At defaults to now).
func (d *DB) AppendAudit(ctx context.Context, e AuditEntry) error {
	if e.Action == "" || e.Actor == "" {
		return errors.New("replaydb: append audit: an actor and an action are required")
	}
	if e.At.IsZero() {
		e.At = d.now()
	}
	_, err := d.db.ExecContext(ctx, `INSERT INTO audit (at, actor, role, action, lesson_id, object, detail, remote_addr)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		ms(e.At), e.Actor, e.Role, e.Action, e.Lesson, e.Object, e.Detail, e.RemoteAddr)
	if err != nil {
		return fmt.Errorf("replaydb: append audit %s by %s: %w", e.Action, e.Actor, err)
	}
	return nil
}

// ListAudit lists audit lines, newest first.
func (d *DB) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	var where []string
	var args []any
	if f.Lesson != "" {
		args = append(args, f.Lesson)
		where = append(where, fmt.Sprintf("lesson_id = $%d", len(args)))
	}
	if !f.Since.IsZero() {
		args = append(args, ms(f.Since))
		where = append(where, fmt.Sprintf("at >= $%d", len(args)))
	}
	q := "SELECT id, at, actor, role, action, lesson_id, object, detail, remote_addr FROM audit"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY at DESC, id DESC"
	if f.Limit > 0 {
		args = append(args, f.Limit)
		q += fmt.Sprintf(" LIMIT $%d", len(args))
	}
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("replaydb: list audit: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Role, &e.Action, &e.Lesson, &e.Object, &e.Detail, &e.RemoteAddr); err != nil {
			return nil, fmt.Errorf("replaydb: list audit: %w", err)
		}
		e.At = fromMS(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("replaydb: list audit: %w", err)
	}
	return out, nil
}
