package sfu

import (
	"math"
	"time"
)

// prober decides when a subscriber's link is probed for more bandwidth.
//
// The congestion controller (GCC) never estimates more than 1.5 times the
// rate it sees arrive. A classroom whose estimate fell (a burst of loss, a
// busy moment on its line) is moved to a smaller layer, then receives less,
// and its estimate can climb back no faster than the smaller layer allows,
// and not at all where the next layer needs more than 1.5 times what the
// classroom receives now (q at 150 kbit/s plus audio, h at 500 kbit/s):
// without probing it could watch the small picture for the rest of the
// lesson on a link that has long recovered.
//
// So when the allocator holds a track below the layer the subscriber could
// have, and the link is clean, the prober pads that track's stream with the
// extra rate the next layer needs. If the estimate climbs, the allocator
// switches up and probing stops. If the estimate falls instead, the link
// is full: probing stops and waits, twice as long each failed time.
type prober struct {
	dt         *DownTrack // padded now; nil when not probing
	bestEst    float64    // highest estimate during this probe
	progressAt time.Time  // when the estimate last rose by probeProgress
	notBefore  time.Time
	backoff    time.Duration
}

const (
	probeMaxLoss    = 0.02 // GCC does not raise its estimate above 2 % loss
	probeProgress   = 1.05 // a rise of 5 % counts as progress
	probeStall      = 3 * time.Second
	probeBackoffMin = 4 * time.Second
	probeBackoffMax = 64 * time.Second
	probeMaxBps     = 2_000_000
)

// step runs once per allocation with the allocator's inputs and choice.
func (p *prober) step(now time.Time, est, loss float64, items []allocItem, layers []int, dts []*DownTrack) {
	want := allocate(math.Inf(1), items)
	held, extra := -1, 0.0
	for i := range items {
		if layers[i] >= want[i] || items[i].current < 0 {
			continue
		}
		r := effectiveRates(items[i].rates)
		next := layers[i] + 1
		for next < len(r) && r[next] == 0 {
			next++
		}
		if next >= len(r) || next > want[i] {
			continue
		}
		if held < 0 || items[i].priority > items[held].priority {
			held, extra = i, r[next]*upgradeHeadroom-r[layers[i]]
		}
	}

	if p.dt != nil {
		if est > p.bestEst*probeProgress {
			p.bestEst, p.progressAt = est, now
		}
		// A probe ends when the layer went up, when the estimate fell (the
		// link is full) and when it stopped rising.
		failed := est < 0.85*p.bestEst || loss > probeMaxLoss || now.Sub(p.progressAt) > probeStall
		if held < 0 || dts[held] != p.dt || failed {
			p.stop(now, held < 0 && !failed)
		}
	}
	if held < 0 || p.dt != nil || now.Before(p.notBefore) || loss > probeMaxLoss || extra <= 0 {
		if p.dt != nil && held >= 0 {
			p.dt.setPadding(min(extra, probeMaxBps))
		}
		return
	}
	p.dt, p.bestEst, p.progressAt = dts[held], est, now
	p.dt.setPadding(min(extra, probeMaxBps))
}

// stop ends a probe; a probe that did not lift the layer backs off.
func (p *prober) stop(now time.Time, succeeded bool) {
	p.dt.setPadding(0)
	p.dt = nil
	if succeeded {
		p.backoff = 0
		return
	}
	p.backoff = min(max(2*p.backoff, probeBackoffMin), probeBackoffMax)
	p.notBefore = now.Add(p.backoff)
}
