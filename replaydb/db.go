// Package replaydb is the one SQL database of Podium's replay side: the
// catalog (courses, lessons indexed from their recording manifests, clips),
// revoked tokens and the audit log. It is embedded SQLite by default (a file
// in the data directory, pure Go, no setup) and PostgreSQL when nodes share
// one; the same SQL runs on both.
//
// It is plain SQL, one method per query, with versioned migrations (an
// ordered list in migrate.go) run at Open. It knows nothing of WebRTC, HTTP
// or storage: callers (vod, signaling, cmd/podium) turn manifests, requests
// and tokens into the records here.
//
// Times are kept as Unix milliseconds (UTC) in both backends, so a time read
// back is the time written, truncated to the millisecond.
package replaydb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Backends.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// ErrNotFound is returned (wrapped) when a lesson, course, clip or other
// record does not exist.
var ErrNotFound = errors.New("not found")

// DB is the replay database. It is safe for concurrent use.
type DB struct {
	db      *sql.DB
	backend string
	target  string // what the driver was given: a file path or a URL
	now     func() time.Time
	// applied is how many migration steps the Open that made it ran.
	applied int
}

// Open opens the database named by dsn and brings its schema up to date.
//
//	sqlite:/var/lib/podium/podium.db     SQLite file (sqlite:///abs/path too)
//	/var/lib/podium/podium.db            a plain path is SQLite as well
//	postgres://user:pass@host/db?...     PostgreSQL (postgresql:// too), any
//	                                     option pgx understands
//
// A SQLite file is created 0600 (its directory 0700 when Open creates it)
// and used in WAL mode with foreign keys on and a busy timeout, so several
// processes may share it. Migrations run in order, each in its own
// transaction; on PostgreSQL they run under an advisory lock, so nodes
// starting together apply each step once.
func Open(ctx context.Context, dsn string) (*DB, error) {
	return open(ctx, dsn, migrations)
}

func open(ctx context.Context, dsn string, steps []migration) (*DB, error) {
	backend, target, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	var sdb *sql.DB
	switch backend {
	case SQLite:
		sdb, err = openSQLite(target)
	case Postgres:
		sdb, err = sql.Open("pgx", target)
		if err == nil {
			sdb.SetMaxOpenConns(20)
			sdb.SetMaxIdleConns(5)
			sdb.SetConnMaxIdleTime(5 * time.Minute)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("replaydb: open %s: %w", backend, err)
	}
	d := &DB{db: sdb, backend: backend, target: target, now: time.Now}
	if err := connect(ctx, sdb, backend); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("replaydb: connect to %s database: %w", backend, err)
	}
	n, err := d.migrate(ctx, steps)
	if err != nil {
		sdb.Close()
		return nil, fmt.Errorf("replaydb: migrate %s database: %w", backend, err)
	}
	d.applied = n
	return d, nil
}

// parseDSN returns the backend and what its driver is given: a file path
// for SQLite, the URL itself for PostgreSQL.
func parseDSN(dsn string) (backend, target string, err error) {
	switch {
	case dsn == "":
		return "", "", errors.New("replaydb: empty database name")
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return Postgres, dsn, nil
	case strings.HasPrefix(dsn, "sqlite:"):
		p := strings.TrimPrefix(dsn, "sqlite:")
		if strings.HasPrefix(p, "//") {
			p = p[2:] // sqlite:///abs/path
		}
		if p == "" {
			return "", "", fmt.Errorf("replaydb: %q names no file", dsn)
		}
		dsn = p
	case strings.Contains(dsn, "://"):
		return "", "", fmt.Errorf("replaydb: unknown database %q (want sqlite:PATH, a path, or postgres://...)", redact(dsn))
	}
	if strings.ContainsAny(dsn, "?#") {
		return "", "", fmt.Errorf("replaydb: SQLite path %q may not contain ? or #", dsn)
	}
	return SQLite, dsn, nil
}

// redact drops a URL's password for error messages.
func redact(dsn string) string {
	if i := strings.Index(dsn, "://"); i >= 0 {
		if j := strings.Index(dsn[i+3:], "@"); j >= 0 {
			return dsn[:i+3] + "…@" + dsn[i+3+j+1:]
		}
	}
	return dsn
}

// openSQLite creates the file (0600, in a 0700 directory when it has to
// create that) before SQLite does, so the database, its WAL and its shared
// memory file (SQLite gives those the database's mode) are never readable
// by others.
func openSQLite(path string) (*sql.DB, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	st, err := f.Stat()
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, fmt.Errorf("chmod %s: %w", path, err)
		}
	}
	// Every connection: wait up to 10 s for another writer instead of
	// failing at once; enforce foreign keys (off by default in SQLite);
	// WAL, so readers never wait for the writer; transactions take the
	// write lock when they begin, so two never deadlock upgrading a read
	// lock; reads through a memory map of up to 256 MiB (shared by every
	// connection through the OS page cache) rather than a read call per
	// page, which halves the cost of a search that scans every lesson.
	q := "?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(NORMAL)&_pragma=mmap_size(268435456)&_txlock=immediate"
	return sql.Open("sqlite", path+q)
}

// Close closes the database.
func (d *DB) Close() error {
	if err := d.db.Close(); err != nil {
		return fmt.Errorf("replaydb: close: %w", err)
	}
	return nil
}

// Backend is "sqlite" or "postgres".
func (d *DB) Backend() string { return d.backend }

// withTx runs f in a transaction, committing when it returns nil.
func (d *DB) withTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// forUpdate locks the rows a SELECT reads on PostgreSQL; a SQLite
// transaction already holds the database's write lock (_txlock=immediate).
func (d *DB) forUpdate() string {
	if d.backend == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// isForeignKeyViolation reports whether err is a row referring to one that
// does not exist (a clip of a missing lesson, a lesson in a missing course).
func isForeignKeyViolation(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23503"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY ||
			(se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT && strings.Contains(se.Error(), "FOREIGN KEY"))
	}
	return false
}

// ms is t as Unix milliseconds; the zero time is 0.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// nullMS is t as Unix milliseconds, NULL for the zero time.
func nullMS(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

// fromMS is the time of Unix milliseconds in UTC; 0 is the zero time.
func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func fromNullMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMS(v.Int64)
}

// connect opens the first connection. A new SQLite connection switches the
// file to WAL, which needs the file to itself for a moment: when another
// process (or handle) is opening or migrating it just then, SQLite says
// "database is locked" at once rather than waiting, so this waits and
// tries again for up to 10 s.
func connect(ctx context.Context, sdb *sql.DB, backend string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := sdb.PingContext(ctx)
		if err == nil || backend != SQLite || !strings.Contains(err.Error(), "SQLITE_BUSY") || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}
