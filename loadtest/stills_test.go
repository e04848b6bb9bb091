package loadtest

import (
	"testing"
	"time"
)

// TestStillsAccounting: time on stills and the pictures received meanwhile
// add up over two periods, the second still running at the end.
func TestStillsAccounting(t *testing.T) {
	var c classroomStats
	frame := func(n int) {
		c.video.mu.Lock()
		c.video.frames += uint64(n)
		c.video.mu.Unlock()
	}
	frame(100) // video before stills
	c.setStills(true)
	frame(3)
	c.setStills(true) // repeated: nothing changes
	time.Sleep(20 * time.Millisecond)
	c.setStills(false)
	frame(50) // video again
	c.setStills(true)
	frame(2)
	d, n := c.stillsUntil(time.Now().Add(time.Second))
	if n != 5 {
		t.Errorf("pictures on stills %d, want 5", n)
	}
	if d < time.Second+20*time.Millisecond || d > 2*time.Second {
		t.Errorf("time on stills %v, want the 20 ms period and the running one to the end (1 s)", d)
	}
}

// TestLossSince: the loss of a window is computed from counts taken at its
// start, whatever was lost before.
func TestLossSince(t *testing.T) {
	var s streamStats
	for seq := uint16(0); seq < 100; seq++ {
		if seq%2 == 0 || seq == 99 { // half lost before the window
			s.seq(seq)
		}
	}
	e0, d0 := s.counts()
	for seq := uint16(100); seq < 200; seq++ {
		if seq != 150 {
			s.seq(seq)
		}
	}
	l, ok := s.lossSince(e0, d0)
	if !ok || l < 0.0099 || l > 0.0101 {
		t.Errorf("loss in the window %.4f (ok %v), want 0.01", l, ok)
	}
}
