package sfu

import (
	"math"
	"time"
)

// gccEstimator is Google Congestion Control (draft-ietf-rmcat-gcc-02) for
// one subscriber connection, fed from its egress's send-time array and the
// subscriber's TWCC feedback, on the egress goroutine; it allocates
// nothing. The algorithms and constants are those of pion/interceptor's
// pkg/gcc (MIT), which the sfu ran before, so classrooms get the same
// estimates: the delay-based part groups packets sent within 5 ms, filters
// the inter-group delay variation with a Kalman filter, compares it with
// an adaptive threshold (overuse, normal, underuse) and steers an AIMD rate
// controller on the received rate; the loss-based part raises its estimate
// by 5 % while loss is under 2 % and cuts it above 10 %. The estimate is
// the lower of the two. Only the grouping of packets is libwebrtc's, not
// pion's (onAck says why).
type gccEstimator struct {
	acks []gccAck // scratch for one feedback packet

	refTime     int64 // unwrapped TWCC reference time (64 ms units)
	refTimeInit bool

	received rateHistory

	groupInit bool
	group     arrivalGroup
	prevInit  bool
	prev      arrivalGroup

	kalman    kalmanFilter
	threshold adaptiveThreshold
	overuse   overuseDetector
	rate      rateController
	loss      lossController

	target      int
	delayTarget int

	firstFeedback time.Time // when the first feedback came (measureTrains)
}

// gccAck is one packet a feedback reports on: its departure (our clock),
// its arrival (the receiver's clock; 0: lost) and its size.
type gccAck struct {
	departure, arrival int64 // ns
	size               int
}

// Pion's bounds and timings, kept.
const (
	gccBurst        = 5 * time.Millisecond   // packets sent within it form one group
	gccMaxBurst     = 100 * time.Millisecond // libwebrtc's: a burst joins a group for at most this
	gccRateWindow   = 500 * time.Millisecond
	gccOveruseTime  = 10 * time.Millisecond
	gccLossMin      = 100_000
	gccLossMax      = 100_000_000
	maxFeedbackAcks = 1024
)

func newGCCEstimator(initial, minRate, maxRate int, now time.Time) *gccEstimator {
	g := &gccEstimator{
		acks:        make([]gccAck, 0, maxFeedbackAcks),
		target:      initial,
		delayTarget: initial,
	}
	g.threshold = adaptiveThreshold{thresh: 12500 * time.Microsecond, up: 0.01, down: 0.00018, min: 6 * time.Millisecond, max: 600 * time.Millisecond}
	g.kalman = kalmanFilter{processUncertainty: 1e-3, estimateError: 0.1}
	g.overuse.lastUpdate = monoNs(now)
	g.rate = rateController{target: initial, min: minRate, max: maxRate}
	g.loss = lossController{bitrate: initial}
	return g
}

// onFeedback takes one TWCC feedback packet: sent finds a transport-wide
// sequence number's departure and size in the egress's array.
func (g *gccEstimator) onFeedback(fb *twccFeedback, sent func(seq uint16) (at int64, size int, ok bool), now time.Time) {
	acks := g.parse(fb, sent)
	if len(acks) == 0 {
		return
	}
	g.updateRTT(acks, now)
	g.measureTrains(acks, now)
	g.loss.update(acks, now)
	for _, a := range acks {
		if a.arrival != 0 {
			if r, ok := g.received.add(a); ok {
				g.rate.latestReceivedRate = r
			}
		}
	}
	for _, a := range acks {
		g.onAck(a, now)
	}
}

// The start. A classroom's line is unknown when it joins, so its estimate
// starts at bweInitialBitrate, which asks for 360p; a guess high enough
// for 720p flooded every line below it for the round trip before the
// first feedback (a satellite line's queue overflowed and the estimate
// landed far below 360p's need). The first keyframe, which the pacer lets
// out as one burst, then measures the line: packets that leave together
// arrive as fast as the line's narrowest link lets them through (a packet
// train). While the estimate is young (startWindow from the first
// feedback), a train that came through whole faster than the estimate
// raises it, to 95 % of the train's rate (the share libwebrtc takes of a
// probe's), at most bweTrainCeiling: on a good line 720p follows in a
// second. Below the ceiling only a train of trainTrustPackets counts: a
// 360p keyframe is 5 to 10 packets, and a satellite line's 20 ms of
// jitter made a train of 5 through 1 Mbit/s read as 2.3.
const (
	startWindow       = 3 * time.Second
	trainSpread       = 2 * time.Millisecond // packets sent within it left together
	trainMinPackets   = 5
	trainTrustPackets = 8
	trainMinBytes     = 4000
	trainShare        = 0.95
)

// measureTrains raises a young estimate to what the trains among acks (in
// sequence order) show the line carries.
func (g *gccEstimator) measureTrains(acks []gccAck, now time.Time) {
	if g.firstFeedback.IsZero() {
		g.firstFeedback = now
	}
	if now.Sub(g.firstFeedback) > startWindow {
		return
	}
	for i := 0; i < len(acks); {
		j := i + 1
		for j < len(acks) && acks[j].departure-acks[i].departure <= int64(trainSpread) {
			j++
		}
		rate, ok := trainRate(acks[i:j])
		if ok && rate > g.target && (rate >= bweTrainCeiling || j-i >= trainTrustPackets) {
			g.target, g.delayTarget, g.rate.target = rate, rate, rate
			g.loss.bitrate = max(g.loss.bitrate, rate)
		}
		i = j
	}
}

// trainRate is the rate in bit/s a train of packets sent together came
// through at (trainShare of it, at most bweTrainCeiling); false when the
// train is too short to tell or lost a packet.
func trainRate(train []gccAck) (int, bool) {
	if len(train) < trainMinPackets {
		return 0, false
	}
	first, last := int64(math.MaxInt64), int64(0)
	bytes := 0
	for i, a := range train {
		if a.arrival == 0 {
			return 0, false // the line did not carry it whole
		}
		if i > 0 { // the first packet's arrival starts the clock
			bytes += a.size
		}
		first, last = min(first, a.arrival), max(last, a.arrival)
	}
	if bytes < trainMinBytes {
		return 0, false
	}
	if last <= first {
		return bweTrainCeiling, true
	}
	rate := trainShare * float64(bytes*8) / time.Duration(last-first).Seconds()
	return int(min(rate, bweTrainCeiling)), true
}

// onSilence halves the estimate (not below the minimum) when no feedback
// has come for a while although packets went out (egress.checkFeedback):
// on a line so bad that the classroom's reports do not get back, the
// estimate would otherwise stay wherever it was, and the classroom be sent
// a layer its line cannot carry for as long as the silence lasts. Feedback
// that comes again moves the estimate on from there.
func (g *gccEstimator) onSilence() {
	cut := max(g.rate.min, g.target/2)
	g.target = min(g.target, cut)
	g.delayTarget = min(g.delayTarget, cut)
	g.rate.target = min(g.rate.target, cut)
	g.loss.bitrate = min(g.loss.bitrate, cut)
}

// parse turns a feedback packet into acknowledgments of packets the egress
// sent (as pion's FeedbackAdapter does).
func (g *gccEstimator) parse(fb *twccFeedback, sent func(uint16) (int64, int, bool)) []gccAck {
	acks := g.acks[:0]
	ref := fb.refTime
	if g.refTimeInit {
		delta := (ref-g.refTime+(1<<23))&0xffffff - (1 << 23)
		ref = g.refTime + delta
	}
	g.refTime, g.refTimeInit = ref, true
	arrival := ref * int64(64*time.Millisecond)
	deltas := fb.deltas
	seq := fb.base
	for _, symbol := range fb.symbols {
		var at int64
		if symbol == twccSmallDelta || symbol == twccLargeDelta {
			arrival += deltas[0] * int64(time.Microsecond)
			deltas = deltas[1:]
			at = arrival
			if at == 0 {
				at = 1 // 0 means lost
			}
		}
		if dep, size, ok := sent(seq); ok && len(acks) < cap(acks) {
			acks = append(acks, gccAck{departure: dep, arrival: at, size: size})
		}
		seq++
	}
	g.acks = acks
	return acks
}

// updateRTT is pion's: the smallest round trip of the packets the feedback
// reports, less the time each waited at the receiver for the feedback.
func (g *gccEstimator) updateRTT(acks []gccAck, now time.Time) {
	var sentFeedback int64
	for _, a := range acks {
		sentFeedback = max(sentFeedback, a.arrival)
	}
	best := int64(math.MaxInt64)
	for _, a := range acks {
		if a.arrival == 0 {
			continue
		}
		rtt := monoNs(now) - a.departure - (sentFeedback - a.arrival)
		best = min(best, rtt)
	}
	if best < math.MaxInt64 {
		g.rate.latestRTT = time.Duration(best)
	}
}

// onAck groups packets sent within a burst; each completed group is one
// delay measurement. The grouping is libwebrtc's (InterArrivalDelta): a
// group is the packets sent within gccBurst of its first, plus those that
// arrive in a burst right behind it (within gccBurst of the group's last
// arrival, with less time between their arrivals than between their
// departures, at most gccMaxBurst after the group's first arrival).
// Pion's grouping measured that burst against the group's first
// departure, not its last: through a full bottleneck whose packets arrive
// less than 5 ms apart (a 2 Mbit/s line and up) every packet then joined
// the group, which never ended, and the delay-based estimate stood still
// however much was lost (2.5 Mbit/s into a 2 Mbit/s line: 20 % lost, the
// estimate unmoved for 30 s).
func (g *gccEstimator) onAck(a gccAck, now time.Time) {
	if a.arrival == 0 {
		return
	}
	if !g.groupInit {
		g.group, g.groupInit = newArrivalGroup(a), true
		return
	}
	if a.arrival < g.group.arrival || a.departure < g.group.firstDeparture {
		return // out of order
	}
	if g.group.inBurst(a) || time.Duration(a.departure-g.group.firstDeparture) <= gccBurst {
		g.group.departure = max(g.group.departure, a.departure)
		g.group.arrival = a.arrival
		return
	}
	g.onGroup(g.group, now)
	g.group = newArrivalGroup(a)
}

// arrivalGroup is a group's first departure and arrival, and its last
// departure and arrival, which measure it against the next.
type arrivalGroup struct {
	firstDeparture, firstArrival int64
	departure, arrival           int64
}

func newArrivalGroup(a gccAck) arrivalGroup {
	return arrivalGroup{firstDeparture: a.departure, firstArrival: a.arrival, departure: a.departure, arrival: a.arrival}
}

// inBurst says whether a packet arrives in a burst behind the group (sent
// at the same instant as its last, or arriving sooner after it than it was
// sent): queued behind it, not delayed on its own.
func (ag *arrivalGroup) inBurst(a gccAck) bool {
	sendDelta := a.departure - ag.departure
	if sendDelta == 0 {
		return true // the egress reads the clock once per batch
	}
	arrivalDelta := a.arrival - ag.arrival
	return arrivalDelta-sendDelta < 0 && time.Duration(arrivalDelta) <= gccBurst &&
		time.Duration(a.arrival-ag.firstArrival) < gccMaxBurst
}

func (g *gccEstimator) onGroup(ag arrivalGroup, now time.Time) {
	if !g.prevInit {
		g.prev, g.prevInit = ag, true
		return
	}
	measurement := time.Duration((ag.arrival - g.prev.arrival) - (ag.departure - g.prev.departure))
	g.prev = ag
	estimate := g.kalman.update(measurement)
	use := g.overuse.detect(&g.threshold, estimate, now)
	if target, ok := g.rate.onUsage(use, now); ok {
		g.delayTarget = target
		g.target = min(target, g.loss.estimate(target))
	}
}

// kalmanFilter estimates the delay gradient from inter-group delay
// variations.
type kalmanFilter struct {
	estimate               time.Duration
	processUncertainty     float64
	estimateError          float64
	measurementUncertainty float64
}

// kalmanAlpha weighs the measurement noise estimate's history (pion's
// constant, computed once rather than for every group).
var kalmanAlpha = math.Pow(1-0.001, 30.0/(1000.0*5*float64(time.Millisecond)))

func (k *kalmanFilter) update(measurement time.Duration) time.Duration {
	z := measurement - k.estimate
	zms := float64(z.Microseconds()) / 1000.0
	alpha := kalmanAlpha
	root3 := 3 * math.Sqrt(k.measurementUncertainty)
	if zms > root3 {
		k.measurementUncertainty = math.Max(alpha*k.measurementUncertainty+(1-alpha)*root3*root3, 1)
	} else {
		k.measurementUncertainty = math.Max(alpha*k.measurementUncertainty+(1-alpha)*zms*zms, 1)
	}
	estimateUncertainty := k.estimateError + k.processUncertainty
	gain := estimateUncertainty / (estimateUncertainty + k.measurementUncertainty)
	k.estimate += time.Duration(gain * zms * float64(time.Millisecond))
	k.estimateError = (1 - gain) * estimateUncertainty
	return k.estimate
}

type usage int

const (
	usageNormal usage = iota
	usageOver
	usageUnder
)

// adaptiveThreshold compares the delay gradient with a threshold that
// follows it slowly, so a link's own jitter does not read as congestion.
type adaptiveThreshold struct {
	thresh     time.Duration
	up, down   float64
	min, max   time.Duration
	lastUpdate int64
	numDeltas  int
}

func (a *adaptiveThreshold) compare(estimate time.Duration, now time.Time) (usage, time.Duration) {
	const maxDeltas = 60
	a.numDeltas++
	if a.numDeltas < 2 {
		return usageNormal, estimate
	}
	t := time.Duration(min(a.numDeltas, maxDeltas)) * estimate
	use := usageNormal
	if t > a.thresh {
		use = usageOver
	} else if t < -a.thresh {
		use = usageUnder
	}
	a.update(t, monoNs(now))
	return use, t
}

func (a *adaptiveThreshold) update(estimate time.Duration, now int64) {
	if a.lastUpdate == 0 {
		a.lastUpdate = now
	}
	abs := time.Duration(math.Abs(float64(estimate.Microseconds()))) * time.Microsecond
	if abs > a.thresh+15*time.Millisecond {
		a.lastUpdate = now
		return
	}
	k := a.up
	if abs < a.thresh {
		k = a.down
	}
	dt := min(time.Duration(now-a.lastUpdate).Milliseconds(), 100)
	d := abs - a.thresh
	add := k * float64(d.Milliseconds()) * float64(dt)
	a.thresh = min(max(a.thresh+time.Duration(add*1000)*time.Microsecond, a.min), a.max)
	a.lastUpdate = now
}

// overuseDetector signals overuse only when the threshold is exceeded for
// more than gccOveruseTime and the gradient still grows.
type overuseDetector struct {
	lastEstimate       time.Duration
	lastUpdate         int64
	increasingDuration time.Duration
	increasingCounter  int
}

func (d *overuseDetector) detect(th *adaptiveThreshold, estimate time.Duration, now time.Time) usage {
	at := monoNs(now)
	delta := time.Duration(at - d.lastUpdate)
	d.lastUpdate = at
	thresholdUse, est := th.compare(estimate, now)
	use := usageNormal
	switch thresholdUse {
	case usageOver:
		if d.increasingDuration == 0 {
			d.increasingDuration = delta / 2
		} else {
			d.increasingDuration += delta
		}
		d.increasingCounter++
		if d.increasingDuration > gccOveruseTime && d.increasingCounter > 1 && est > d.lastEstimate {
			use = usageOver
		}
	case usageUnder:
		d.increasingCounter, d.increasingDuration = 0, 0
		use = usageUnder
	default:
		d.increasingCounter, d.increasingDuration = 0, 0
	}
	d.lastEstimate = est
	return use
}

type rateState int

const (
	stateIncrease rateState = iota
	stateDecrease
	stateHold
)

// stateOn is the controller's state on a detector signal. Pion's
// controller (whose estimates the allocator was tuned on) moves from
// "increase" on every signal, whatever its state was: overuse decreases,
// underuse holds, normal increases. Kept as is.
func stateOn(use usage) rateState {
	switch use {
	case usageOver:
		return stateDecrease
	case usageUnder:
		return stateHold
	}
	return stateIncrease
}

// rateController is the AIMD controller of the delay-based estimate.
type rateController struct {
	init               bool
	target, min, max   int
	lastUpdate         int64
	latestRTT          time.Duration
	latestReceivedRate int
	decreaseRate       movingAverage
}

// onUsage moves the controller on a detector signal; ok is false when it
// holds.
func (c *rateController) onUsage(use usage, now time.Time) (target int, ok bool) {
	if !c.init {
		c.init = true
		return 0, false
	}
	switch stateOn(use) {
	case stateIncrease:
		c.target = min(max(c.increase(monoNs(now)), c.min), c.max)
	case stateDecrease:
		c.target = min(max(c.decrease(monoNs(now)), c.min), c.max)
	default:
		return 0, false
	}
	return c.target, true
}

func (c *rateController) increase(now int64) int {
	received := float64(c.latestReceivedRate)
	avg := &c.decreaseRate
	sinceMs := float64(time.Duration(now - c.lastUpdate).Milliseconds())
	if avg.average > 0 && received > avg.average-3*avg.stdDeviation && received < avg.average+3*avg.stdDeviation {
		// Near the rate of the last decrease: additive increase.
		bitsPerFrame := float64(c.target) / 30.0
		packetsPerFrame := math.Ceil(bitsPerFrame / (1200 * 8))
		expectedPacketSizeBits := bitsPerFrame / packetsPerFrame
		responseTime := 100*time.Millisecond + c.latestRTT
		alpha := 0.5 * math.Min(sinceMs/float64(responseTime.Milliseconds()), 1.0)
		increase := int(math.Max(1000.0, alpha*expectedPacketSizeBits))
		c.lastUpdate = now
		return int(math.Min(float64(c.target+increase), 1.5*received))
	}
	eta := math.Pow(1.08, math.Min(sinceMs/1000, 1.0))
	c.lastUpdate = now
	rate := int(eta * float64(c.target))
	limit := int(1.5 * received)
	if rate > limit && limit > c.target {
		return limit
	}
	if rate < c.target {
		return c.target
	}
	return rate
}

func (c *rateController) decrease(now int64) int {
	const beta = 0.85
	target := int(beta * float64(c.latestReceivedRate))
	c.decreaseRate.update(float64(c.latestReceivedRate))
	c.lastUpdate = now
	return target
}

type movingAverage struct{ average, variance, stdDeviation float64 }

func (a *movingAverage) update(v float64) {
	const alpha = 0.95
	if a.average == 0 {
		a.average = v
		return
	}
	x := v - a.average
	a.average += alpha * x
	a.variance = (1 - alpha) * (a.variance + alpha*x*x)
	a.stdDeviation = math.Sqrt(a.variance)
}

// rateHistory measures the received rate over gccRateWindow of arrivals.
type rateHistory struct {
	samples [500]rateSample
	start   int
	count   int
	sum     int
	init    bool
}

type rateSample struct {
	arrival int64
	size    int
}

// add records an arrival and returns the received rate in bit/s.
func (h *rateHistory) add(a gccAck) (int, bool) {
	latest := a.arrival
	if h.count > 0 {
		prev := h.latest()
		if time.Duration(prev-a.arrival) > time.Second {
			*h = rateHistory{init: h.init}
		} else if prev > latest {
			latest = prev
		}
	}
	deadline := latest - int64(gccRateWindow)
	if a.arrival < deadline {
		return 0, false
	}
	for h.count > 0 && h.samples[h.start].arrival < deadline {
		h.removeOldest()
	}
	if h.count == len(h.samples) {
		if a.arrival < h.samples[h.start].arrival {
			return 0, false
		}
		h.removeOldest()
	}
	pos := h.count
	for pos > 0 {
		prev := h.samples[(h.start+pos-1)%len(h.samples)]
		if a.arrival >= prev.arrival {
			break
		}
		h.samples[(h.start+pos)%len(h.samples)] = prev
		pos--
	}
	h.samples[(h.start+pos)%len(h.samples)] = rateSample{arrival: a.arrival, size: a.size}
	h.count++
	h.sum += a.size
	if !h.init {
		h.init = true
		return a.size * 8, true
	}
	dt := time.Duration(h.latest() - h.samples[h.start].arrival)
	if dt <= 0 {
		return 0, false
	}
	return int(float64(8*h.sum) / dt.Seconds()), true
}

func (h *rateHistory) latest() int64 { return h.samples[(h.start+h.count-1)%len(h.samples)].arrival }

func (h *rateHistory) removeOldest() {
	h.sum -= h.samples[h.start].size
	h.samples[h.start] = rateSample{}
	h.start = (h.start + 1) % len(h.samples)
	h.count--
}

// lossController is the loss-based estimate.
type lossController struct {
	bitrate        int
	averageLoss    float64
	lastLossUpdate int64
	lastIncrease   int64
	lastDecrease   int64
}

func (e *lossController) estimate(wanted int) int {
	if e.bitrate <= 0 {
		e.bitrate = min(max(wanted, gccLossMin), gccLossMax)
	}
	e.bitrate = min(wanted, e.bitrate)
	return e.bitrate
}

func (e *lossController) update(acks []gccAck, now time.Time) {
	const (
		increaseLoss = 0.02
		decreaseLoss = 0.1
		holdTime     = int64(200 * time.Millisecond)
	)
	lost := 0
	for _, a := range acks {
		if a.arrival == 0 {
			lost++
		}
	}
	t := monoNs(now)
	ratio := float64(lost) / float64(len(acks))
	sinceMs := float64(time.Duration(t - e.lastLossUpdate).Milliseconds())
	e.averageLoss = ratio + math.Exp(-sinceMs/200.0)*(e.averageLoss-ratio)
	e.lastLossUpdate = t
	up := math.Max(e.averageLoss, ratio)
	down := math.Min(e.averageLoss, ratio)
	if up < increaseLoss && t-e.lastIncrease > holdTime {
		e.lastIncrease = t
		e.bitrate = min(max(int(1.05*float64(e.bitrate)), gccLossMin), gccLossMax)
	} else if down > decreaseLoss && t-e.lastDecrease > holdTime {
		e.lastDecrease = t
		e.bitrate = min(max(int(float64(e.bitrate)*(1-0.5*down)), gccLossMin), gccLossMax)
	}
}
