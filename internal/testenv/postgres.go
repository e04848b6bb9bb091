package testenv

import (
	"bytes"
	"context"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// StartPostgres runs a real PostgreSQL server for one test: initdb in a fresh
// temporary directory, then postgres on a free 127.0.0.1 port with its unix
// socket in that directory, fsync off (a test database need not survive a
// crash). It waits until the server accepts a connection and returns a DSN
// for the superuser "podium" on database "postgres" with sslmode=disable.
// The server is stopped (fast shutdown) and its directory removed when the
// test ends; its log is printed with t.Log when the test failed.
//
// PostgreSQL refuses to run as root, and tests often do (containers, CI):
// then initdb and postgres run as the unprivileged user Debian's package
// creates ("postgres", else "nobody"), set as the child's credentials, and
// the directory is created outside t.TempDir (whose parent only root can
// enter) and owned by that user.
//
// It skips (or, in CI, fails) the test when initdb or postgres is missing:
// they are looked up on PATH, then under /usr/lib/postgresql/*/bin, where
// Debian's postgresql package puts them.
func StartPostgres(t testing.TB) (dsn string) {
	t.Helper()
	bin := requirePostgres(t)
	cred := postgresCredential(t)

	dir, err := os.MkdirTemp("", "podium-pg-")
	if err != nil {
		t.Fatalf("postgres temp dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatalf("chown %s to uid %d: %v", dir, cred.Uid, err)
		}
	}
	data := filepath.Join(dir, "data")

	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "podium",
		"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	initdb.Dir = dir
	initdb.SysProcAttr = childAttr(cred)
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, tail(out, 4000))
	}

	port := FreePort(t)
	logPath := filepath.Join(dir, "postgres.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatalf("postgres log: %v", err)
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+dir,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200")
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = childAttr(cred)
	done, logTail := startServer(t, cmd, "postgres", logPath)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// Registered after the directory's cleanup, so the server is gone
	// before its directory is removed.
	t.Cleanup(func() {
		// SIGINT is PostgreSQL's fast shutdown: it does not wait for
		// clients a test left connected, as SIGTERM (smart) would.
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			terminate(cmd.Process, done, 5*time.Second)
		}
		if t.Failed() {
			t.Logf("postgres %s log:\n%s", addr, logTail())
		}
	})

	u := url.URL{Scheme: "postgres", User: url.User("podium"), Host: addr, Path: "/postgres",
		RawQuery: "sslmode=disable"}
	dsn = u.String()
	waitServing(t, "postgres on "+addr, "accept a connection", 60*time.Second, done, func() error { return postgresPing(dsn) }, logTail)
	return dsn
}

// postgresPing connects once and runs SELECT 1.
func postgresPing(dsn string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	var one int
	return c.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// requirePostgres returns the directory holding initdb and postgres (the
// real one, symlinks resolved, so both come from the same installation),
// skipping the test outside CI and failing it in CI when there is none.
func requirePostgres(t testing.TB) string {
	t.Helper()
	if dir, ok := findPostgres(); ok {
		return dir
	}
	msg := "initdb and postgres not found on PATH or under /usr/lib/postgresql/*/bin (run scripts/install-test-deps.sh)"
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func findPostgres() (string, bool) {
	var dirs []string
	if p, ok := LookPath("initdb"); ok {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	// Newest version first.
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(found, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(found[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(found[j])))
		return vi > vj
	})
	dirs = append(dirs, found...)
	for _, d := range dirs {
		if isFile(filepath.Join(d, "initdb")) && isFile(filepath.Join(d, "postgres")) {
			return d, true
		}
	}
	return "", false
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// postgresCredential is the user initdb and postgres run as: nil (this
// process's own) unless this process is root, which PostgreSQL refuses.
func postgresCredential(t testing.TB) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	}
	msg := "running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as"
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return nil
}

// tail returns the last n bytes of b, trimmed, as a string.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.TrimSpace(b))
}
