package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"podium/internal/testenv"
)

// The server is killed (SIGKILL, as a crash) and started again while
// teachers and classrooms of the load tool run with --reconnect: they
// rejoin by themselves as the web pages do, and every classroom receives
// the teacher's video again. How fast is the bench's business
// (docs/BENCHMARKS.md, "Recovery after a restart"); the test logs it.
func TestLoadtestClassroomsRecoverAfterServerRestart(t *testing.T) {
	testenv.RequireBinary(t, "ffmpeg")
	srv := testenv.StartPodium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const lessons, classrooms = 2, 3
	jsonPath := filepath.Join(t.TempDir(), "report.json")
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- Main(ctx, []string{
			"--server", srv.URL, "--secret", srv.Secret, "--lessons", fmt.Sprint(lessons),
			"--classrooms", fmt.Sprint(classrooms), "--join-rate", "10", "--duration", "45s",
			"--progress", "0", "--reconnect", "--json", jsonPath,
		}, &out)
	}()

	// Every classroom has joined its lesson: kill the server and start it
	// again on the same ports and data.
	admin := srv.Token("*", "admin", "ops")
	testenv.WaitFor(t, 60*time.Second, "every classroom to join its lesson", func() bool {
		for i := 1; i <= lessons; i++ {
			if participants(t, srv.URL, fmt.Sprintf("loadtest-%d", i), admin) < 1+classrooms {
				return false
			}
		}
		return true
	})
	time.Sleep(3 * time.Second) // let video flow before the crash
	srv.Kill()
	srv.Restart()

	if err := <-done; err != nil {
		t.Fatalf("loadtest: %v\n%s", err, out.String())
	}
	t.Log("\n" + out.String())
	rep := readReport(t, jsonPath)
	r := rep.Recovery
	if r == nil {
		t.Fatal("no recovery in the report")
	}
	if r.ServerRestarts < 1 {
		t.Fatalf("the tool did not see the server go away and come back: %+v", r)
	}
	if r.LostLink != lessons*classrooms || r.Recovered != lessons*classrooms {
		t.Fatalf("%d classrooms lost their link and %d received the teacher's video again, want all %d", r.LostLink, r.Recovered, lessons*classrooms)
	}
	t.Logf("restart to first frame: p50 %.0f ms, p95 %.0f ms, max %.0f ms", r.RestartToFirstFrameMs.P50, r.RestartToFirstFrameMs.P95, r.RestartToFirstFrameMs.Max)
}

// participants asks the server's API how many are in a lesson (0 when it
// is not live).
func participants(t *testing.T, server, lesson, admin string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, server+"/api/lessons/"+lesson, nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var v struct {
		Participants []json.RawMessage `json:"participants"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&v) != nil {
		return 0
	}
	return len(v.Participants)
}
