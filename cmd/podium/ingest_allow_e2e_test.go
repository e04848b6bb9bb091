package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"podium/internal/rtspcam"
	"podium/internal/testenv"
)

// --ingest-allow-cidr through the real binary: the default refuses the
// metadata address and bad ports with 400; a list that leaves loopback out
// (given as PODIUM_INGEST_ALLOW_CIDR would be, or as the flag) refuses a
// loopback camera at registration and, registered by name, when dialed,
// without naming the address; a bad CIDR stops the server from starting.
func TestIngestAllowCIDRE2E(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	post := func(p *testenv.Podium, lesson, url string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL+"/api/lessons/"+lesson+"/sources",
			strings.NewReader(`{"url":"`+url+`","transport":"tcp"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+p.Token("*", "admin", "ops"))
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var v map[string]any
		_ = json.Unmarshal(b, &v)
		return res.StatusCode, v
	}
	get := func(p *testenv.Podium, lesson, id string) map[string]any {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/api/lessons/"+lesson+"/sources/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+p.Token("*", "admin", "ops"))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var v map[string]any
		_ = json.NewDecoder(res.Body).Decode(&v)
		return v
	}

	def := testenv.StartPodium(t)
	for _, u := range []string{"rtsp://169.254.169.254:80/latest/meta-data/", "rtsp://10.1.2.3:0/x", "rtsp://10.1.2.3:99999/x", "rtsp://8.8.8.8/x"} {
		if code, v := post(def, "allow-e2e", u); code != http.StatusBadRequest || v["code"] != "invalid_source" {
			t.Fatalf("default policy, %s: %d %v", u, code, v)
		}
	}

	cam := rtspcam.Start(t, rtspcam.Options{})
	narrow := testenv.StartPodium(t, "--ingest-allow-cidr", "10.0.0.0/8", "--ingest-allow-cidr", "192.168.0.0/16,fc00::/7")
	if code, v := post(narrow, "allow-e2e", cam.URL("", "")); code != http.StatusBadRequest || !strings.Contains(v["error"].(string), "--ingest-allow-cidr") {
		t.Fatalf("loopback camera under a list without loopback: %d %v", code, v)
	}
	byName := strings.Replace(cam.URL("", ""), "127.0.0.1", "localhost", 1)
	code, v := post(narrow, "allow-e2e", byName)
	if code != http.StatusCreated {
		t.Fatalf("registration by name: %d %v", code, v)
	}
	id, _ := v["id"].(string)
	var info map[string]any
	testenv.WaitFor(t, 20*time.Second, "the dial refusal", func() bool {
		info = get(narrow, "allow-e2e", id)
		return info["state"] == "retrying" && strings.Contains(info["lastError"].(string), "not in the networks")
	})
	if strings.Contains(info["lastError"].(string), "127.0.0.1") {
		t.Fatalf("lastError names the address: %v", info["lastError"])
	}

	// A bad list never starts.
	dir := t.TempDir()
	cmd := exec.CommandContext(ctx, testenv.PodiumBinary(t), "serve", "--http-addr", testenv.FreeAddr(t), "--data-dir", dir,
		"--bind-ip", "127.0.0.1", "--ice-udp-port", "0", "--ice-tcp-port", "0", "--turn-udp-port", "0", "--turn-tcp-port", "0",
		"--ingest-allow-cidr", "10.0.0.0/33")
	cmd.Dir = dir
	cmd.Env = append(cmd.Environ(), "PODIUM_SECRET=ingest-e2e-secret-0123456789")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "10.0.0.0/33") {
		t.Fatalf("podium with a bad --ingest-allow-cidr: %v\n%s", err, out)
	}
}
