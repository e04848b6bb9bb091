package main

import (
	"encoding/json"
	"net/http"
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

	w := startWorker(t, "--db", dsn, "--storage-dir", storeDir, "--vod-poll", "200ms", "--vod-ladder", "360:500", "--vod-workers", "1")
	addr := w.addr
	get := httpGet

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

	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.done:
		if w.err != nil {
			t.Fatalf("worker exit: %v", w.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not stop on SIGTERM")
	}
}
