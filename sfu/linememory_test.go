package sfu

import (
	"testing"
	"time"
)

// TestLineAtCloseIsWhatTheLineCarried: a connection that closes right
// after feedback leaves the estimate and stills it had; one that closes
// after seconds without feedback (an outage, during which its egress
// halved its estimate each second) leaves the estimate of its last
// feedback and not the stills; one never measured leaves nothing.
func TestLineAtCloseIsWhatTheLineCarried(t *testing.T) {
	now := time.Now()
	e := newEgress()
	if _, ok := lineAtClose(e, true, 0, false, now); ok {
		t.Error("a connection with no feedback left an estimate: the starting guess")
	}
	if _, ok := lineAtClose(e, false, 0, false, now); ok {
		t.Error("a connection with neither feedback nor REMB left an estimate")
	}
	if line, ok := lineAtClose(e, false, 180_000, true, now); !ok || line.bps != 180_000 || !line.stills {
		t.Errorf("REMB-only connection left %+v, %v; want 180 kbit/s on stills", line, ok)
	}

	e.heardEstimate.Store(1_800_000)
	e.heardAtNs.Store(monoNs(now))
	e.target.Store(200_000) // cut for silence since
	for _, c := range []struct {
		after          time.Duration
		onStills, want bool
		what           string
	}{
		{200 * time.Millisecond, false, false, "closed right after feedback"},
		{200 * time.Millisecond, true, true, "closed right after feedback, on stills"},
		{5 * time.Second, true, false, "closed after 5 s of silence, on stills"},
	} {
		line, ok := lineAtClose(e, true, 0, c.onStills, now.Add(c.after))
		if !ok || line.bps != 1_800_000 || line.stills != c.want {
			t.Errorf("%s: left %+v, %v; want the last feedback's 1.8 Mbit/s, stills %v", c.what, line, ok, c.want)
		}
	}

	var m lineMemory
	m.remember("lesson", "hill", lineEstimate{bps: 150_000, stills: true}, now)
	if line, ok := m.recall("lesson", "hill", now.Add(time.Minute)); !ok || line.bps != 150_000 || !line.stills {
		t.Errorf("recalled %+v, %v a minute later", line, ok)
	}
	if _, ok := m.recall("other-lesson", "hill", now.Add(time.Minute)); ok {
		t.Error("recalled a classroom's line in another lesson")
	}
	if _, ok := m.recall("lesson", "hill", now.Add(lineMemorySpan+time.Second)); ok {
		t.Error("recalled a line after lineMemorySpan")
	}
}
