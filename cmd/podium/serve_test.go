package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"podium/clients/goclient"
	"podium/internal/testenv"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeEndToEndAndDrain runs the real binary: health, metrics, the
// admin API and a websocket client; then SIGTERM drains it: the client is
// told `shutdown`, the process exits 0.
func TestServeEndToEndAndDrain(t *testing.T) {
	p := testenv.StartPodium(t)
	if code, _ := get(t, p.URL+"/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Admin API: create a lesson with an admin token; a teacher token is refused.
	create := func(token string) int {
		req, _ := http.NewRequest("POST", p.URL+"/api/lessons", strings.NewReader(`{"id":"algebra","title":"Algebra"}`))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := create(p.Token("algebra", "teacher", "T")); code != http.StatusForbidden {
		t.Fatalf("teacher creating a lesson: %d", code)
	}
	if code := create(p.Token("*", "admin", "ops")); code != http.StatusCreated {
		t.Fatalf("admin creating a lesson: %d", code)
	}
	if code := create(p.Token("*", "admin", "ops")); code != http.StatusConflict {
		t.Fatalf("creating it twice: %d", code)
	}

	c, err := goclient.Dial(ctx, p.URL, p.Token("algebra", "classroom", "Hill school"), goclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	j, err := c.Join(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(j.Lesson), "Algebra") {
		t.Fatalf("joined lesson %s", j.Lesson)
	}
	code, metrics := get(t, p.URL+"/metrics")
	for _, want := range []string{"podium_signaling_websocket_connections 1", "go_goroutines", `podium_signaling_messages_total{direction="in",type="join"} 1`, `podium_signaling_auth_failures_total{reason="wrong_role"} 1`} {
		if code != 200 || !strings.Contains(metrics, want) {
			t.Fatalf("metrics lack %q", want)
		}
	}

	if err := p.Stop(); err != nil {
		t.Fatalf("podium did not exit 0 after SIGTERM: %v\n%s", err, p.Log())
	}
	sawShutdown := false
	for m := range c.Events() {
		if m.Type == "shutdown" {
			var d struct {
				Reason           string `json:"reason"`
				ReconnectAfterMs int    `json:"reconnectAfterMs"`
			}
			_ = json.Unmarshal(m.Data, &d)
			sawShutdown = d.Reason != "" && d.ReconnectAfterMs > 0
		}
	}
	if !sawShutdown {
		t.Fatal("the client was not told shutdown before the socket closed")
	}
	if !strings.Contains(p.Log(), "podium stopped") {
		t.Fatalf("no clean stop in the log:\n%s", p.Log())
	}
}

// TestServeZeroConfigGeneratesSecret starts with no secret: one is made and
// kept in the data dir, and `podium token --data-dir` signs with it.
func TestServeZeroConfigGeneratesSecret(t *testing.T) {
	dir := t.TempDir()
	var out strings.Builder
	if code := runToken([]string{"--data-dir", dir, "--room", "x", "--role", "teacher", "--name", "n"}, envOf(nil), &out, io.Discard); code != 2 {
		t.Fatal("token without any secret must fail")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // stops the server if the test fails before it stops it
	addr := testenv.FreeAddr(t)
	done := make(chan int, 1)
	var logs strings.Builder
	go func() {
		done <- runServe(ctx, []string{"--http-addr", addr, "--data-dir", dir, "--bind-ip", "127.0.0.1", "--ice-udp-port", "0", "--ice-tcp-port", "-1"},
			envOf(map[string]string{"PODIUM_STORAGE_DIR": dir + "/storage", "PODIUM_RECORD_SPOOL_DIR": dir + "/spool"}), io.Discard, &lockedWriter{b: &logs})
	}()
	testenv.WaitFor(t, 20*time.Second, "/readyz to answer 200", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if code := runToken([]string{"--data-dir", dir, "--room", "x", "--role", "teacher", "--name", "n"}, envOf(nil), &out, io.Discard); code != 0 {
		t.Fatal("token with the generated secret failed")
	}
	c, err := goclient.Dial(context.Background(), "http://"+addr, strings.TrimSpace(out.String()), goclient.Options{})
	if err != nil {
		cancel()
		t.Fatalf("the generated secret's token was refused: %v", err)
	}
	c.Close()
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exit %d", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}
