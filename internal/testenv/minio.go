package testenv

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
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

	// RootCAs trusts the server's certificate when it serves TLS; nil
	// otherwise.
	RootCAs *x509.CertPool

	t        testing.TB
	bin      string
	logPath  string
	opts     MinIOOptions
	certsDir string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// MinIOOptions change how a test MinIO runs.
type MinIOOptions struct {
	// KMSSecretKey, "name:base64 of 32 bytes", gives the server a built-in
	// KMS key (MINIO_KMS_SECRET_KEY), which SSE-S3 encryption needs.
	KMSSecretKey string
	// TLS serves https with a certificate for 127.0.0.1 made for the test
	// (SSE-C needs it); clients trust it through MinIO.RootCAs.
	TLS bool
}

// StartMinIO starts a MinIO server on a free 127.0.0.1 port and waits until
// it answers its readiness probe. It skips (or, in CI, fails) the test when
// the minio binary is missing.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	return StartMinIOWith(t, MinIOOptions{})
}

// StartMinIOWith is StartMinIO with options.
func StartMinIOWith(t testing.TB, opts MinIOOptions) *MinIO {
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
		opts:      opts,
	}
	if err := os.MkdirAll(m.Dir, 0o755); err != nil {
		t.Fatalf("minio data dir: %v", err)
	}
	if opts.TLS {
		m.certsDir = filepath.Join(root, "certs")
		pool, err := writeTestCert(m.certsDir)
		if err != nil {
			t.Fatalf("minio certificate: %v", err)
		}
		m.RootCAs = pool
	}
	// Registered after TempDir, so it runs before the directory is removed.
	t.Cleanup(m.Stop)
	m.Start()
	return m
}

// URL returns the server's base URL.
func (m *MinIO) URL() string {
	if m.RootCAs != nil {
		return "https://" + m.Endpoint
	}
	return "http://" + m.Endpoint
}

// writeTestCert writes a self-signed certificate for 127.0.0.1 as MinIO
// wants it (dir/public.crt, dir/private.key) and returns a pool trusting it.
func writeTestCert(dir string) (*x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "podium test minio"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "public.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "private.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool, nil
}

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
	args := []string{"server", "--quiet", "--address", m.Endpoint}
	if m.certsDir != "" {
		args = append(args, "--certs-dir", m.certsDir)
	}
	cmd := exec.Command(m.bin, append(args, m.Dir)...)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+m.AccessKey,
		"MINIO_ROOT_PASSWORD="+m.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_CI_CD=1",
		"MINIO_UPDATE=off",
	)
	if m.opts.KMSSecretKey != "" {
		cmd.Env = append(cmd.Env, "MINIO_KMS_SECRET_KEY="+m.opts.KMSSecretKey)
	}
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = childAttr(nil)
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
	if m.RootCAs != nil {
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: m.RootCAs}}
	}
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
