package sfu

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
// highest layer that fits.
func allocate(budget float64, items []allocItem) []int {
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
			cost := r[l] - base
			switch {
			case l > it.current:
				cost = r[l]*upgradeHeadroom - base
			case l == it.current:
				cost = r[l]*keepMargin - base
			}
			if cost <= budget {
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
