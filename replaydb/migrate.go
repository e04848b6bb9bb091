package replaydb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// migration is one schema step. Steps are applied in order, each once and
// in its own transaction; step i (from 0) is schema version i+1. Never edit
// a released step: append a new one.
//
// The SQL is shared by both backends. The one thing they spell differently,
// an auto-numbered primary key, is written {{id}}; what only one backend
// has (an index kind) is in postgres or sqlite, run after sql.
type migration struct {
	name     string
	sql      string
	postgres string
	sqlite   string
}

var migrations = []migration{
	{
		name: "tokens and audit",
		sql: `
CREATE TABLE revocations (
	jti        TEXT PRIMARY KEY,
	expires_at BIGINT NOT NULL, -- the token's own expiry; the row can go after it
	revoked_at BIGINT NOT NULL,
	revoked_by TEXT NOT NULL DEFAULT '',
	reason     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX revocations_expires ON revocations (expires_at);

CREATE TABLE audit (
	id          {{id}},
	at          BIGINT NOT NULL,
	actor       TEXT NOT NULL,   -- token subject, or "system"
	role        TEXT NOT NULL DEFAULT '',
	action      TEXT NOT NULL,   -- "lesson.delete", "token.revoke", ...
	lesson_id   TEXT NOT NULL DEFAULT '',
	object      TEXT NOT NULL DEFAULT '',
	detail      TEXT NOT NULL DEFAULT '',
	remote_addr TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_at ON audit (at DESC, id DESC);
CREATE INDEX audit_lesson_at ON audit (lesson_id, at DESC, id DESC);
`,
	},
	{
		name: "catalog",
		sql: `
CREATE TABLE courses (
	id          TEXT PRIMARY KEY,
	title       TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	updated_at  BIGINT NOT NULL
);

CREATE TABLE lessons (
	id         TEXT PRIMARY KEY,
	title      TEXT NOT NULL DEFAULT '', -- as recorded (the manifest's)
	title_edit TEXT,                     -- a teacher's rename; NULL = none
	course_id  TEXT REFERENCES courses (id) ON DELETE SET NULL, -- NULL = unsorted
	teacher    TEXT NOT NULL DEFAULT '',
	started_at BIGINT NOT NULL,
	ended_at   BIGINT,                   -- NULL while recording
	duration   DOUBLE PRECISION NOT NULL DEFAULT 0, -- seconds
	status     TEXT NOT NULL,            -- recording, processing, ready, failed
	search     TEXT NOT NULL DEFAULT '', -- lower-cased shown title and teacher
	updated_at BIGINT NOT NULL
);
-- Newest first, and search: the search text in the index lets a search
-- walk it in order, checking each lesson's words without reading the row.
CREATE INDEX lessons_started ON lessons (started_at DESC, id, search);
CREATE INDEX lessons_course_started ON lessons (course_id, started_at DESC, id);

CREATE TABLE clips (
	lesson_id  TEXT NOT NULL REFERENCES lessons (id) ON DELETE CASCADE,
	id         TEXT NOT NULL,
	title      TEXT NOT NULL DEFAULT '',
	start_s    DOUBLE PRECISION NOT NULL,
	end_s      DOUBLE PRECISION NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (lesson_id, id)
);
`,
	},
	{
		name: "tracks and chapters",
		sql: `
CREATE TABLE lesson_tracks (
	lesson_id   TEXT NOT NULL REFERENCES lessons (id) ON DELETE CASCADE,
	id          TEXT NOT NULL,
	participant TEXT NOT NULL DEFAULT '', -- display name
	role        TEXT NOT NULL DEFAULT '', -- teacher, classroom, source
	kind        TEXT NOT NULL,            -- audio, video
	source      TEXT NOT NULL DEFAULT '', -- camera, microphone, screen, ...
	codec       TEXT NOT NULL DEFAULT '',
	segments    INTEGER NOT NULL DEFAULT 0,
	recorded_s  DOUBLE PRECISION NOT NULL DEFAULT 0, -- seconds of media recorded
	PRIMARY KEY (lesson_id, id)
);

CREATE TABLE chapters (
	lesson_id TEXT NOT NULL REFERENCES lessons (id) ON DELETE CASCADE,
	seq       INTEGER NOT NULL,
	time_s    DOUBLE PRECISION NOT NULL,
	type      TEXT NOT NULL,
	title     TEXT NOT NULL,
	PRIMARY KEY (lesson_id, seq)
);
`,
	},
	{
		// A search for a word few lessons have would otherwise read the
		// whole list index. Both indexes answer LIKE '%word%' for words
		// of three letters or more (see searchCandidates).
		name: "search index",
		postgres: `
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX lessons_search_trgm ON lessons USING gin (search gin_trgm_ops);
`,
		// The index keeps its own copy of the search text, keyed by the
		// lesson id (not the rowid, which VACUUM may renumber).
		sqlite: `
CREATE VIRTUAL TABLE lessons_search USING fts5(id UNINDEXED, search, tokenize = 'trigram');
INSERT INTO lessons_search (id, search) SELECT id, search FROM lessons;
CREATE TRIGGER lessons_search_insert AFTER INSERT ON lessons BEGIN
	INSERT INTO lessons_search (id, search) VALUES (new.id, new.search);
END;
CREATE TRIGGER lessons_search_update AFTER UPDATE OF search ON lessons WHEN old.search IS NOT new.search BEGIN
	DELETE FROM lessons_search WHERE id = old.id;
	INSERT INTO lessons_search (id, search) VALUES (new.id, new.search);
END;
CREATE TRIGGER lessons_search_delete AFTER DELETE ON lessons BEGIN
	DELETE FROM lessons_search WHERE id = old.id;
END;
`,
	},
}

// schemaLockKey is the PostgreSQL advisory lock migrations hold (any
// constant shared by every node; this one is "podiumdb" in ASCII).
const schemaLockKey = 0x706f6469756d6462

// stepSQL is a step's SQL for this backend.
func (d *DB) stepSQL(m migration) string {
	id := "INTEGER PRIMARY KEY AUTOINCREMENT"
	if d.backend == Postgres {
		id = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
	}
	own := m.sqlite
	if d.backend == Postgres {
		own = m.postgres
	}
	return strings.ReplaceAll(m.sql, "{{id}}", id) + own
}

// migrate applies the steps the database has not seen and returns how many
// it applied. All of it runs on one connection: on PostgreSQL that
// connection holds a session advisory lock throughout, so a second node
// starting at the same moment waits, then finds every step applied. On
// SQLite each step's transaction takes the write lock as it begins, and a
// step checks whether it was applied inside that transaction.
func (d *DB) migrate(ctx context.Context, steps []migration) (applied int, err error) {
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("connection: %w", err)
	}
	defer conn.Close()

	if d.backend == Postgres {
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", int64(schemaLockKey)); err != nil {
			return 0, fmt.Errorf("take schema lock: %w", err)
		}
		defer func() {
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if _, uerr := conn.ExecContext(uctx, "SELECT pg_advisory_unlock($1)", int64(schemaLockKey)); uerr != nil {
				// Never hand a connection that may still hold the lock
				// back to the pool: make database/sql close it.
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}()
	}

	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at BIGINT NOT NULL
)`); err != nil {
		return 0, fmt.Errorf("create schema_migrations: %w", err)
	}

	for i, step := range steps {
		version := i + 1
		done, err := d.applyStep(ctx, conn, version, step)
		if err != nil {
			return applied, fmt.Errorf("step %d (%s): %w", version, step.name, err)
		}
		if done {
			applied++
			slog.Info("replaydb: schema step applied", "backend", d.backend, "version", version, "step", step.name)
		}
	}

	var newest sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT MAX(version) FROM schema_migrations").Scan(&newest); err != nil {
		return applied, fmt.Errorf("read schema version: %w", err)
	}
	if newest.Valid && newest.Int64 > int64(len(steps)) {
		// A newer Podium migrated this database (a rolling upgrade).
		// Steps only add, so this version keeps working; say so.
		slog.Warn("replaydb: database schema is newer than this program",
			"backend", d.backend, "database", newest.Int64, "program", len(steps))
	}
	return applied, nil
}

// applyStep runs one step in a transaction unless schema_migrations says
// it ran, and reports whether it ran it.
func (d *DB) applyStep(ctx context.Context, conn *sql.Conn, version int, step migration) (bool, error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit

	var n int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations WHERE version = $1", version).Scan(&n); err != nil {
		return false, fmt.Errorf("read schema_migrations: %w", err)
	}
	if n > 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, d.stepSQL(step)); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
		version, step.name, d.now().UnixMilli()); err != nil {
		return false, fmt.Errorf("record step: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return true, nil
}
