package sfu

import (
	"sync"
	"testing"
	"time"
)

// A burst of keyframe requests from many subscribers reaches the publisher
// as one request now and one at the end of the window, never more, and
// never none for a subscriber that asked inside the window.
func TestKeyframeRequestsMergedNotDropped(t *testing.T) {
	var mu sync.Mutex
	var sent []time.Time
	track := NewTrack(TrackInfo{ID: "t", Kind: KindVideo, Layers: []string{"q", "h", "f"}}, func(layer int) {
		if layer != 2 {
			t.Errorf("request for layer %d, want 2", layer)
		}
		mu.Lock()
		sent = append(sent, time.Now())
		mu.Unlock()
	})
	defer track.Close()

	start := time.Now()
	for i := 0; i < 100; i++ {
		track.RequestKeyframe(2)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(sent)
		mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Long enough for a wrongly repeated timer to have fired too.
	time.Sleep(2 * keyframeInterval)
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 2 {
		t.Fatalf("100 requests in one window reached the publisher %d times, want 2 (one now, one deferred)", len(sent))
	}
	if gap := sent[1].Sub(start); gap < keyframeInterval {
		t.Errorf("deferred request came %v after the first, inside the %v window", gap, keyframeInterval)
	}
}

func TestKeyframeRequestAfterCloseIsDropped(t *testing.T) {
	calls := make(chan int, 4)
	track := NewTrack(TrackInfo{ID: "t", Kind: KindVideo}, func(layer int) { calls <- layer })
	track.RequestKeyframe(0) // sent
	track.RequestKeyframe(0) // deferred
	track.Close()
	<-calls
	select {
	case <-calls:
		t.Fatal("a deferred keyframe request reached the publisher of a closed track")
	case <-time.After(2 * keyframeInterval):
	}
}
