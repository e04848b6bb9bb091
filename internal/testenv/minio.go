package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MinIO root credentials used by every test server.
const (
	MinIOAccessKey = "podiumtest"
	MinIOSecretKey = "podiumtest-secret"
)

// MinIO is a real MinIO server on loopback, serving a temporary directory.
// It is stopped when the test ends. Stop and Start let outage tests take it
// away and bring it back on the same address with the same data.
type MinIO struct {
	// Endpoint is "127.0.0.1:port", the form minio-go wants (no scheme).
	Endpoint  string
	AccessKey string
	SecretKey string
	// Dir holds the server's data.
	Dir string

	t       testing.TB
	bin     string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// StartMinIO starts a MinIO server on a free 127.0.0.1 port and waits until
// it answers its readiness probe. It skips (or, in CI, fails) the test when
// the minio binary is missing.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	bin := RequireBinary(t, "minio")
	root := t.TempDir()
	m := &MinIO{
		Endpoint:  FreeAddr(t),
		AccessKey: MinIOAccessKey,
		SecretKey: MinIOSecretKey,
		Dir:       filepath.Join(root, "data"),
		t:         t,
		bin:       bin,
		logPath:   filepath.Join(root, "minio.log"),
	}
	if err := os.MkdirAll(m.Dir, 0o755); err != nil {
		t.Fatalf("minio data dir: %v", err)
	}
	// Registered after TempDir, so it runs before the directory is removed.
	t.Cleanup(m.Stop)
	m.Start()
	return m
}

// URL returns the server's base URL.
func (m *MinIO) URL() string { return "http://" + m.Endpoint }

// Start (re)starts the server on the same address and directory and waits
// until it is ready. Starting a running server is a no-op.
func (m *MinIO) Start() {
	m.t.Helper()
	m.mu.Lock()
	if m.cmd != nil {
		m.mu.Unlock()
		return
	}
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		m.mu.Unlock()
		m.t.Fatalf("minio log: %v", err)
	}
	cmd := exec.Command(m.bin, "server", "--quiet", "--address", m.Endpoint, m.Dir)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+m.AccessKey,
		"MINIO_ROOT_PASSWORD="+m.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_CI_CD=1",
		"MINIO_UPDATE=off",
	)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		m.mu.Unlock()
		m.t.Fatalf("start minio: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	m.cmd, m.done = cmd, done
	m.mu.Unlock()

	if err := m.waitReady(done, 60*time.Second); err != nil {
		m.Stop()
		m.t.Fatalf("minio not ready: %v\n%s", err, m.logTail())
	}
}

// Stop stops the server and waits until it has exited. Stopping a stopped
// server is a no-op.
func (m *MinIO) Stop() {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.cmd, m.done = nil, nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	terminate(cmd.Process, done, 10*time.Second)
}

func (m *MinIO) waitReady(exited <-chan struct{}, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	// The health probes answer before the object layer is up; an
	// anonymous S3 request answers 503 until it is, then 403.
	url := m.URL() + "/minio/health/cluster"
	get := func(url string) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	for {
		code, err := get(url)
		if err == nil && code == http.StatusOK {
			code, err = get(m.URL() + "/")
			if err == nil && code != http.StatusServiceUnavailable {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("minio exited")
		case <-ctx.Done():
			return fmt.Errorf("waited %v for %s: %v", timeout, url, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (m *MinIO) logTail() string {
	b, _ := os.ReadFile(m.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(bytes.TrimSpace(b))
}
