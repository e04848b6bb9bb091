package testenv

import (
	"crypto/x509"
	"path/filepath"
	"testing"
)

// TestCert writes a self-signed certificate for 127.0.0.1 and localhost
// into a temporary directory, for a server a test starts with TLS, and
// returns its files and a pool that trusts it.
func TestCert(t testing.TB) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	roots, err := writeTestCert(dir)
	if err != nil {
		t.Fatalf("test certificate: %v", err)
	}
	return filepath.Join(dir, "public.crt"), filepath.Join(dir, "private.key"), roots
}
