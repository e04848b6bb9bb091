// Package testenv finds and starts the real programs Podium's tests run
// against (ffmpeg, chromium, minio, redis-server, postgres). Outside CI a missing
// program skips the test; in CI (CI=true) it fails it, so a green CI run
// never hides a test that did not run.
package testenv

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// InCI reports whether the tests run in CI.
func InCI() bool { return os.Getenv("CI") == "true" }

// LookPath finds a program on PATH or in $GOPATH/bin (where `go install`
// puts minio).
func LookPath(name string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
	}
	p := filepath.Join(gopath, "bin", name)
	if st, err := os.Stat(p); err == nil && !st.IsDir() {
		return p, true
	}
	return "", false
}

// RequireBinary returns the path of a program the test needs, skipping the
// test when it is missing outside CI and failing it in CI.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	p, ok := LookPath(name)
	if ok {
		return p
	}
	msg := name + " not found (run scripts/install-test-deps.sh)"
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago and
// that this test process has not handed out before. The kernel may offer a
// port it just gave back again; a node given the same port for HTTP and ICE
// TCP then fails to start (seen in CI), so each port goes to one caller.
func FreePort(t testing.TB) int {
	t.Helper()
	return freshPort(t, func() (int, error) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port, nil
	})
}

// freeUDPPort is FreePort for UDP.
func freeUDPPort(t testing.TB) int {
	t.Helper()
	return freshPort(t, func() (int, error) {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	})
}

var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// freshPort asks pick for free ports until one comes that no caller in
// this process has had.
func freshPort(t testing.TB, pick func() (int, error)) int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 100 {
		port, err := pick()
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return port
		}
	}
	t.Fatalf("free port: 100 picks gave only ports already handed out")
	return 0
}

// FreeAddr returns "127.0.0.1:<free port>".
func FreeAddr(t testing.TB) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}

// terminate sends SIGTERM to a process a helper started and waits until
// done is closed (the helper's Wait returned), killing the process if it
// has not exited after grace. It reports whether it had to kill it.
func terminate(p *os.Process, done <-chan struct{}, grace time.Duration) (killed bool) {
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return false
	case <-time.After(grace):
		_ = p.Kill()
		<-done
		return true
	}
}
