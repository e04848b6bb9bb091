package sfu

import (
	"testing"
	"time"
)

// feedGroups runs n groups 5 ms apart (send time) through a detector; the
// arrival of group i is its send time plus extra(i), the queueing it met.
// It returns how many groups the detector called overuse and underuse.
func feedGroups(d *trendlineDetector, n int, extra func(i int) time.Duration) (over, under int) {
	const gap = 5 * time.Millisecond
	start := time.Unix(1000, 0)
	prevArrival := time.Duration(0)
	for i := 1; i <= n; i++ {
		arrival := time.Duration(i)*gap + extra(i)
		variation := arrival - prevArrival - gap
		if i == 1 {
			variation = 0
		}
		prevArrival = arrival
		switch d.update(variation, gap, int64(arrival), start.Add(time.Duration(i)*gap)) {
		case usageOver:
			over++
		case usageUnder:
			under++
		}
	}
	return over, under
}

func TestTrendlineSeesAGrowingQueue(t *testing.T) {
	d := newTrendlineDetector()
	// Each group waits 1 ms longer than the one before: a queue filling
	// at a fifth of the send rate.
	over, _ := feedGroups(&d, 200, func(i int) time.Duration { return time.Duration(i) * time.Millisecond })
	if over == 0 {
		t.Fatal("a queue growing by 1 ms a group was never called overuse")
	}
}

func TestTrendlineIgnoresFrameSawtooth(t *testing.T) {
	d := newTrendlineDetector()
	// Frames every 33 ms sent in a burst through a bottleneck they nearly
	// fill: the groups of one frame wait 0, 8 and 16 ms, and the queue is
	// empty again before the next frame (no growth from frame to frame).
	over, _ := feedGroups(&d, 2000, func(i int) time.Duration {
		return time.Duration(i%7) % 3 * 8 * time.Millisecond
	})
	if over != 0 {
		t.Fatalf("a per-frame sawtooth with no growth was called overuse %d times", over)
	}
}

func TestTrendlineSeesADrainingQueue(t *testing.T) {
	d := newTrendlineDetector()
	// 300 ms of queue draining by 2 ms a group.
	_, under := feedGroups(&d, 150, func(i int) time.Duration { return max(0, 300*time.Millisecond-time.Duration(i)*2*time.Millisecond) })
	if under == 0 {
		t.Fatal("a draining queue was never called underuse")
	}
}
