package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"podium/internal/testenv"
)

// TestSecurityFromOutside drives the real binary as an operator and an
// attacker would: a revoked token stays refused across a restart (and on
// the CLI's word), the CLI will not mint a token longer than its role
// allows, one address cannot hold more connections than its cap while
// another still gets answers, and the data directory is private.
func TestSecurityFromOutside(t *testing.T) {
	p := testenv.StartPodium(t, "--http-max-conns-per-ip", "16", "--http-conn-limit-exempt", "none",
		"--metrics-token", "metrics-token-0123456789")
	bin := testenv.PodiumBinary(t)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(path, token string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", p.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	// The CLI refuses a century-long token.
	out, err := exec.Command(bin, "token", "--secret", p.Secret, "--room", "x", "--role", "teacher", "--name", "T", "--ttl", "876000h").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "longer than") {
		t.Fatalf("podium token --ttl 876000h: %v %s", err, out)
	}

	// Metrics need their token.
	if code := get("/metrics", ""); code != 401 {
		t.Errorf("/metrics without its token: %d, want 401", code)
	}
	if code := get("/metrics", "metrics-token-0123456789"); code != 200 {
		t.Errorf("/metrics with its token: %d", code)
	}

	// Revocation: through the CLI, against the node's database, and kept
	// across a restart.
	admin := p.Token("*", "admin", "ops")
	if code := get("/api/lessons", admin); code != 200 {
		t.Fatalf("admin token before revocation: %d", code)
	}
	p.Stop()
	out, err = exec.Command(bin, "token", "revoke", "--secret", p.Secret, "--data-dir", p.DataDir, "--token", admin, "--reason", "leaked").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "revoked") {
		t.Fatalf("podium token revoke: %v %s", err, out)
	}
	p.Restart()
	if code := get("/api/lessons", admin); code != 401 {
		t.Errorf("revoked admin token after restart: %d, want 401", code)
	}
	admin2 := p.Token("*", "admin", "ops")
	if code := get("/api/lessons", admin2); code != 200 {
		t.Errorf("a fresh admin token: %d", code)
	}

	// One address holds at most 16 connections; a 17th is refused at
	// once, and another address is still served.
	time.Sleep(200 * time.Millisecond) // the server closes the last no-keep-alive connection
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	host := strings.TrimPrefix(p.URL, "http://")
	for range 40 {
		c, err := net.DialTimeout("tcp", host, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	refused := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		b := make([]byte, 64)
		if n, _ := c.Read(b); n > 0 && strings.Contains(string(b[:n]), "429") {
			refused++
		}
	}
	if refused != 40-16 {
		t.Errorf("%d of 40 idle connections refused, want 24", refused)
	}
	other := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	resp, err := other.Get(p.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz from another address while one is at its cap: %v", err)
	}
	resp.Body.Close()
	testenv.WaitFor(t, 10*time.Second, "the metric of refused connections", func() bool {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", p.URL+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer metrics-token-0123456789")
		r, err := other.Do(req)
		if err != nil {
			return false
		}
		defer r.Body.Close()
		b := make([]byte, 1<<20)
		n, _ := r.Body.Read(b)
		for n < len(b) {
			m, err := r.Body.Read(b[n:])
			n += m
			if err != nil {
				break
			}
		}
		return strings.Contains(string(b[:n]), fmt.Sprintf("podium_http_connections_refused_total %d\n", refused))
	})

	// The data directory and the database are the node's alone.
	for _, path := range []string{p.DataDir, filepath.Join(p.DataDir, "podium.db")} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is mode %v: others may read it", path, fi.Mode().Perm())
		}
	}
}
