package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"podium/internal/testenv"
	"podium/storage"
	"podium/storage/local"
	"podium/storage/s3/s3test"
	"podium/transcode"
	"podium/transcode/transcodetest"
	"podium/vod"
)

// The kill tests run jobs of a 20 s lesson (a few seconds of ffmpeg at
// least) with a rescue after 3 s: heartbeats every 750 ms.
const (
	killLessonSeconds = 20
	killRescueAfter   = "3s"
)

// TestKilledWorkersJobFinishesElsewhere: three `podium worker` processes
// share one PostgreSQL and one MinIO. The one encoding a lesson is killed
// with SIGKILL while its ffmpeg runs: its ffmpeg dies with it, another
// worker takes the job up once its heartbeat is --vod-job-rescue-after
// old, and finishes it. Every lesson is transcoded by exactly one job
// (the killed one in two attempts, every other in one, though each ran
// longer than the rescue delay), is ready in the catalog of a live node,
// and the killed lesson's replay in MinIO decodes end to end.
func TestKilledWorkersJobFinishesElsewhere(t *testing.T) {
	testenv.RequireBinary(t, "ffmpeg")
	dsn := testenv.StartPostgres(t)
	minio, store := s3test.Start(t, "podium")
	shared := []string{"--db", dsn, "--storage", "s3", "--s3-endpoint", minio.Endpoint, "--s3-bucket", "podium",
		"--s3-access-key", minio.AccessKey, "--s3-secret-key", minio.SecretKey}
	lessons := []string{"kill-0", "kill-1", "kill-2", "kill-3"}
	for _, l := range lessons {
		transcodetest.WriteRecording(t, store, l, killLessonSeconds, true)
	}
	p := testenv.StartPodium(t, append(shared, "--vod-transcode=false")...)
	ops := p.Token("*", "admin", "Ops")

	var workers []*workerProc
	for range 3 {
		workers = append(workers, startWorker(t, append(shared, "--vod-poll", "200ms", "--vod-ladder", "360:500",
			"--vod-workers", "1", "--vod-job-rescue-after", killRescueAfter, "--vod-job-timeout", "10m")...))
	}

	// The victim: a worker whose ffmpeg is encoding, and the job the
	// shared table says it runs.
	var victim *workerProc
	var ffmpegPID int
	var held transcode.Job
	testenv.WaitFor(t, 5*time.Minute, "a worker encoding a lesson", func() bool {
		for _, w := range workers {
			pid := encodingFFmpeg(w.cmd.Process.Pid)
			if pid == 0 {
				continue
			}
			for _, j := range listJobs(t, p.URL, ops) {
				if j.State == transcode.StateRunning && j.Node == w.node {
					victim, ffmpegPID, held = w, pid, j
					return true
				}
			}
		}
		return false
	})
	victim.kill()
	killed := time.Now()
	t.Logf("SIGKILLed %s while its ffmpeg (pid %d) encoded job %s (%s)", victim.node, ffmpegPID, held.ID, held.Lesson)
	testenv.WaitFor(t, 30*time.Second, "the killed worker's ffmpeg to die with it", func() bool { return !processAlive(ffmpegPID) })

	testenv.WaitFor(t, 3*time.Minute, "another worker to take up the killed worker's job", func() bool {
		j := getJob(t, p.URL, ops, held.ID)
		return j.Attempts > held.Attempts && j.Node != victim.node && j.State != transcode.StateQueued
	})
	pickedUp := time.Since(killed)
	testenv.WaitFor(t, 5*time.Minute, "every lesson ready on the live node", func() bool {
		for _, l := range lessons {
			if lessonStatus(t, p, l) != vod.StatusReady {
				return false
			}
		}
		return true
	})
	ready := time.Since(killed)
	t.Logf("killed job %s: taken up again %.1fs after the SIGKILL, its lesson ready %.1fs after it (rescue after %s)",
		held.ID, pickedUp.Seconds(), ready.Seconds(), killRescueAfter)

	checkJobsOnce(t, settledJobs(t, p.URL, ops), lessons, held, victim.node)
	checkReplayPlays(t, store, held.Lesson)
}

// TestKilledNodeTakesUpItsJobAfterRestart: one `podium serve` on its
// embedded SQLite is killed with SIGKILL while it transcodes; started
// again, it takes up its own orphaned job (its heartbeat grows old) and
// the lesson becomes ready, transcoded by that one job.
func TestKilledNodeTakesUpItsJobAfterRestart(t *testing.T) {
	testenv.RequireBinary(t, "ffmpeg")
	p := testenv.StartPodium(t, "--vod-poll", "200ms", "--vod-ladder", "360:500", "--vod-workers", "1",
		"--vod-job-rescue-after", killRescueAfter, "--vod-job-timeout", "10m")
	store, err := local.New(filepath.Join(p.DataDir, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	ops := p.Token("*", "admin", "Ops")
	const lesson = "crash-lesson"
	transcodetest.WriteRecording(t, store, lesson, killLessonSeconds, true)

	var ffmpegPID int
	testenv.WaitFor(t, 5*time.Minute, "the node to encode the lesson", func() bool {
		ffmpegPID = encodingFFmpeg(p.PID())
		return ffmpegPID != 0
	})
	var held transcode.Job
	for _, j := range listJobs(t, p.URL, ops) {
		if j.Lesson == lesson {
			held = j
		}
	}
	if held.State != transcode.StateRunning {
		t.Fatalf("the encoding lesson's job: %+v", held)
	}
	oldNode := held.Node
	p.Kill()
	killed := time.Now()
	testenv.WaitFor(t, 30*time.Second, "the killed node's ffmpeg to die with it", func() bool { return !processAlive(ffmpegPID) })
	p.Restart()
	restarted := time.Since(killed)

	testenv.WaitFor(t, 3*time.Minute, "the restarted node to take up its orphaned job", func() bool {
		j := getJob(t, p.URL, ops, held.ID)
		return j.Attempts > held.Attempts && j.State != transcode.StateQueued
	})
	pickedUp := time.Since(killed)
	testenv.WaitFor(t, 5*time.Minute, "the lesson ready", func() bool { return lessonStatus(t, p, lesson) == vod.StatusReady })
	t.Logf("node restarted %.1fs after the SIGKILL, took up job %s again at %.1fs, lesson ready at %.1fs (rescue after %s)",
		restarted.Seconds(), held.ID, pickedUp.Seconds(), time.Since(killed).Seconds(), killRescueAfter)
	checkJobsOnce(t, settledJobs(t, p.URL, ops), []string{lesson}, held, oldNode)
	checkReplayPlays(t, store, lesson)
}

// checkJobsOnce checks that each lesson has one job, done: the killed
// one (held, on node killedNode) in one more attempt than it had, its
// first ended by the rescue, every other in one attempt.
func checkJobsOnce(t *testing.T, jobs []transcode.Job, lessons []string, held transcode.Job, killedNode string) {
	t.Helper()
	byLesson := map[string][]transcode.Job{}
	for _, j := range jobs {
		byLesson[j.Lesson] = append(byLesson[j.Lesson], j)
	}
	for _, l := range lessons {
		js := byLesson[l]
		if len(js) != 1 || js[0].State != transcode.StateDone {
			t.Errorf("lesson %s: jobs %+v, want one done", l, js)
			continue
		}
		j := js[0]
		ran := j.FinishedAt.Sub(j.StartedAt)
		switch {
		case j.ID == held.ID:
			if j.Attempts != held.Attempts+1 || j.Node == killedNode || !strings.Contains(j.Error, "no heartbeat") {
				t.Errorf("the killed job: %+v, held at attempt %d by %s", j, held.Attempts, killedNode)
			}
			t.Logf("killed job %s: attempt %d on %s ran %.1fs; its first attempt ended %q", j.ID, j.Attempts, j.Node, ran.Seconds(), j.Error)
		case j.Attempts != 1:
			t.Errorf("job %s of lesson %s took %d attempts: a live worker's job was taken from it", j.ID, l, j.Attempts)
		default:
			t.Logf("job %s (%s) on %s ran %.1fs in one attempt", j.ID, l, j.Node, ran.Seconds())
		}
	}
}

// checkReplayPlays reads the lesson's replay back from storage and
// decodes every rendition end to end with ffmpeg: no error, and as long
// as the recording.
func checkReplayPlays(t *testing.T, store storage.Store, lesson string) {
	t.Helper()
	dir := transcodetest.Download(t, store, vod.LessonBase(lesson))
	var a vod.Assets
	b, err := os.ReadFile(filepath.Join(dir, vod.AssetsFile))
	if err != nil || json.Unmarshal(b, &a) != nil || len(a.Renditions) == 0 {
		t.Fatalf("assets of %s: %v %s", lesson, err, b)
	}
	ffmpeg := testenv.RequireBinary(t, "ffmpeg")
	ffprobe := testenv.RequireBinary(t, "ffprobe")
	for _, r := range a.Renditions {
		pl := filepath.Join(dir, filepath.FromSlash(r.Playlist))
		if out, err := exec.Command(ffmpeg, "-v", "error", "-i", pl, "-f", "null", "-").CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Fatalf("rendition %s of %s does not decode cleanly: %v %s", r.Name, lesson, err, out)
		}
		out, err := exec.Command(ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", pl).Output()
		secs, perr := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
		if err != nil || perr != nil || secs < killLessonSeconds-1 || secs > killLessonSeconds+1 {
			t.Fatalf("rendition %s of %s: ffprobe duration %q (%v), want %d s ±1", r.Name, lesson, out, err, killLessonSeconds)
		}
		t.Logf("%s rendition %s decodes cleanly, %.2fs", lesson, r.Name, secs)
	}
}

// workerProc is a `podium worker` process a test started.
type workerProc struct {
	cmd  *exec.Cmd
	addr string
	node string        // its name in the job table (host-pid)
	done chan struct{} // closed when it has exited, err set
	err  error
	log  string // the file of its output
}

// startWorker starts `podium worker` with args (plus a data dir and an
// HTTP address) and waits until it is ready; cleanup kills it.
func startWorker(t *testing.T, args ...string) *workerProc {
	t.Helper()
	dataDir := t.TempDir()
	w := &workerProc{addr: testenv.FreeAddr(t), done: make(chan struct{}), log: filepath.Join(dataDir, "worker.log")}
	out, err := os.Create(w.log)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close() // the process has its own copy
	w.cmd = exec.Command(testenv.PodiumBinary(t), append([]string{"worker", "--data-dir", dataDir, "--http-addr", w.addr}, args...)...)
	w.cmd.Stdout, w.cmd.Stderr = out, out
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	w.node = host + "-" + strconv.Itoa(w.cmd.Process.Pid)
	go func() {
		w.err = w.cmd.Wait()
		close(w.done)
	}()
	t.Cleanup(func() {
		w.kill()
		if t.Failed() {
			b, _ := os.ReadFile(w.log)
			t.Logf("worker %s log:\n%s", w.node, b)
		}
	})
	testenv.WaitFor(t, 30*time.Second, "the worker to answer /readyz", func() bool {
		code, _ := httpGet("http://"+w.addr+"/readyz", "")
		return code == http.StatusOK
	})
	return w
}

// kill SIGKILLs the worker (unless it exited) and waits for its exit.
func (w *workerProc) kill() {
	select {
	case <-w.done:
		return
	default:
	}
	_ = w.cmd.Process.Kill()
	<-w.done
}

func httpGet(url, token string) (int, string) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return 0, err.Error()
	}
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

// settledJobs lists the jobs once none is waiting or running: a lesson is
// ready when its outputs are published, a moment before River records its
// job as completed.
func settledJobs(t *testing.T, url, token string) []transcode.Job {
	t.Helper()
	var jobs []transcode.Job
	testenv.WaitFor(t, time.Minute, "every job finished", func() bool {
		jobs = listJobs(t, url, token)
		for i := range jobs {
			if !jobs[i].Finished() {
				return false
			}
		}
		return true
	})
	return jobs
}

func listJobs(t *testing.T, url, token string) []transcode.Job {
	t.Helper()
	code, b := httpGet(url+"/api/vod/jobs", token)
	var list struct{ Jobs []transcode.Job }
	if code != http.StatusOK || json.Unmarshal([]byte(b), &list) != nil {
		t.Fatalf("GET /api/vod/jobs: %d %s", code, b)
	}
	return list.Jobs
}

func getJob(t *testing.T, url, token, id string) transcode.Job {
	t.Helper()
	code, b := httpGet(url+"/api/vod/jobs/"+id, token)
	var j transcode.Job
	if code != http.StatusOK || json.Unmarshal([]byte(b), &j) != nil {
		t.Fatalf("GET /api/vod/jobs/%s: %d %s", id, code, b)
	}
	return j
}

// lessonStatus is the lesson's status in the node's catalog, as a student
// of it sees it ("" while the node does not list it).
func lessonStatus(t *testing.T, p *testenv.Podium, lesson string) string {
	t.Helper()
	code, b := httpGet(p.URL+"/api/vod/lessons/"+lesson, p.Token(lesson, "viewer", "Student"))
	var l vod.Lesson
	if code != http.StatusOK || json.Unmarshal([]byte(b), &l) != nil {
		return ""
	}
	return l.Status
}

// encodingFFmpeg returns the pid of an ffmpeg child of process parent that
// encodes video (libx264), or 0.
func encodingFFmpeg(parent int) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		state, ppid, ok := procStat(pid)
		if !ok || ppid != parent || state == "Z" {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		args := bytes.Split(cmdline, []byte{0})
		if err == nil && filepath.Base(string(args[0])) == "ffmpeg" && bytes.Contains(cmdline, []byte("libx264")) {
			return pid
		}
	}
	return 0
}

// processAlive reports whether pid runs (a zombie does not).
func processAlive(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state != "Z"
}

// procStat reads a process's state and parent from /proc/<pid>/stat.
func procStat(pid int) (state string, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return "", 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0], ppid, err == nil
}
