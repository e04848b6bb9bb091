package sfu

import "time"

// The stream allocator chooses, for one subscriber, the simulcast layer of
// every subscribed video track from one bandwidth estimate: the most
// important pictures (a screen share, the teacher or the on-stage classroom)
// get quality first, grid pictures get what is left.

// Priorities of a subscribed video track, highest first.
const (
	priorityGrid   = 1 // a classroom in the teacher's grid
	priorityStage  = 2 // the teacher's camera, the on-stage classroom
	priorityScreen = 3 // slides and whiteboard: must stay legible
)

// allocItem is one video track as the allocator sees it.
type allocItem struct {
	priority int
	// rates is the measured bitrate of each layer in bit/s, lowest first;
	// 0 means the layer is not being received (not published or paused).
	rates    []float64
	maxLayer int // subscriber's cap, -1 none
	current  int // layer forwarded now, -1 none
}

// upgradeHeadroom is the margin a layer above the current one must fit
// with, and keepMargin the shortfall the current layer is allowed before
// it is given up: an estimate wandering around a layer's rate (GCC's
// estimate moves by 10-20 % on a busy link) then does not flap between
// layers, each flap costing a keyframe. A layer survives one GCC back-off
// (to 85 % of what arrived): at 0.85, 720p on a 2 Mbit/s line was lost at
// the first back-off and not regained for seconds (tcp443: 16 of 20 on
// 720p at 0.75, 0 of 20 at 0.85). The pacer (egress.go) keeps the extra
// from arriving as a burst.
const (
	upgradeHeadroom = 1.15
	keepMargin      = 0.75
)

// defaultLayerRates are assumed for a track whose layers have not been
// measured yet (the first half second after it is published).
var defaultLayerRates = []float64{150_000, 500_000, 1_500_000}

// allocate returns the layer index for each item. Every track gets at least
// its lowest available layer (a frozen picture is worse than a small one);
// the rest of the budget goes to tracks in priority order, each taking the
// highest layer that fits. budget is what new layers are chosen with and
// keepBudget (at least budget) what a layer already forwarded is kept with:
// the subscriber passes the lower and the higher of its last two
// allocations' estimates (estimateHold), so neither a spike nor a dip alone
// moves a layer.
func allocate(budget, keepBudget float64, items []allocItem) []int {
	keepSlack := max(0, keepBudget-budget)
	out := make([]int, len(items))
	order := make([]int, len(items))
	for i := range items {
		order[i] = i
	}
	// Stable insertion sort by priority, highest first (a handful of items).
	for i := 1; i < len(order); i++ {
		for j := i; j > 0 && items[order[j]].priority > items[order[j-1]].priority; j-- {
			order[j], order[j-1] = order[j-1], order[j]
		}
	}
	rates := make([][]float64, len(items))
	for i, it := range items {
		rates[i] = effectiveRates(it.rates)
		out[i] = lowestAvailable(rates[i])
		budget -= rates[i][out[i]]
	}
	for _, i := range order {
		it := items[i]
		r := rates[i]
		top := len(r) - 1
		if it.maxLayer >= 0 && it.maxLayer < top {
			top = it.maxLayer
		}
		base := r[out[i]]
		for l := top; l > out[i]; l-- {
			if r[l] == 0 {
				continue
			}
			cost, slack := r[l]-base, 0.0
			switch {
			case l > it.current:
				cost = r[l]*upgradeHeadroom - base
			case l == it.current:
				cost, slack = r[l]*keepMargin-base, keepSlack
			}
			if cost <= budget+slack {
				budget -= r[l] - base
				out[i] = l
				break
			}
		}
	}
	return out
}

// effectiveRates substitutes defaults when nothing has been measured.
func effectiveRates(rates []float64) []float64 {
	for _, r := range rates {
		if r > 0 {
			return rates
		}
	}
	out := make([]float64, len(rates))
	for i := range out {
		// Map n layers onto the top of the defaults: one layer is "full".
		d := len(defaultLayerRates) - len(rates) + i
		if d < 0 {
			d = 0
		}
		if d >= len(defaultLayerRates) {
			d = len(defaultLayerRates) - 1
		}
		out[i] = defaultLayerRates[d]
	}
	return out
}

func lowestAvailable(rates []float64) int {
	for i, r := range rates {
		if r > 0 {
			return i
		}
	}
	return 0
}

// estimateHold is how long an estimate must last to move a layer: the
// current and the previous allocation's. GCC's estimate on a rural link
// swings within a second (satellite20: 0.27 to 1.6 Mbit/s on a 1 Mbit/s
// line, tcp443: 2 to 1 Mbit/s and back): a layer given up on one low
// reading and taken again on the next high one cost two keyframes, each
// a burst the line had to carry on top of the layer.
const estimateHold = allocateInterval + allocateInterval/5

// estimateSettle is how long a new subscriber's estimate is taken as it
// comes (and how long it is not probed): it starts from a guess
// (bweInitialBitrate, raised at once on a fast line) that a rural line may
// not carry, and a layer chosen on the guess is left at once, not held.
const estimateSettle = 3 * time.Second

// estimateWindow keeps a subscriber's recent estimates.
type estimateWindow struct {
	samples [8]estimateSample
	next    int
	first   time.Time
}

type estimateSample struct {
	at  time.Time
	est float64
}

// add records an estimate and returns the lowest and the highest of those
// within estimateHold.
func (w *estimateWindow) add(now time.Time, est float64) (low, high float64) {
	if w.first.IsZero() {
		w.first = now
	}
	w.samples[w.next] = estimateSample{at: now, est: est}
	w.next = (w.next + 1) % len(w.samples)
	low, high = est, est
	if now.Sub(w.first) < estimateSettle {
		return low, high
	}
	for _, s := range w.samples {
		if !s.at.IsZero() && now.Sub(s.at) <= estimateHold {
			low, high = min(low, s.est), max(high, s.est)
		}
	}
	return low, high
}
