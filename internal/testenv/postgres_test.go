package testenv

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The server accepts SQL once StartPostgres returns, does not run as root,
// listens on loopback only, and is gone (directory too) when the test that
// started it ends.
func TestStartPostgres(t *testing.T) {
	var dsn, dataDir string
	t.Run("running", func(t *testing.T) {
		dsn = StartPostgres(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatalf("connect right after start: %v", err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY, v text)"); err != nil {
			t.Fatalf("CREATE TABLE: %v", err)
		}
		if _, err := c.Exec(ctx, "INSERT INTO t VALUES (1, 'x')"); err != nil {
			t.Fatalf("INSERT: %v", err)
		}
		var v, listen, user string
		if err := c.QueryRow(ctx, "SELECT v FROM t WHERE id = 1").Scan(&v); err != nil || v != "x" {
			t.Fatalf("SELECT = %q, %v", v, err)
		}
		if err := c.QueryRow(ctx, "SHOW listen_addresses").Scan(&listen); err != nil || listen != "127.0.0.1" {
			t.Fatalf("listen_addresses = %q, %v; want 127.0.0.1", listen, err)
		}
		if err := c.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil || user != "podium" {
			t.Fatalf("current_user = %q, %v; want podium", user, err)
		}
		if err := c.QueryRow(ctx, "SHOW data_directory").Scan(&dataDir); err != nil {
			t.Fatalf("SHOW data_directory: %v", err)
		}
		st, err := os.Stat(dataDir)
		if err != nil {
			t.Fatalf("stat data directory: %v", err)
		}
		if uid := fileUID(st); os.Geteuid() == 0 && uid == 0 {
			t.Fatalf("data directory %s is owned by root: the server runs as root", dataDir)
		}
	})
	if err := postgresPing(dsn); err == nil {
		t.Fatalf("postgres at %s still answers after its test ended", dsn)
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Fatalf("data directory %s still there after the test: %v", dataDir, err)
	}
}

func fileUID(st os.FileInfo) uint32 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Uid
	}
	return 0
}
