package sfu

import (
	"sync"
	"time"
)

// lineMemory keeps the last bandwidth estimate of each classroom's
// receiving connection for a while after it closes, and whether it was on
// sound and stills, so that the connection it rejoins with starts from
// what its line carried, not from bweInitialBitrate. A board on a village
// line rejoins when its connection fails; started again at the 2.5 Mbit/s
// guess, it was flooded with 720p for the seconds its estimate took to
// fall, its line queued a minute of packets, and the new connection
// failed too.
type lineMemory struct {
	mu    sync.Mutex
	lines map[lineKey]lineEstimate
}

type lineKey struct{ lesson, participant string }

type lineEstimate struct {
	bps    float64
	stills bool
	at     time.Time
}

// lineMemorySpan is how long a closed connection's estimate is kept: a
// rejoin after longer may be from another line (the board moved, the
// school's link came back).
const lineMemorySpan = 5 * time.Minute

// lineAtClose is what a closing connection's line is known to carry: the
// estimate its last TWCC feedback left (or its client's last REMB), not
// one its egress cut for silence since (a connection that ends in a Wi-Fi
// outage halved its estimate each second of it, and the line is as good
// as before), and whether it was on stills, unless it ended in such a
// silence (the stills may be the silence's). ok is false when nothing was
// measured: the estimate is still the starting guess.
func lineAtClose(e *egress, sawTWCC bool, remb uint64, onStills bool, now time.Time) (line lineEstimate, ok bool) {
	if !sawTWCC {
		if remb == 0 {
			return lineEstimate{}, false
		}
		return lineEstimate{bps: float64(remb), stills: onStills}, true
	}
	at := e.heardAtNs.Load()
	if at == 0 {
		return lineEstimate{}, false
	}
	recent := time.Duration(monoNs(now)-at) < feedbackTimeout(time.Duration(e.rttNs.Load()))
	return lineEstimate{bps: float64(e.heardEstimate.Load()), stills: onStills && recent}, true
}

// remember records how a closed connection ended.
func (m *lineMemory) remember(lesson, participant string, line lineEstimate, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lines == nil {
		m.lines = make(map[lineKey]lineEstimate)
	}
	for k, e := range m.lines {
		if now.Sub(e.at) > lineMemorySpan {
			delete(m.lines, k)
		}
	}
	line.at = now
	m.lines[lineKey{lesson, participant}] = line
}

// recall returns how a participant's last connection ended, if it closed
// within lineMemorySpan.
func (m *lineMemory) recall(lesson, participant string, now time.Time) (lineEstimate, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.lines[lineKey{lesson, participant}]
	if !ok || now.Sub(e.at) > lineMemorySpan {
		return lineEstimate{}, false
	}
	return e, true
}
