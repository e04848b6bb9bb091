package sfu

import (
	"math"
	"sync"
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
	budget     *probeBudget // the node's, shared by every subscriber
	granted    float64      // padding rate held from the budget
	dt         *DownTrack   // padded now; nil when not probing
	bestEst    float64      // highest estimate during this probe
	progressAt time.Time    // when the estimate last rose by probeProgress
	notBefore  time.Time
	backoff    time.Duration
}

const (
	probeMaxLoss    = randomLossLimit // above it the loss-based estimate rules
	probeProgress   = 1.05            // a rise of 5 % counts as progress
	probeStall      = 3 * time.Second
	probeBackoffMin = 4 * time.Second
	probeBackoffMax = 64 * time.Second
	probeMaxBps     = 2_000_000
	probeMinBps     = 30_000 // less would take too long to tell anything
	// GCC lets its estimate reach 1.5 times what arrives; aim for the
	// next layer's rate with a little margin over that.
	probeReach = 1.4
	// probeFill caps what the subscriber is sent, padding included, at
	// this share of its estimate: GCC climbs at its own pace whatever is
	// padded, and padding beyond it only overflowed satellite links, whose
	// feedback comes 600 ms late.
	probeFill = 1.1
)

// probeBudget caps the padding a whole node sends at once. Padding costs
// the server as much per packet as media, so on a busy node many classrooms
// probing together would slow everyone's media: probes take turns instead.
type probeBudget struct {
	mu   sync.Mutex
	max  float64 // bit/s
	used float64
}

// nodeProbeBudget is the default cap: about 3,700 padding packets a second.
const nodeProbeBudget = 8_000_000

// exchange returns a grant of held bit/s and takes up to want instead.
func (b *probeBudget) exchange(held, want float64) float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used = max(0, b.used-held)
	got := max(0, min(want, b.max-b.used))
	b.used += got
	return got
}

// step runs once per allocation with the allocator's inputs and choice;
// sending is the subscriber's measured send rate (media and padding).
func (p *prober) step(now time.Time, est, sending, loss float64, items []allocItem, layers []int, dts []*DownTrack) {
	want := allocate(math.Inf(1), math.Inf(1), items)
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
	if held < 0 || (p.dt == nil && (now.Before(p.notBefore) || loss > probeMaxLoss)) {
		return
	}
	// Pad so that what arrives lets the estimate reach the current choice
	// plus the next layer's step, within probeFill of the estimate: media
	// already sent counts.
	pad := min((est+extra)/probeReach, est*probeFill)
	pad = min(pad-sending+p.granted, probeMaxBps)
	p.granted = p.budget.exchange(p.granted, pad)
	if p.granted < probeMinBps {
		if p.dt != nil {
			p.stop(now, false)
		} else {
			p.granted = p.budget.exchange(p.granted, 0)
		}
		return
	}
	if p.dt == nil {
		p.dt, p.bestEst, p.progressAt = dts[held], est, now
	}
	p.dt.setPadding(p.granted)
}

// stop ends a probe; a probe that did not lift the layer backs off.
func (p *prober) stop(now time.Time, succeeded bool) {
	p.dt.setPadding(0)
	p.dt = nil
	p.granted = p.budget.exchange(p.granted, 0)
	if succeeded {
		p.backoff = 0
		return
	}
	p.backoff = min(max(2*p.backoff, probeBackoffMin), probeBackoffMax)
	p.notBefore = now.Add(p.backoff)
}

// release gives the prober's grant back (the subscriber is closing).
func (p *prober) release() {
	if p.dt != nil {
		p.dt.setPadding(0)
		p.dt = nil
	}
	p.granted = p.budget.exchange(p.granted, 0)
}
