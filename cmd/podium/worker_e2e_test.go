package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"podium/internal/testenv"
	"podium/storage/local"
	"podium/transcode/transcodetest"
	"podium/vod"
)

// TestWorkerTranscodesForServe: a live node that does not transcode
// (--vod-transcode=false) and a `podium worker` share one PostgreSQL and
// one storage; the worker finds the node's completed recording and
// transcodes it, the node's catalog shows it ready, both report the job
// from the shared table in /metrics, and SIGTERM stops the worker cleanly.
func TestWorkerTranscodesForServe(t *testing.T) {
	testenv.RequireBinary(t, "ffmpeg")
	dsn := testenv.StartPostgres(t)
	p := testenv.StartPodium(t, "--db", dsn, "--vod-transcode=false")
	storeDir := filepath.Join(p.DataDir, "storage")
	store, err := local.New(storeDir)
	if err != nil {
		t.Fatal(err)
	}

	addr := testenv.FreeAddr(t)
	var log strings.Builder
	w := exec.Command(testenv.PodiumBinary(t), "worker", "--db", dsn, "--storage-dir", storeDir,
		"--data-dir", t.TempDir(), "--http-addr", addr, "--vod-poll", "200ms", "--vod-ladder", "360:500", "--vod-workers", "1")
	w.Stdout, w.Stderr = &log, &log
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- w.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = w.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("worker log:\n%s", log.String())
		}
	})

	get := func(url, token string) (int, string) {
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	testenv.WaitFor(t, 30*time.Second, "the worker to answer /readyz", func() bool {
		code, _ := get("http://"+addr+"/readyz", "")
		return code == http.StatusOK
	})

	transcodetest.WriteRecording(t, store, "worker-lesson", 4, true)
	student := p.Token("worker-lesson", "viewer", "Student")
	testenv.WaitFor(t, 120*time.Second, "the lesson to be ready on the live node", func() bool {
		code, b := get(p.URL+"/api/vod/lessons/worker-lesson", student)
		var l vod.Lesson
		return code == http.StatusOK && json.Unmarshal([]byte(b), &l) == nil && l.Status == vod.StatusReady
	})
	for _, url := range []string{"http://" + addr + "/metrics", p.URL + "/metrics"} {
		testenv.WaitFor(t, 15*time.Second, url+" to count the job done and the queue empty", func() bool {
			_, b := get(url, "")
			return strings.Contains(b, `podium_transcode_jobs{state="done"} 1`) && strings.Contains(b, "podium_transcode_queue_depth 0")
		})
	}
	if _, b := get("http://"+addr+"/metrics", ""); !strings.Contains(b, `podium_transcode_jobs_finished_total{result="done"} 1`) {
		t.Errorf("the worker did not count its job")
	}
	if _, b := get(p.URL+"/metrics", ""); strings.Contains(b, `podium_transcode_jobs_finished_total{result="done"}`) {
		t.Errorf("the live node counts a job it did not run")
	}

	stopped = true
	if err := w.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("worker exit: %v", err)
		}
	case <-time.After(30 * time.Second):
		_ = w.Process.Kill()
		t.Fatal("worker did not stop on SIGTERM")
	}
}
