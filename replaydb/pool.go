package replaydb

import (
	"database/sql"
	"errors"
	"fmt"
)

// PostgresURL is the URL a PostgreSQL database was opened with, for a part
// that needs its own connection pool of another driver on the same
// database (the transcode job queue's pgx pool). It may hold a password:
// never log it. It is "" on SQLite.
func (d *DB) PostgresURL() string {
	if d.backend != Postgres {
		return ""
	}
	return d.target
}

// OpenSQLitePool opens a second pool on the same SQLite file with the
// connection settings Open uses (busy timeout, WAL, immediate
// transactions), holding at most maxOpen connections: the transcode job
// queue keeps its own, since River's SQLite driver wants one connection.
// The caller closes it.
func (d *DB) OpenSQLitePool(maxOpen int) (*sql.DB, error) {
	if d.backend != SQLite {
		return nil, errors.New("replaydb: not a SQLite database")
	}
	p, err := openSQLite(d.target)
	if err != nil {
		return nil, fmt.Errorf("replaydb: open SQLite pool: %w", err)
	}
	p.SetMaxOpenConns(maxOpen)
	return p, nil
}
