package replaydb

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"podium/internal/testenv"
)

func sqliteBackend() backend {
	return backend{name: SQLite, fresh: func(t *testing.T) string {
		return "sqlite:" + filepath.Join(t.TempDir(), "podium.db")
	}}
}

// postgresBackend starts one server and gives each caller a new database
// on it.
func postgresBackend(t testing.TB) backend {
	admin := testenv.StartPostgres(t)
	var n atomic.Int64
	return backend{name: Postgres, fresh: func(t *testing.T) string {
		return createDatabase(t, admin, fmt.Sprintf("t%d", n.Add(1)))
	}}
}

// createDatabase creates an empty database on the server of admin (a DSN)
// and returns a DSN for it.
func createDatabase(t testing.TB, admin, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connect to postgres: %v", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func TestSQLite(t *testing.T) { runSuite(t, sqliteBackend()) }

func TestPostgres(t *testing.T) { runSuite(t, postgresBackend(t)) }

// The SQLite file, its WAL and its shared-memory file are readable by
// their owner only, in a directory Open created 0700; every connection has
// the settings Open asks for.
func TestSQLiteFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "db")
	path := filepath.Join(dir, "podium.db")
	db := mustOpen(t, "sqlite:"+path)
	if err := db.PutCourse(context.Background(), Course{ID: "c", Title: "C"}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode = %v, %v; want 0700", st.Mode().Perm(), err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v (WAL mode?)", p, err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", filepath.Base(p), st.Mode().Perm())
		}
	}
	for pragma, want := range map[string]string{"journal_mode": "wal", "foreign_keys": "1",
		"busy_timeout": "10000", "mmap_size": "268435456"} {
		var got string
		if err := db.db.QueryRow("PRAGMA " + pragma).Scan(&got); err != nil || got != want {
			t.Errorf("PRAGMA %s = %q, %v; want %s", pragma, got, err, want)
		}
	}
	db.Close()

	// An existing file others could read is tightened.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, path).Close()
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("reopened file mode = %v, want 0600", st.Mode().Perm())
	}
}

func TestParseDSN(t *testing.T) {
	for _, tc := range []struct {
		dsn, backend, target string
		bad                  bool
	}{
		{dsn: "sqlite:/var/lib/podium/podium.db", backend: SQLite, target: "/var/lib/podium/podium.db"},
		{dsn: "sqlite:///var/lib/podium/podium.db", backend: SQLite, target: "/var/lib/podium/podium.db"},
		{dsn: "sqlite:data/podium.db", backend: SQLite, target: "data/podium.db"},
		{dsn: "/var/lib/podium/podium.db", backend: SQLite, target: "/var/lib/podium/podium.db"},
		{dsn: "podium.db", backend: SQLite, target: "podium.db"},
		{dsn: "postgres://u:p@db:5432/podium?sslmode=require", backend: Postgres, target: "postgres://u:p@db:5432/podium?sslmode=require"},
		{dsn: "postgresql://db/podium", backend: Postgres, target: "postgresql://db/podium"},
		{dsn: "", bad: true},
		{dsn: "sqlite:", bad: true},
		{dsn: "mysql://u:p@db/podium", bad: true},
		{dsn: "/tmp/x.db?mode=ro", bad: true},
	} {
		b, target, err := parseDSN(tc.dsn)
		if tc.bad {
			if err == nil {
				t.Errorf("parseDSN(%q) = %s %s, want an error", tc.dsn, b, target)
			}
			continue
		}
		if err != nil || b != tc.backend || target != tc.target {
			t.Errorf("parseDSN(%q) = %q %q %v; want %q %q", tc.dsn, b, target, err, tc.backend, tc.target)
		}
	}
	if _, _, err := parseDSN("mysql://u:secret@db/podium"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("error shows the password: %v", err)
	}
}
