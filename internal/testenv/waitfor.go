package testenv

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// waitForPoll is how often WaitFor checks its condition.
const waitForPoll = 50 * time.Millisecond

// WaitFor checks cond every 50 ms until it holds, and fails the test with
// t.Fatalf if it still does not once timeout has passed. what names the
// awaited state for the failure message ("timed out after 20s waiting for
// <what>"). cond is checked once more at the deadline, so a condition that
// holds just in time passes. Like t.Fatalf, WaitFor must be called from
// the goroutine running the test, never from one it started.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(waitForPoll)
	}
}

// waitServing probes a server process the test started until probe
// succeeds, failing the test (with the server's log) if the process exits
// first or timeout passes. name and what make the messages: "redis-server
// on 127.0.0.1:1234 exited before it could answer PING".
func waitServing(t testing.TB, name, what string, timeout time.Duration, exited <-chan struct{}, probe func() error, logTail func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := probe()
		if err == nil {
			return
		}
		select {
		case <-exited:
			t.Fatalf("%s exited before it could %s: %v\n%s", name, what, err, logTail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not %s within %v: %v\n%s", name, what, timeout, err, logTail())
		}
		time.Sleep(waitForPoll)
	}
}

// startServer starts a server process a test needs and returns a channel
// closed when it exits, and a function reading the end of its log file.
func startServer(t testing.TB, cmd *exec.Cmd, name, logPath string) (exited <-chan struct{}, logTail func() string) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	return done, func() string {
		b, _ := os.ReadFile(logPath)
		return tail(b, 4000)
	}
}
