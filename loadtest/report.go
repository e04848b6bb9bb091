package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// serverCost follows the server process: CPU seconds and RSS from /proc
// when its pid is known, else from the process_* series of /metrics; plus
// the sums of podium_* series at the start and end of the steady phase.
type serverCost struct {
	r          *runner
	pid        int
	metricsURL string

	first, steady, last   procSample
	firstAt, steadyAt     time.Time
	lastAt, prevAt        time.Time
	prev                  procSample
	peakRSS               int64
	source                string
	steadyMetrics, endMet map[string]float64
	err                   string
}

func newServerCost(r *runner, ctx context.Context, n Node) *serverCost {
	c := &serverCost{r: r, pid: n.PID, metricsURL: n.MetricsURL}
	if c.metricsURL == "" {
		c.metricsURL = strings.TrimSuffix(n.URL, "/") + "/metrics"
	}
	if c.metricsURL == "-" {
		c.metricsURL = ""
	}
	switch {
	case c.pid > 0:
		c.source = fmt.Sprintf("/proc/%d", c.pid)
	case c.metricsURL != "":
		c.source = c.metricsURL + " (process_*)"
	default:
		c.source = "none"
	}
	c.sample(ctx)
	c.first, c.firstAt = c.last, c.lastAt
	c.prev, c.prevAt = c.last, c.lastAt
	return c
}

func (c *serverCost) read(ctx context.Context) (procSample, map[string]float64, error) {
	var podium map[string]float64
	var ms metricsSample
	var merr error
	if c.metricsURL != "" {
		ms, merr = scrapeMetrics(ctx, c.r.http, c.metricsURL)
		podium = ms.podium
	}
	if c.pid > 0 {
		p, err := readProc(c.pid)
		return p, podium, err
	}
	if merr != nil {
		return procSample{}, nil, merr
	}
	if c.metricsURL == "" {
		return procSample{}, nil, nil
	}
	return procSample{cpu: ms.cpu, rss: ms.rss}, podium, nil
}

func (c *serverCost) sample(ctx context.Context) {
	p, _, err := c.read(ctx)
	if err != nil {
		c.err = err.Error()
		return
	}
	c.prev, c.prevAt = c.last, c.lastAt
	c.last, c.lastAt = p, time.Now()
	c.peakRSS = max(c.peakRSS, p.rss)
}

// cpuNow is the server's CPU use between the last two samples, in cores.
func (c *serverCost) cpuNow() string {
	el := c.lastAt.Sub(c.prevAt)
	if el <= 0 || c.source == "none" {
		return "?"
	}
	return fmt.Sprintf("%.0f%%", float64(c.last.cpu-c.prev.cpu)/float64(el)*100)
}

// markSteady starts the steady phase: every classroom has been started.
func (c *serverCost) markSteady(ctx context.Context) {
	p, m, err := c.read(ctx)
	if err != nil {
		c.err = err.Error()
		return
	}
	c.steady, c.steadyAt = p, time.Now()
	c.steadyMetrics = m
}

func (c *serverCost) finish(ctx context.Context) {
	_, m, err := c.read(ctx)
	if err == nil {
		c.endMet = m
	}
}

// Report is the result of one run (also its JSON form).
type Report struct {
	Config    map[string]any `json:"config"`
	Started   time.Time      `json:"started"`
	JoinPhase string         `json:"joinPhase"`
	Measured  string         `json:"measured"`

	Classrooms int `json:"classrooms"`
	Joined     int `json:"joined"`
	Receiving  int `json:"receivingVideo"`
	Failed     int `json:"failed"`
	// Errors lists distinct failure messages with their counts.
	Errors map[string]int `json:"errors,omitempty"`

	JoinToFirstFrameMs Dist `json:"joinToFirstFrameMs"`
	// JoinStepsMs breaks the join down: from a classroom's start to the
	// join reply, the server's first offer, the connection connected, the
	// first video packet and the first complete frame.
	JoinStepsMs map[string]Dist `json:"joinStepsMs"`
	// VideoKbps and AudioKbps are per classroom over the second half of
	// the measuring time (settled rates).
	VideoKbps Dist `json:"videoKbps"`
	AudioKbps Dist `json:"audioKbps"`
	// OtherKbps is what a classroom received of other classrooms' cameras
	// (--publish-back), over the whole run.
	OtherKbps Dist `json:"otherKbps"`
	// VideoLossPct is the share of video packets never received, after
	// NACK retransmissions (per classroom, whole run).
	VideoLossPct Dist `json:"videoLossPct"`
	// AudioLossPct is after recovery: packets rebuilt from RED count as
	// received, as a browser's decoder plays them.
	AudioLossPct Dist `json:"audioLossPct"`
	// AudioRebuiltPct is the share of audio packets lost on the link and
	// rebuilt from the server's RED.
	AudioRebuiltPct Dist `json:"audioRebuiltPct"`
	// StillsTimePct is the share of each classroom's watching time spent
	// on sound and stills (its link could not carry the lowest layers);
	// StillsPerMin the pictures a classroom on stills received per minute
	// of it in the second half (in the first, late retransmissions of the
	// join's video still arrive).
	StillsTimePct Dist `json:"stillsTimePct"`
	// VideoLossHalfPct and AudioLossHalfPct are the same losses in the
	// second half of the measuring time only: what a classroom keeps once
	// the first seconds of its join (an estimate that starts high) are
	// over.
	VideoLossHalfPct Dist `json:"videoLossHalfPct"`
	AudioLossHalfPct Dist `json:"audioLossHalfPct"`
	StillsPerMin     Dist `json:"stillsPerMin"`
	// LinkDroppedPackets is what the emulated links dropped (random loss
	// and full queues), before NACK recovered any of it.
	LinkDroppedPackets uint64 `json:"linkDroppedPackets"`
	// LinkQueueDroppedPackets is the part of LinkDroppedPackets the full
	// bottleneck queues dropped: what was sent faster than the link.
	LinkQueueDroppedPackets uint64 `json:"linkQueueDroppedPackets"`
	// VideoDuplicates counts video packets received twice (a retransmission
	// of a packet that had arrived), per classroom.
	VideoDuplicates Dist `json:"videoDuplicates"`
	// Freezes: gaps of more than 500 ms between received video frames.
	FreezesPerMin     Dist    `json:"freezesPerMin"`
	LongFreezesPerMin Dist    `json:"longFreezesPerMin"`
	FreezeTimePct     Dist    `json:"freezeTimePct"`
	MaxFreezeMs       float64 `json:"maxFreezeMs"`
	// SettledLayer counts classrooms by the layer they received most in
	// the second half (q, h, f; "?" when unknown).
	SettledLayer map[string]int `json:"settledLayer"`
	// DelayMs is the end-to-end delay of video frames (teacher's
	// connection to classroom's track reader), over all classrooms.
	DelayMs Dist `json:"delayMs"`
	// DelayHalfMs is the same over the second half of the measuring time:
	// the steady state, past the joins' keyframes.
	DelayHalfMs Dist `json:"delayHalfMs"`
	// Transports counts classrooms by what the selected candidate pair of
	// their receiving connection ran over at the end: "udp", "tcp"
	// (ICE-TCP), "relay-tcp" (TURN over TCP), ...; "none" when no pair was
	// selected. A TCP-only run proves here that no UDP was used.
	Transports map[string]int `json:"transports"`

	// Lessons breaks the main figures down per lesson (several lessons
	// share one server: is any of them starved?).
	Lessons []LessonReport `json:"lessons,omitempty"`

	// Recovery is filled with --reconnect.
	Recovery *RecoveryReport `json:"recovery,omitempty"`

	// Server is the server's cost; with several nodes (--edge), the sum
	// over them, which Nodes breaks down.
	Server ServerReport `json:"server"`
	Nodes  []NodeReport `json:"nodes,omitempty"`
	Tool   ToolReport   `json:"tool"`
}

// RecoveryReport is how classrooms came back after the server went away
// and came back (--reconnect).
type RecoveryReport struct {
	// ServerRestarts counts the times /readyz stopped and started
	// answering again.
	ServerRestarts int `json:"serverRestarts"`
	// LostLink counts classrooms that lost their link, Recovered those
	// that received the teacher's video again afterwards.
	LostLink  int `json:"lostLink"`
	Recovered int `json:"recovered"`
	// RestartToFirstFrameMs is, per recovered classroom, the time from the
	// server answering again to the teacher's first video frame.
	RestartToFirstFrameMs Dist `json:"restartToFirstFrameMs"`
	// StepsMs breaks it down: from the server answering again to the
	// classroom's join reply, the server's first offer and the connection
	// connected.
	StepsMs map[string]Dist `json:"stepsMs"`
}

// Dist summarises a distribution.
type Dist struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

func distOf(v []float64) Dist {
	if len(v) == 0 {
		return Dist{}
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	q := func(p float64) float64 { return s[int(p*float64(len(s)-1)+0.5)] }
	var sum float64
	for _, x := range s {
		sum += x
	}
	return Dist{N: len(s), Mean: sum / float64(len(s)), P50: q(0.5), P95: q(0.95), P99: q(0.99), Max: s[len(s)-1]}
}

func distOfHist(h *histogram) Dist {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return Dist{N: int(h.n), Mean: ms(h.mean()), P50: ms(h.quantile(0.5)), P95: ms(h.quantile(0.95)), P99: ms(h.quantile(0.99)), Max: ms(h.max)}
}

// LessonReport is one lesson's share of a run.
type LessonReport struct {
	ID           string  `json:"id"`
	Classrooms   int     `json:"classrooms"`
	Receiving    int     `json:"receivingVideo"`
	VideoKbpsP50 float64 `json:"videoKbpsP50"`
	LossPctMean  float64 `json:"videoLossPctMean"`
	JoinMsP95    float64 `json:"joinToFirstFrameMsP95"`
}

// ServerReport is the server's cost over the steady phase.
type ServerReport struct {
	Source string `json:"source"`
	// CPUCores is CPU seconds per second over the steady phase (1.0 = one
	// core busy).
	CPUCores   float64 `json:"cpuCores"`
	CPUSeconds float64 `json:"cpuSeconds"`
	RSSMiB     float64 `json:"rssMiB"`
	// WriteErrors counts publisher frames whose write failed.
	WriteErrors uint64  `json:"publisherWriteErrors"`
	PeakRSSMiB  float64 `json:"peakRssMiB"`
	SubsPerCore float64 `json:"subscribersPerCore"`
	// CPUUsPerPacket is the CPU the server spent per media packet it sent
	// (podium_media_packets_out_total), in µs; 0 for a server without
	// that series.
	CPUUsPerPacket float64 `json:"cpuUsPerPacketSent,omitempty"`
	// PodiumMetrics are the changes of podium_* series (summed over
	// labels) during the steady phase.
	PodiumMetrics map[string]float64 `json:"podiumMetrics,omitempty"`
	Error         string             `json:"error,omitempty"`
}

// NodeReport is one node's share of a run spread over several nodes: its
// classrooms, what they received, and the node's own cost.
type NodeReport struct {
	Name       string `json:"name"` // origin, edge 1, edge 2, ...
	URL        string `json:"url"`
	Region     string `json:"region,omitempty"`
	Classrooms int    `json:"classrooms"`
	Joined     int    `json:"joined"`
	Receiving  int    `json:"receivingVideo"`
	Failed     int    `json:"failed"`
	// VideoKbpsP50 is over the second half of the measuring time.
	VideoKbpsP50         float64 `json:"videoKbpsP50"`
	VideoLossPctMean     float64 `json:"videoLossPctMean"`
	LongFreezesPerMinMax float64 `json:"longFreezesPerMinMax"`
	JoinMsP95            float64 `json:"joinToFirstFrameMsP95"`
	DelayMsP50           float64 `json:"delayMsP50"`
	DelayMsP99           float64 `json:"delayMsP99"`
	// EgressMbps is the node's media sent to its subscribers over the
	// steady phase (podium_media_bytes_out_total; the origin's relay of
	// the teacher's tracks to the edges is not in that series).
	EgressMbps float64      `json:"egressMbps"`
	Server     ServerReport `json:"server"`
}

// report is the server's cost over the steady phase; receiving is the
// classrooms it served that received video.
func (c *serverCost) report(receiving int) ServerReport {
	sr := ServerReport{Source: c.source, Error: c.err}
	if el := c.lastAt.Sub(c.steadyAt).Seconds(); el > 0 && !c.steadyAt.IsZero() {
		cpu := (c.last.cpu - c.steady.cpu).Seconds()
		sr.CPUSeconds = cpu
		sr.CPUCores = cpu / el
		if sr.CPUCores > 0 {
			sr.SubsPerCore = float64(receiving) / sr.CPUCores
		}
	}
	sr.RSSMiB = float64(c.last.rss) / (1 << 20)
	sr.PeakRSSMiB = float64(c.peakRSS) / (1 << 20)
	if c.endMet != nil {
		sr.PodiumMetrics = map[string]float64{}
		for k, v := range c.endMet {
			if d := v - c.steadyMetrics[k]; d != 0 {
				sr.PodiumMetrics[k] = d
			}
		}
	}
	sr.setPerPacket()
	return sr
}

// setPerPacket sets CPUUsPerPacket from the CPU and the packets sent.
func (sr *ServerReport) setPerPacket() {
	if pk := sr.PodiumMetrics["podium_media_packets_out_total"]; pk > 0 {
		sr.CPUUsPerPacket = sr.CPUSeconds / pk * 1e6
	}
}

// nodeReports breaks a run down per node.
func nodeReports(all []*classroomStats, nodeOf map[*classroomStats]int, nodes []Node, costs []*serverCost, end, half time.Time) []NodeReport {
	type acc struct {
		kbps, loss, lfpm, join []float64
		delay                  histogram
	}
	out := make([]NodeReport, len(nodes))
	accs := make([]acc, len(nodes))
	for i, n := range nodes {
		out[i] = NodeReport{Name: nodeName(i), URL: n.URL, Region: n.Region}
	}
	halfDur := end.Sub(half).Seconds()
	for _, s := range all {
		i := nodeOf[s]
		if i < 0 || i >= len(out) {
			continue
		}
		nr, a := &out[i], &accs[i]
		nr.Classrooms++
		s.mu.Lock()
		if !s.joinedAt.IsZero() {
			nr.Joined++
		}
		if s.err != "" {
			nr.Failed++
		}
		s.mu.Unlock()
		v := &s.video
		v.mu.Lock()
		if v.frames > 0 {
			nr.Receiving++
			a.join = append(a.join, float64(v.firstFrame.Sub(s.start))/float64(time.Millisecond))
			a.loss = append(a.loss, v.lossRate()*100)
			if watched := end.Sub(v.firstFrame).Minutes(); watched > 0 {
				a.lfpm = append(a.lfpm, float64(v.longFreezes)/watched)
			}
			if !half.IsZero() && halfDur > 0 {
				a.kbps = append(a.kbps, float64(v.bytes-s.halfVideoBytes)*8/halfDur/1000)
			}
			a.delay.merge(&v.delay)
		}
		v.mu.Unlock()
	}
	for i := range out {
		nr, a := &out[i], &accs[i]
		nr.VideoKbpsP50 = distOf(a.kbps).P50
		nr.VideoLossPctMean = distOf(a.loss).Mean
		nr.LongFreezesPerMinMax = distOf(a.lfpm).Max
		nr.JoinMsP95 = distOf(a.join).P95
		d := distOfHist(&a.delay)
		nr.DelayMsP50, nr.DelayMsP99 = d.P50, d.P99
		nr.Server = costs[i].report(nr.Receiving)
		if el := costs[i].lastAt.Sub(costs[i].steadyAt).Seconds(); el > 0 && !costs[i].steadyAt.IsZero() {
			nr.EgressMbps = nr.Server.PodiumMetrics["podium_media_bytes_out_total"] * 8 / el / 1e6
		}
	}
	return out
}

// sumServers is the cost of all nodes together.
func sumServers(nodes []NodeReport, receiving int) ServerReport {
	sr := ServerReport{PodiumMetrics: map[string]float64{}}
	var sources, errs []string
	for _, n := range nodes {
		s := n.Server
		sources = append(sources, n.Name+" "+s.Source)
		if s.Error != "" {
			errs = append(errs, n.Name+": "+s.Error)
		}
		sr.CPUCores += s.CPUCores
		sr.CPUSeconds += s.CPUSeconds
		sr.RSSMiB += s.RSSMiB
		sr.PeakRSSMiB += s.PeakRSSMiB
		for k, v := range s.PodiumMetrics {
			sr.PodiumMetrics[k] += v
		}
	}
	sr.Source = fmt.Sprintf("sum of %d nodes: %s", len(nodes), strings.Join(sources, ", "))
	sr.Error = strings.Join(errs, "; ")
	if sr.CPUCores > 0 {
		sr.SubsPerCore = float64(receiving) / sr.CPUCores
	}
	sr.setPerPacket()
	if len(sr.PodiumMetrics) == 0 {
		sr.PodiumMetrics = nil
	}
	return sr
}

// ToolReport says whether the tool itself was the limit.
type ToolReport struct {
	Cores   int     `json:"cores"`
	PeakCPU float64 `json:"peakCpuCores"`
	// SteadyCPU is the tool's CPU over the steady phase, USPerPacket that
	// per packet its classrooms received (the teacher's sending included).
	SteadyCPU   float64 `json:"steadyCpuCores"`
	USPerPacket float64 `json:"cpuUsPerReceivedPacket"`
	LagP99Ms    float64 `json:"timerLagP99Ms"`
	LagMaxMs    float64 `json:"timerLagMaxMs"`
	RSSMiB      float64 `json:"rssMiB"`
	// WriteErrors counts publisher frames whose write failed.
	WriteErrors uint64 `json:"publisherWriteErrors"`
	Saturated   bool   `json:"saturated"`
	SaturatedBy string `json:"saturatedBy,omitempty"`
}

var layerNames = []string{"q", "h", "f", "3"}

func reportConfig(c Config) map[string]any {
	m := map[string]any{
		"server": c.Server, "lessons": c.Lessons, "classroomsPerLesson": c.Classrooms,
		"joinRate": c.JoinRate, "duration": c.Duration.String(), "codec": c.Codec, "audio": c.Audio,
		"link": c.Link.String(), "publish": c.Publish, "subscribe": c.Subscribe, "publishBack": c.PublishBack,
		"transport": c.Transport,
	}
	if c.Reconnect {
		m["reconnect"] = true
	}
	if c.Receiver == ReceiverLean {
		m["receiver"] = c.Receiver
	}
	if len(c.Edges) > 0 {
		m["edges"], m["region"], m["originClassrooms"] = c.Edges, c.Region, c.OriginClassrooms
	}
	return m
}

// fill computes the report. costs follow nodes (the origin first); with
// several nodes, nodeOf says which node each classroom joined.
func (rep *Report) fill(all []*classroomStats, end, half time.Time, w *selfWatch, nodes []Node, costs []*serverCost, nodeOf map[*classroomStats]int) {
	rep.Measured = end.Sub(rep.Started).Round(time.Millisecond).String()
	rep.Classrooms = len(all)
	rep.SettledLayer = map[string]int{}
	rep.Transports = map[string]int{}
	var join, vk, ak, ok, vl, al, ar, fpm, lfpm, ftp, stp, spm, dup, vlh, alh []float64
	var delay, delayHalf histogram
	steps := map[string][]float64{}
	since := func(name string, from, at time.Time) {
		if !at.IsZero() {
			steps[name] = append(steps[name], float64(at.Sub(from))/float64(time.Millisecond))
		}
	}
	halfDur := end.Sub(half).Seconds()
	type lessonAcc struct {
		n, recv          int
		kbps, loss, join []float64
	}
	per := map[string]*lessonAcc{}
	var order []string
	for _, s := range all {
		la := per[s.lesson]
		if la == nil {
			la = &lessonAcc{}
			per[s.lesson] = la
			order = append(order, s.lesson)
		}
		la.n++
		s.mu.Lock()
		errMsg, joined := s.err, !s.joinedAt.IsZero()
		since("1 joined", s.start, s.replyAt)
		since("2 offer", s.start, s.offerAt)
		since("3 connected", s.start, s.connectedAt)
		since("4 first packet", s.start, s.firstPacketAt)
		transport := s.transport
		s.mu.Unlock()
		if transport == "" {
			transport = "none"
		}
		rep.Transports[transport]++
		if joined {
			rep.Joined++
		}
		if errMsg != "" {
			rep.Failed++
			if rep.Errors == nil {
				rep.Errors = map[string]int{}
			}
			rep.Errors[errMsg]++
		}
		rep.LinkDroppedPackets += s.linkDropped
		rep.LinkQueueDroppedPackets += s.linkQueueDropped
		onStills, stills := s.stillsUntil(end)
		v := &s.video
		v.mu.Lock()
		if v.frames > 0 {
			rep.Receiving++
			join = append(join, float64(v.firstFrame.Sub(s.start))/float64(time.Millisecond))
			since("5 first frame", s.start, v.firstFrame)
			watched := end.Sub(v.firstFrame).Minutes()
			if watched > 0 {
				fpm = append(fpm, float64(v.freezes)/watched)
				lfpm = append(lfpm, float64(v.longFreezes)/watched)
				ftp = append(ftp, v.freezeTime.Minutes()/watched*100)
				stp = append(stp, onStills.Minutes()/watched*100)
				if late := onStills - s.halfStillsTime; late > 0 && !half.IsZero() {
					spm = append(spm, float64(stills-s.halfStillsFrames)/late.Minutes())
				}
			}
			rep.MaxFreezeMs = max(rep.MaxFreezeMs, float64(v.maxGap)/float64(time.Millisecond))
			vl = append(vl, v.lossRate()*100)
			if l, ok := v.lossSince(s.halfVideoExpected, s.halfVideoDistinct); ok && !half.IsZero() {
				vlh = append(vlh, l*100)
			}
			dup = append(dup, float64(v.dups))
			la.recv++
			la.loss = append(la.loss, v.lossRate()*100)
			la.join = append(la.join, join[len(join)-1])
			if !half.IsZero() && halfDur > 0 {
				vk = append(vk, float64(v.bytes-s.halfVideoBytes)*8/halfDur/1000)
				la.kbps = append(la.kbps, vk[len(vk)-1])
			}
			best, bestN := "?", uint64(0)
			for i := range v.layerFrames {
				if n := v.layerFrames[i] - s.halfLayerFrames[i]; n > bestN {
					best, bestN = layerNames[i], n
				}
			}
			if best == "q" && rep.Config["codec"] == "h264" {
				best = "single" // one layer, no simulcast
			}
			rep.SettledLayer[best]++
			delay.merge(&v.delay)
			delayHalf.merge(&v.delayHalf)
		}
		v.mu.Unlock()
		o := &s.other
		o.mu.Lock()
		if o.packets > 0 {
			ok = append(ok, float64(o.bytes)*8/end.Sub(s.start).Seconds()/1000)
		}
		o.mu.Unlock()
		a := &s.audio
		a.mu.Lock()
		if a.packets > 0 {
			al = append(al, a.lossRate()*100)
			if l, ok := a.lossSince(s.halfAudioExpected, s.halfAudioDistinct); ok && !half.IsZero() {
				alh = append(alh, l*100)
			}
			if exp := a.expected(); exp > 0 {
				ar = append(ar, float64(a.rebuilt)/float64(exp)*100)
			}
			if !half.IsZero() && halfDur > 0 {
				ak = append(ak, float64(a.bytes-s.halfAudioBytes)*8/halfDur/1000)
			}
		}
		a.mu.Unlock()
	}
	sort.Strings(order)
	for _, id := range order {
		la := per[id]
		rep.Lessons = append(rep.Lessons, LessonReport{ID: id, Classrooms: la.n, Receiving: la.recv,
			VideoKbpsP50: distOf(la.kbps).P50, LossPctMean: distOf(la.loss).Mean, JoinMsP95: distOf(la.join).P95})
	}
	rep.VideoDuplicates = distOf(dup)
	rep.JoinToFirstFrameMs = distOf(join)
	rep.JoinStepsMs = map[string]Dist{}
	for k, v := range steps {
		rep.JoinStepsMs[k] = distOf(v)
	}
	rep.VideoKbps, rep.AudioKbps, rep.OtherKbps = distOf(vk), distOf(ak), distOf(ok)
	rep.VideoLossPct, rep.AudioLossPct, rep.AudioRebuiltPct = distOf(vl), distOf(al), distOf(ar)
	rep.FreezesPerMin, rep.LongFreezesPerMin, rep.FreezeTimePct = distOf(fpm), distOf(lfpm), distOf(ftp)
	rep.StillsTimePct, rep.StillsPerMin = distOf(stp), distOf(spm)
	rep.VideoLossHalfPct, rep.AudioLossHalfPct = distOf(vlh), distOf(alh)
	rep.DelayMs, rep.DelayHalfMs = distOfHist(&delay), distOfHist(&delayHalf)

	if len(costs) == 1 {
		rep.Server = costs[0].report(rep.Receiving)
	} else {
		rep.Nodes = nodeReports(all, nodeOf, nodes, costs, end, half)
		rep.Server = sumServers(rep.Nodes, rep.Receiving)
	}

	t := ToolReport{Cores: w.cores, PeakCPU: w.peakUse, SteadyCPU: w.steadyCores, USPerPacket: w.usPerPacket,
		LagP99Ms: float64(w.lag.quantile(0.99)) / float64(time.Millisecond),
		LagMaxMs: float64(w.lag.max) / float64(time.Millisecond), RSSMiB: float64(w.lastCPU.rss) / (1 << 20), WriteErrors: writeErrors.Load()}
	switch {
	case w.peakUse > 0.85*float64(w.cores):
		t.Saturated, t.SaturatedBy = true, fmt.Sprintf("tool CPU peaked at %.0f%% of its %d core(s)", w.peakUse*100, w.cores)
	case w.lagSaturated():
		t.Saturated, t.SaturatedBy = true, fmt.Sprintf("its timers fired up to %.0f ms late (p99): it did not get the CPU it needed, from its own load or the machine's", t.LagP99Ms)
	}
	rep.Tool = t
}

// WriteTable prints the final table.
func (rep *Report) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "\n== podium loadtest: %v lesson(s) x %v classrooms, link %v, codec %v, %v/%v ==\n",
		rep.Config["lessons"], rep.Config["classroomsPerLesson"], rep.Config["link"], rep.Config["codec"], rep.Config["publish"], rep.Config["subscribe"])
	fmt.Fprintf(w, "classrooms %d, joined %d, receiving video %d, failed %d (join phase %s, run %s)\n",
		rep.Classrooms, rep.Joined, rep.Receiving, rep.Failed, rep.JoinPhase, rep.Measured)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "metric\tmean\tp50\tp95\tp99\tmax\t")
	row := func(name string, d Dist, prec int) {
		f := func(x float64) string { return fmt.Sprintf("%.*f", prec, x) }
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", name, f(d.Mean), f(d.P50), f(d.P95), f(d.P99), f(d.Max))
	}
	row("join to first frame (ms)", rep.JoinToFirstFrameMs, 0)
	names := make([]string, 0, len(rep.JoinStepsMs))
	for k := range rep.JoinStepsMs {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		row("  join step: "+k[2:], rep.JoinStepsMs[k], 0)
	}
	row("video kbit/s (2nd half)", rep.VideoKbps, 0)
	row("audio kbit/s (2nd half)", rep.AudioKbps, 0)
	if rep.OtherKbps.N > 0 {
		row("other classrooms kbit/s", rep.OtherKbps, 0)
	}
	row("video loss after NACK (%)", rep.VideoLossPct, 3)
	row("audio loss after RED (%)", rep.AudioLossPct, 3)
	if rep.VideoLossHalfPct.N > 0 {
		row("video loss after NACK, 2nd half (%)", rep.VideoLossHalfPct, 3)
		row("audio loss after RED, 2nd half (%)", rep.AudioLossHalfPct, 3)
	}
	if rep.AudioRebuiltPct.N > 0 && rep.AudioRebuiltPct.Max > 0 {
		row("audio rebuilt from RED (%)", rep.AudioRebuiltPct, 3)
	}
	row("video duplicates (packets)", rep.VideoDuplicates, 0)
	row("freezes >500ms per min", rep.FreezesPerMin, 2)
	row("freezes >1s per min", rep.LongFreezesPerMin, 2)
	row("frozen time (%)", rep.FreezeTimePct, 2)
	if rep.StillsTimePct.Max > 0 {
		row("time on sound + stills (%)", rep.StillsTimePct, 1)
		row("stills per minute on stills, 2nd half", rep.StillsPerMin, 1)
	}
	row("e2e video delay (ms)", rep.DelayMs, 1)
	if rep.DelayHalfMs.N > 0 {
		row("e2e video delay, 2nd half (ms)", rep.DelayHalfMs, 1)
	}
	if r := rep.Recovery; r != nil {
		row(fmt.Sprintf("restart to first frame (ms; %d of %d recovered)", r.Recovered, r.LostLink), r.RestartToFirstFrameMs, 0)
		for _, k := range slices.Sorted(maps.Keys(r.StepsMs)) {
			row("  restart to: "+k[2:], r.StepsMs[k], 0)
		}
	}
	_ = tw.Flush()
	var layers []string
	for _, l := range append(layerNames[:3:3], "single", "?") {
		if n := rep.SettledLayer[l]; n > 0 {
			layers = append(layers, fmt.Sprintf("%s=%d", l, n))
		}
	}
	fmt.Fprintf(w, "settled layer (2nd half): %s; longest freeze %.0f ms\n", strings.Join(layers, " "), rep.MaxFreezeMs)
	var transports []string
	for _, t := range slices.Sorted(maps.Keys(rep.Transports)) {
		transports = append(transports, fmt.Sprintf("%s=%d", t, rep.Transports[t]))
	}
	fmt.Fprintf(w, "classrooms' selected candidate pairs (--transport %v): %s\n", rep.Config["transport"], strings.Join(transports, " "))
	if rep.LinkDroppedPackets > 0 {
		fmt.Fprintf(w, "emulated links dropped %d packets: %d at random, %d by a full queue\n",
			rep.LinkDroppedPackets, rep.LinkDroppedPackets-rep.LinkQueueDroppedPackets, rep.LinkQueueDroppedPackets)
	}
	if len(rep.Lessons) > 1 {
		fmt.Fprintf(w, "per lesson (receiving/classrooms, video kbit/s p50, loss %%):")
		for _, l := range rep.Lessons {
			fmt.Fprintf(w, " %s %d/%d %.0f %.2f;", l.ID, l.Receiving, l.Classrooms, l.VideoKbpsP50, l.LossPctMean)
		}
		fmt.Fprintln(w)
	}
	s := rep.Server
	fmt.Fprintf(w, "server (%s): %.2f cores over the steady phase (%.1f CPU s), RSS %.0f MiB (peak %.0f), %.0f receiving classrooms per core",
		s.Source, s.CPUCores, s.CPUSeconds, s.RSSMiB, s.PeakRSSMiB, s.SubsPerCore)
	if s.CPUUsPerPacket > 0 {
		fmt.Fprintf(w, ", %.2f µs of CPU per packet sent", s.CPUUsPerPacket)
	}
	fmt.Fprintln(w)
	if s.Error != "" {
		fmt.Fprintf(w, "server cost error: %s\n", s.Error)
	}
	rep.writeNodes(w)
	t := rep.Tool
	fmt.Fprintf(w, "tool: %.2f cores over the steady phase (%.1f µs per received packet), peak CPU %.0f%% of %d core(s), RSS %.0f MiB, timer lag p99 %.1f ms max %.1f ms",
		t.SteadyCPU, t.USPerPacket, t.PeakCPU*100, t.Cores, t.RSSMiB, t.LagP99Ms, t.LagMaxMs)
	if t.WriteErrors > 0 {
		fmt.Fprintf(w, ", %d publisher frame writes failed", t.WriteErrors)
	}
	if t.Saturated {
		fmt.Fprintf(w, "\nTOOL SATURATED (%s): delay, freezes and loss above include the tool's own lateness", t.SaturatedBy)
	}
	fmt.Fprintln(w)
	for msg, n := range rep.Errors {
		fmt.Fprintf(w, "error x%d: %s\n", n, msg)
	}
}

// writeNodes prints the per-node table of a run over several nodes.
func (rep *Report) writeNodes(w io.Writer) {
	if len(rep.Nodes) == 0 {
		return
	}
	fmt.Fprintln(w, "per node (classrooms it served; its own CPU and memory):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "node\tregion\tclassrooms\treceiving\tfailed\tkbit/s p50\tloss %\tfreezes>1s/min max\tjoin p95 ms\tdelay p50/p99 ms\tegress Mbit/s\tcores\tCPU s\tRSS MiB\treceiving/core\t")
	for _, n := range rep.Nodes {
		region := n.Region
		if region == "" {
			region = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%.0f\t%.3f\t%.2f\t%.0f\t%.1f/%.1f\t%.1f\t%.2f\t%.1f\t%.0f\t%.0f\t\n",
			n.Name, region, n.Classrooms, n.Receiving, n.Failed, n.VideoKbpsP50, n.VideoLossPctMean, n.LongFreezesPerMinMax,
			n.JoinMsP95, n.DelayMsP50, n.DelayMsP99, n.EgressMbps, n.Server.CPUCores, n.Server.CPUSeconds, n.Server.RSSMiB, n.Server.SubsPerCore)
	}
	_ = tw.Flush()
}

// WriteJSONFile writes the report as JSON to path ("-" = w).
func (rep *Report) WriteJSONFile(path string, w io.Writer) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = w.Write(b)
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}
