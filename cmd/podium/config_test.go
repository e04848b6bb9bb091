package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "podium.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestServeConfigPrecedence(t *testing.T) {
	file := writeConfig(t, "http-addr: 127.0.0.1:7000\ndrain-timeout: 30s\nlog-level: warn\npublic-ip: [192.0.2.1, 192.0.2.2]\nturn-enabled: true\n")
	for _, tc := range []struct {
		name      string
		args      []string
		env       map[string]string
		wantAddr  string
		wantDrain time.Duration
		wantLevel string
		wantIPs   string
	}{
		{"defaults", nil, nil, ":8080", 10 * time.Second, "info", ""},
		{"file", []string{"--config", file}, nil, "127.0.0.1:7000", 30 * time.Second, "warn", "192.0.2.1,192.0.2.2"},
		{"config from env", nil, map[string]string{"PODIUM_CONFIG": file}, "127.0.0.1:7000", 30 * time.Second, "warn", "192.0.2.1,192.0.2.2"},
		{"env beats file", []string{"--config", file}, map[string]string{"PODIUM_HTTP_ADDR": ":9000", "PODIUM_PUBLIC_IP": "198.51.100.7"}, ":9000", 30 * time.Second, "warn", "198.51.100.7"},
		{"flag beats env and file", []string{"--config", file, "--http-addr", ":9100", "--drain-timeout", "2s", "--public-ip", "203.0.113.1", "--public-ip", "203.0.113.2"},
			map[string]string{"PODIUM_HTTP_ADDR": ":9000", "PODIUM_DRAIN_TIMEOUT": "5s"}, ":9100", 2 * time.Second, "warn", "203.0.113.1,203.0.113.2"},
		{"env dashes become underscores", nil, map[string]string{"PODIUM_LOG_LEVEL": "debug", "PODIUM_DRAIN_TIMEOUT": "1m"}, ":8080", time.Minute, "debug", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseServe(tc.args, envOf(tc.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if c.httpAddr != tc.wantAddr || c.drainTimeout != tc.wantDrain || c.logLevel != tc.wantLevel || c.publicIPs.String() != tc.wantIPs {
				t.Fatalf("got addr=%s drain=%s level=%s ips=%s", c.httpAddr, c.drainTimeout, c.logLevel, c.publicIPs.String())
			}
			if tc.name == "file" && !c.turnEnabled {
				t.Fatal("turn-enabled from the file was lost")
			}
		})
	}
}

func TestServeConfigRefusesBadValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		file string
		want string // part of the message
	}{
		{"bad port in addr", []string{"--http-addr", ":99999"}, nil, "", "http-addr"},
		{"addr without port", []string{"--http-addr", "localhost"}, nil, "", "http-addr"},
		{"bad duration flag", []string{"--drain-timeout", "soon"}, nil, "", "drain-timeout"},
		{"negative duration", []string{"--drain-timeout", "-1s"}, nil, "", "drain-timeout"},
		{"bad duration env", nil, map[string]string{"PODIUM_DRAIN_TIMEOUT": "soon"}, "", "PODIUM_DRAIN_TIMEOUT"},
		{"ice port out of range", []string{"--ice-udp-port", "70000"}, nil, "", "ice-udp-port"},
		{"turn port negative", nil, map[string]string{"PODIUM_TURN_TCP_PORT": "-5"}, "", "turn-tcp-port"},
		{"bad public ip", []string{"--public-ip", "not-an-ip"}, nil, "", "public-ip"},
		{"bad log level", []string{"--log-level", "loud"}, nil, "", "log-level"},
		{"short secret", []string{"--secret", "abc"}, nil, "", "secret"},
		{"tls cert without key", []string{"--tls-cert", "c.pem"}, nil, "", "tls-key"},
		{"bad public url", []string{"--public-url", "ftp://x"}, nil, "", "public-url"},
		{"unknown flag", []string{"--no-such-flag"}, nil, "", "no-such-flag"},
		{"stray argument", []string{"extra"}, nil, "", "unexpected"},
		{"unknown yaml key", nil, nil, "http-adr: :1\n", `unknown key "http-adr"`},
		{"bad yaml value", nil, nil, "ice-udp-port: lots\n", "ice-udp-port"},
		{"yaml mapping value", nil, nil, "http-addr:\n  host: x\n", "http-addr"},
		{"yaml not a mapping", nil, nil, "- a\n- b\n", "mapping"},
		{"yaml syntax", nil, nil, "http-addr: [\n", "config"},
		{"missing file", []string{"--config", "/nonexistent/podium.yaml"}, nil, "", "config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append([]string{"--config", writeConfig(t, tc.file)}, args...)
			}
			_, err := parseServe(args, envOf(tc.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestRunServeRefusesBadConfigWithExitCode(t *testing.T) {
	var stderr strings.Builder
	code := runServe(t.Context(), []string{"--http-addr", "nope", "--data-dir", t.TempDir()}, envOf(nil), io.Discard, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "bad configuration") || !strings.Contains(stderr.String(), "http-addr") {
		t.Fatalf("code %d, stderr %q", code, stderr.String())
	}
}

func TestSecretIsGeneratedOnceAndPersisted(t *testing.T) {
	dir := t.TempDir()
	s1, created, err := loadOrCreateSecret(dir)
	if err != nil || !created || len(s1) < 32 {
		t.Fatalf("first: %q %v %v", s1, created, err)
	}
	s2, created, err := loadOrCreateSecret(dir)
	if err != nil || created || s2 != s1 {
		t.Fatalf("second: %q %v %v", s2, created, err)
	}
	st, _ := os.Stat(secretFile(dir))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode %v", st.Mode())
	}
}

func TestTokenCommand(t *testing.T) {
	dir := t.TempDir()
	secret, _, err := loadOrCreateSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		code int
	}{
		{"from data dir", []string{"--data-dir", dir, "--room", "math", "--role", "teacher", "--name", "Ann"}, nil, 0},
		{"from env secret", []string{"--room", "math", "--role", "viewer", "--name", "V", "--ttl", "10m"}, map[string]string{"PODIUM_SECRET": secret}, 0},
		{"admin any room", []string{"--data-dir", dir, "--room", "*", "--role", "admin", "--name", "ops"}, nil, 0},
		{"teacher any room refused", []string{"--data-dir", dir, "--room", "*", "--role", "teacher", "--name", "x"}, nil, 2},
		{"bad role", []string{"--data-dir", dir, "--room", "math", "--role", "janitor", "--name", "x"}, nil, 2},
		{"no secret anywhere", []string{"--data-dir", t.TempDir(), "--room", "math", "--role", "teacher", "--name", "x"}, nil, 2},
		{"bad ttl", []string{"--data-dir", dir, "--room", "math", "--role", "teacher", "--name", "x", "--ttl", "-1h"}, nil, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb strings.Builder
			code := runToken(tc.args, envOf(tc.env), &out, &errb)
			if code != tc.code {
				t.Fatalf("code %d (stderr %q)", code, errb.String())
			}
			if code == 0 && strings.Count(strings.TrimSpace(out.String()), ".") != 2 {
				t.Fatalf("not a JWT: %q", out.String())
			}
			if code != 0 && errb.String() == "" {
				t.Fatal("refusal without a message")
			}
		})
	}
}

type lockedWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
