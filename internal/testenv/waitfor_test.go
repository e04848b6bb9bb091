package testenv

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// its goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// runWaitFor calls WaitFor with a fatalRecorder on its own goroutine and
// returns the failure message ("" when WaitFor returned normally).
func runWaitFor(timeout time.Duration, what string, cond func() bool) string {
	rec := &fatalRecorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		WaitFor(rec, timeout, what, cond)
	}()
	<-done
	return rec.msg
}

// WaitFor returns once the condition holds, having checked it until then.
func TestWaitForReturnsWhenConditionHolds(t *testing.T) {
	calls := 0
	msg := runWaitFor(20*time.Second, "the third check", func() bool {
		calls++
		return calls == 3
	})
	if msg != "" {
		t.Fatalf("WaitFor failed: %s", msg)
	}
	if calls != 3 {
		t.Fatalf("condition checked %d times, want 3", calls)
	}
}

// WaitFor fails the test, naming what it waited for and for how long, once
// the timeout has passed without the condition holding.
func TestWaitForFailsAfterTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	calls := 0
	start := time.Now()
	msg := runWaitFor(timeout, "the impossible", func() bool { calls++; return false })
	if want := "timed out after 300ms waiting for the impossible"; msg != want {
		t.Fatalf("failure message = %q, want %q", msg, want)
	}
	if waited := time.Since(start); waited < timeout {
		t.Fatalf("gave up after %v, before the %v timeout", waited, timeout)
	}
	if calls < 2 {
		t.Fatalf("condition checked %d times, want it polled", calls)
	}
}
