package main

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"podium/internal/testenv"
	"podium/storage/local"
	"podium/transcode/transcodetest"
	"podium/vod"
)

// TestVODServeEndToEnd runs the real `podium serve` binary: a recording
// that lands in its storage is found by the poller, transcoded, listed in
// the catalog, playable with a student token, visible in /metrics, and the
// student cannot delete it.
func TestVODServeEndToEnd(t *testing.T) {
	testenv.RequireBinary(t, "ffmpeg")
	p := testenv.StartPodium(t, "--vod-poll", "200ms", "--vod-ladder", "360:500")
	store, err := local.New(filepath.Join(p.DataDir, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	transcodetest.WriteRecording(t, store, "e2e-lesson", 6, true)
	student := p.Token("e2e-lesson", "viewer", "Student")

	get := func(path, token string) (int, []byte) {
		req, _ := http.NewRequest("GET", p.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	var l vod.Lesson
	deadline := time.Now().Add(120 * time.Second)
	for {
		code, b := get("/api/vod/lessons/e2e-lesson", student)
		if code == http.StatusOK && json.Unmarshal(b, &l) == nil && l.Status == vod.StatusReady {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lesson never ready: %d %s", code, b)
		}
		time.Sleep(250 * time.Millisecond)
	}
	code, master := get(strings.TrimPrefix(l.HLS, p.URL), "")
	if code != http.StatusOK || !strings.Contains(string(master), "RESOLUTION=640x360") {
		t.Fatalf("master playlist: %d\n%s", code, master)
	}
	// The job row is finished just after the assets are published, and
	// the job counts are read at most every 5 s.
	testenv.WaitFor(t, 15*time.Second, "/metrics to count the done job", func() bool {
		code, b := get("/metrics", "")
		return code == http.StatusOK && strings.Contains(string(b), `podium_transcode_jobs{state="done"} 1`)
	})
	req, _ := http.NewRequest("DELETE", p.URL+"/api/vod/lessons/e2e-lesson", nil)
	req.Header.Set("Authorization", "Bearer "+student)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("student delete: %d, want 403", resp.StatusCode)
	}
	if code, b := get("/replay", ""); code != http.StatusOK || !strings.Contains(string(b), "/vendor/hls.min.js") {
		t.Errorf("/replay: %d", code)
	}
	if code, _ := get("/vendor/hls.min.js", ""); code != http.StatusOK {
		t.Errorf("vendored hls.js: %d", code)
	}
}
