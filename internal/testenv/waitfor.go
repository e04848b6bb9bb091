package testenv

import (
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
