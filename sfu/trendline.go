package sfu

import (
	"math"
	"time"
)

// trendlineDetector is the delay-based overuse detector of libwebrtc's
// GCC (goog_cc's TrendlineEstimator, the successor of the draft's Kalman
// filter): the inter-group delay variations are accumulated, smoothed, and
// the slope of the last trendlineWindow smoothed values against their
// arrival times is the delay trend. A video frame sent in a burst through
// a bottleneck it nearly fills makes a sawtooth of per-group variations
// (rising within the frame, falling before the next); the Kalman filter
// followed each tooth, and on a 2 Mbit/s line carrying 720p it signalled
// overuse about once a second. The slope over 20 groups spans several
// frames and sees only a queue that keeps growing.
type trendlineDetector struct {
	numDeltas      int
	firstArrival   int64 // ns, of the first group
	accumulated    float64
	smoothed       float64
	hist           [trendlineWindow]trendSample
	histLen, next  int
	prevTrend      float64
	threshold      float64 // ms
	lastThreshold  int64   // ns
	overusingSince float64 // ms over the threshold, -1 none
	overuseCount   int
	hypothesis     usage
}

type trendSample struct{ x, y float64 } // arrival ms since the first, smoothed delay ms

// libwebrtc's constants.
const (
	trendlineWindow = 20
	// trendlineMinSamples: libwebrtc waits for a full window, but it
	// starts at 300 kbit/s; a classroom here starts at the 2.5 Mbit/s
	// guess, and on a 1 Mbit/s line the 20 groups it waited were the
	// router's whole queue (lossy30: full-queue drops 2,200 -> 4,000).
	trendlineMinSamples = 5
	trendlineSmoothing  = 0.9
	trendlineGain       = 4.0
	trendlineMaxDeltas  = 60
	trendlineOveruseMs  = 10.0
	trendlineMaxOffset  = 15.0 // ms: a trend this far beyond the threshold does not move it
	trendlineKUp        = 0.0087
	trendlineKDown      = 0.039
)

func newTrendlineDetector() trendlineDetector {
	return trendlineDetector{threshold: 12.5, overusingSince: -1}
}

// update takes one group's delay variation and the time between the two
// groups' departures, with the group's arrival (ns, receiver clock) and
// the local time; it returns the detector's hypothesis.
func (d *trendlineDetector) update(variation, sendDelta time.Duration, arrival int64, now time.Time) usage {
	d.numDeltas = min(d.numDeltas+1, 1000)
	if d.numDeltas == 1 {
		d.firstArrival = arrival
	}
	d.accumulated += float64(variation) / float64(time.Millisecond)
	d.smoothed = trendlineSmoothing*d.smoothed + (1-trendlineSmoothing)*d.accumulated
	d.hist[d.next] = trendSample{x: float64(arrival-d.firstArrival) / float64(time.Millisecond), y: d.smoothed}
	d.next = (d.next + 1) % trendlineWindow
	d.histLen = min(d.histLen+1, trendlineWindow)
	trend := d.prevTrend
	if d.histLen >= trendlineMinSamples {
		if s, ok := linearFitSlope(d.hist[:d.histLen]); ok {
			trend = s
		}
	}
	d.detect(trend, float64(sendDelta)/float64(time.Millisecond), now)
	return d.hypothesis
}

func (d *trendlineDetector) detect(trend, sendDeltaMs float64, now time.Time) {
	if d.numDeltas < 2 {
		d.hypothesis = usageNormal
		return
	}
	modified := float64(min(d.numDeltas, trendlineMaxDeltas)) * trend * trendlineGain
	switch {
	case modified > d.threshold:
		if d.overusingSince < 0 {
			d.overusingSince = sendDeltaMs / 2
		} else {
			d.overusingSince += sendDeltaMs
		}
		d.overuseCount++
		if d.overusingSince > trendlineOveruseMs && d.overuseCount > 1 && trend >= d.prevTrend {
			d.overusingSince, d.overuseCount = 0, 0
			d.hypothesis = usageOver
		}
	case modified < -d.threshold:
		d.overusingSince, d.overuseCount = -1, 0
		d.hypothesis = usageUnder
	default:
		d.overusingSince, d.overuseCount = -1, 0
		d.hypothesis = usageNormal
	}
	d.prevTrend = trend
	d.updateThreshold(modified, now.UnixNano())
}

func (d *trendlineDetector) updateThreshold(modified float64, now int64) {
	if d.lastThreshold == 0 {
		d.lastThreshold = now
	}
	abs := math.Abs(modified)
	if abs > d.threshold+trendlineMaxOffset {
		d.lastThreshold = now
		return
	}
	k := trendlineKUp
	if abs < d.threshold {
		k = trendlineKDown
	}
	dtMs := min(float64(now-d.lastThreshold)/float64(time.Millisecond), 100)
	d.threshold = min(max(d.threshold+k*(abs-d.threshold)*dtMs, 6), 600)
	d.lastThreshold = now
}

// linearFitSlope is the least-squares slope of y against x, false when
// every x is the same.
func linearFitSlope(points []trendSample) (float64, bool) {
	var sx, sy float64
	for _, p := range points {
		sx += p.x
		sy += p.y
	}
	n := float64(len(points))
	xAvg, yAvg := sx/n, sy/n
	var num, den float64
	for _, p := range points {
		num += (p.x - xAvg) * (p.y - yAvg)
		den += (p.x - xAvg) * (p.x - xAvg)
	}
	if den == 0 {
		return 0, false
	}
	return num / den, true
}
