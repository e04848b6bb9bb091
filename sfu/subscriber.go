package sfu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// subscriber is a participant's subscriber connection: the sfu adds a
// DownTrack per subscribed track and offers; the client answers. It owns
// the participant's egress (send queue and retransmissions), bandwidth
// estimate and stream allocator.
type subscriber struct {
	p     *Participant
	pc    *webrtc.PeerConnection
	queue *egress
	// transport names the selected candidate pair's transport ("udp",
	// "tcp", "turn"), kept from pion's change callback (watchTransport).
	transport atomic.Value

	changeMu    sync.Mutex // serializes add and remove
	negMu       sync.Mutex
	outstanding bool // an offer waits for its answer
	pending     bool // something changed meanwhile: offer again after it
	restart     bool // the next offer restarts ICE

	mu        sync.Mutex
	downs     map[string]*subscription // by track id
	estimates estimateWindow           // the last allocations', for the estimate hold

	connected atomic.Bool
	remb      atomic.Uint64
	sawTWCC   atomic.Bool
	lossQ8    atomic.Uint32 // fraction lost * 256, last receiver report
	sendBps   atomic.Uint64
	estBps    atomic.Uint64

	probeMu sync.Mutex
	probe   prober

	// rtcpIn opens the classroom's SRTCP once the handshake's keys are
	// known; while the pair is UDP on the node's socket, the socket's
	// reader takes the classroom's RTCP off it (rtcpdirect.go): routed
	// is the address it takes it from, closed stops it.
	rtcpIn  atomic.Pointer[srtp.Context]
	routeMu sync.Mutex
	routed  netip.AddrPort
	closed  bool

	// Owned by the allocator goroutine.
	stills          stillsState
	onStills        atomic.Bool // stills.on, for close (another goroutine)
	stillsAnnounced bool
}

type subscription struct {
	dt     *DownTrack
	sender *webrtc.RTPSender
	// allocator state: per layer byte counters at the last tick and rates
	prevBytes []uint64
	rates     []float64
	// idle counts, per layer, the ticks in a row that brought no bytes.
	idle []int
}

// layerGoneTicks is how many allocation ticks without a byte make a
// simulcast layer unavailable (its rate 0). The smoothed rate of a layer
// the publisher stopped sending (a browser short of CPU or uplink drops
// its top layer; a reconnecting teacher starts with the lowest) would
// otherwise shrink towards 0 without reaching it, so the allocator saw a
// cheap layer, chose it, and its down-track waited for a keyframe that
// never came: video stopped while audio flowed.
const layerGoneTicks = 2

// allocateInterval is how often a subscriber's layers are re-chosen;
// sender reports go out every reportEvery allocations (1 s, as browsers).
const (
	allocateInterval = 500 * time.Millisecond
	reportEvery      = 2
)

func newSubscriber(p *Participant) (*subscriber, error) {
	queue := newEgress()
	line, rejoin := p.sfu.lines.recall(p.room.ID(), p.info.ID, time.Now())
	if rejoin {
		queue.startAt(int(min(max(line.bps, bweMinBitrate), bweTrainCeiling)))
	}
	var s *subscriber // set before any handshake can finish
	keys := &srtpKeys{ready: func(out *srtpSender, in *srtp.Context) {
		queue.srtpOut.Store(out)
		s.rtcpIn.Store(in)
		s.routeRTCP()
	}}
	pc, err := p.sfu.newPeerConnection(true, nil, keys)
	if err != nil {
		return nil, err
	}
	s = &subscriber{p: p, pc: pc, queue: queue, downs: make(map[string]*subscription)}
	s.stills.on = rejoin && line.stills
	s.queue.batch = p.sfu.batcher
	// With one P (a node on one core) the publishers' read goroutines send
	// to the classroom inline: waking its egress goroutine would only hand
	// the same work to the same core later, after a park and a schedule,
	// and its drain would end a sendmmsg of its own, where the fan-out's
	// batch (publisher.read) carries many classrooms' datagrams in one. On
	// more cores the egress goroutines spread the sending over them.
	s.queue.inline = runtime.GOMAXPROCS(0) == 1
	s.probe.budget = &p.sfu.probes
	// No probing while the estimate is the start's (gcc.go): padding
	// towards 720p on top of 360p, at once, flooded every line the start
	// was already too much for (a 150 kbit/s line was padded at 1.2
	// Mbit/s).
	s.probe.notBefore = time.Now().Add(estimateSettle)
	s.watchTransport()
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			s.connected.Store(true)
		}
		p.connectionState(TargetSubscriber, st)
	})
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		s.queue.run(p.ctx)
	}()
	go s.allocateLoop()
	return s, nil
}

// add attaches down-tracks for tracks not yet subscribed. It reports
// whether anything was added.
func (s *subscriber) add(tracks []*Track) (bool, error) {
	s.changeMu.Lock()
	defer s.changeMu.Unlock()
	added := false
	for _, t := range tracks {
		s.mu.Lock()
		_, have := s.downs[t.ID()]
		s.mu.Unlock()
		if have {
			continue
		}
		dt := newDownTrack(t, s.queue, &s.connected, s.p.sfu.m.layerSwitches.Inc)
		sender, err := s.pc.AddTrack(dt)
		if err != nil {
			return added, fmt.Errorf("subscribe %s: %w", t.ID(), err)
		}
		sub := &subscription{dt: dt, sender: sender, prevBytes: make([]uint64, len(t.info.Layers)),
			rates: make([]float64, len(t.info.Layers)), idle: make([]int, len(t.info.Layers))}
		for l := range sub.prevBytes {
			sub.prevBytes[l] = t.LayerBytes(l)
		}
		s.mu.Lock()
		s.downs[t.ID()] = sub
		s.mu.Unlock()
		t.AddSink(s.p.info.ID, dt)
		s.p.wg.Add(1)
		go s.readRTCP(sub)
		added = true
	}
	if added {
		s.allocate()
	}
	return added, nil
}

// remove detaches down-tracks; it reports whether anything was removed.
func (s *subscriber) remove(trackIDs []string) bool {
	s.changeMu.Lock()
	defer s.changeMu.Unlock()
	removed := false
	for _, id := range trackIDs {
		s.mu.Lock()
		sub, ok := s.downs[id]
		delete(s.downs, id)
		s.mu.Unlock()
		if !ok {
			continue
		}
		sub.dt.close()
		sub.dt.track.RemoveSink(s.p.info.ID)
		if err := s.pc.RemoveTrack(sub.sender); err != nil {
			s.p.log.Debug("remove track", "track", id, "err", err)
		}
		removed = true
	}
	return removed
}

func (s *subscriber) subscribed(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.downs[id]
	return ok
}

func (s *subscriber) subscribedIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.downs))
	for id := range s.downs {
		ids = append(ids, id)
	}
	return ids
}

// negotiate sends a new offer, or, while one is outstanding, remembers to
// send one after its answer (renegotiations never overlap).
func (s *subscriber) negotiate(iceRestart bool) error {
	s.negMu.Lock()
	defer s.negMu.Unlock()
	s.restart = s.restart || iceRestart
	if s.outstanding {
		s.pending = true
		return nil
	}
	return s.offerLocked()
}

func (s *subscriber) offerLocked() error {
	if s.p.sig == nil {
		return nil
	}
	offer, err := s.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: s.restart})
	if err != nil {
		return fmt.Errorf("subscriber offer: %w", err)
	}
	if err := s.pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("subscriber set local description: %w", err)
	}
	if err := waitGathered(s.p.ctx, s.pc); err != nil {
		return fmt.Errorf("subscriber: %w", err)
	}
	s.restart = false
	s.pending = false
	s.outstanding = true
	s.p.sig.SendOffer(*s.pc.LocalDescription())
	return nil
}

// setAnswer applies the client's answer and sends the next offer when a
// change came in meanwhile.
func (s *subscriber) setAnswer(answer webrtc.SessionDescription) error {
	s.negMu.Lock()
	defer s.negMu.Unlock()
	if !s.outstanding {
		return fmt.Errorf("%w: no offer is waiting for an answer", ErrBadSDP)
	}
	if answer.Type != webrtc.SDPTypeAnswer {
		return fmt.Errorf("%w: type %q is not an answer", ErrBadSDP, answer.Type)
	}
	if err := s.pc.SetRemoteDescription(answer); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	s.outstanding = false
	if s.pending {
		return s.offerLocked()
	}
	return nil
}

// answer is the WHEP path: the client offered, the sfu answers with the
// tracks attached.
func (s *subscriber) answer(offer webrtc.SessionDescription, tracks []*Track) (webrtc.SessionDescription, error) {
	s.negMu.Lock()
	defer s.negMu.Unlock()
	if offer.Type != webrtc.SDPTypeOffer {
		return webrtc.SessionDescription{}, fmt.Errorf("%w: type %q is not an offer", ErrBadSDP, offer.Type)
	}
	if err := s.pc.SetRemoteDescription(offer); err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	if _, err := s.add(tracks); err != nil {
		return webrtc.SessionDescription{}, err
	}
	ans, err := s.pc.CreateAnswer(nil)
	if err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("%w: answer: %v", ErrBadSDP, err)
	}
	if err := s.pc.SetLocalDescription(ans); err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("watch: set local description: %w", err)
	}
	if err := waitGathered(s.p.ctx, s.pc); err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("watch: %w", err)
	}
	return *s.pc.LocalDescription(), nil
}

// readRTCP reads one sender's RTCP: NACKs are answered from the egress's
// ring, TWCC feedback goes to the bandwidth estimator, and keyframe
// requests, REMB, loss and RTT to the sfu.
func (s *subscriber) readRTCP(sub *subscription) {
	defer s.p.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, _, err := sub.sender.Read(buf)
		if err != nil {
			return
		}
		s.onRTCP(sub, buf[:n])
	}
}

// routeRTCP points the node's socket reader at the classroom's address
// for its SRTCP while the keys are known and the pair is UDP on the
// node's socket, and stops it otherwise (rtcpdirect.go).
func (s *subscriber) routeRTCP() {
	b := s.p.sfu.batcher
	if b == nil {
		return
	}
	s.routeMu.Lock()
	defer s.routeMu.Unlock()
	var want netip.AddrPort
	in := s.rtcpIn.Load()
	if dst := s.queue.destination(); in != nil && dst != 0 && !s.closed {
		want = dst.addrPort()
	}
	if want == s.routed {
		return
	}
	if s.routed.IsValid() {
		b.rtcp.set(s.routed, nil)
	}
	if want.IsValid() {
		b.rtcp.set(want, &rtcpRoute{in: in, deliver: func(p []byte) { s.onRTCP(nil, p) }, buf: make([]byte, maxDatagramSize)})
	}
	s.routed = want
}

// onRTCP handles one compound RTCP packet, from sub's RTP sender, or
// (sub nil) from the node's socket for the whole connection. TWCC
// feedback, most of what a classroom sends, is read in place (twcc.go);
// the rest through pion.
func (s *subscriber) onRTCP(sub *subscription, b []byte) {
	m := s.p.sfu.m
	for len(b) >= 4 {
		size := (int(binary.BigEndian.Uint16(b[2:])) + 1) * 4
		if size > len(b) {
			return
		}
		p := b[:size]
		b = b[size:]
		if isTWCC(p) {
			fb := twccPool.Get().(*twccFeedback)
			if fb.parse(p) != nil {
				twccPool.Put(fb)
				continue
			}
			s.sawTWCC.Store(true)
			s.queue.addFeedback(fb)
			continue
		}
		pkts, err := rtcp.Unmarshal(p)
		if err != nil {
			continue
		}
		for _, pkt := range pkts {
			switch r := pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				m.plisReceived.Inc()
				if dt := s.downTrackFor(sub, pkt.DestinationSSRC()); dt != nil {
					dt.requestKeyframe()
				}
			case *rtcp.TransportLayerNack:
				m.nacksReceived.Inc()
				if dt := s.downTrackFor(sub, pkt.DestinationSSRC()); dt != nil {
					s.answerNack(dt, r)
				}
			case *rtcp.ReceiverEstimatedMaximumBitrate:
				s.remb.Store(uint64(r.Bitrate))
			case *rtcp.ReceiverReport:
				for _, rr := range r.Reports {
					s.receptionReport(rr)
				}
			case *rtcp.SenderReport:
				for _, rr := range r.Reports {
					s.receptionReport(rr)
				}
			}
		}
	}
}

// answerNack queues the retransmission of the packets a NACK names, each at
// most once per round trip.
// downTrackFor is sub's down-track, or with no sub the connection's
// down-track that sends one of ssrcs.
func (s *subscriber) downTrackFor(sub *subscription, ssrcs []uint32) *DownTrack {
	if sub != nil {
		return sub.dt
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sub := range s.downs {
		if st := sub.dt.egressStream(); st != nil && slices.Contains(ssrcs, st.ssrc) {
			return sub.dt
		}
	}
	return nil
}

func (s *subscriber) answerNack(dt *DownTrack, nack *rtcp.TransportLayerNack) {
	st := dt.egressStream()
	if st == nil || st.ssrc != nack.MediaSSRC {
		return
	}
	gap := time.Duration(s.queue.rttNs.Load()) + 5*time.Millisecond
	if gap <= 5*time.Millisecond {
		gap = defaultResendGap
	}
	maxBps, _, _ := s.queue.estimates()
	now := time.Now()
	var seqs [17]uint16
	for _, pair := range nack.Nacks {
		n := 0
		seqs[n], n = pair.PacketID, 1
		for i := uint16(0); i < 16; i++ {
			if pair.LostPackets&(1<<i) != 0 {
				seqs[n] = pair.PacketID + i + 1
				n++
			}
		}
		s.queue.nack(st, seqs[:n], gap, maxBps, now)
	}
}

func (s *subscriber) receptionReport(rr rtcp.ReceptionReport) {
	s.lossQ8.Store(uint32(rr.FractionLost))
	// Each audio stream's own loss sets its redundancy (red.go).
	s.mu.Lock()
	for _, sub := range s.downs {
		if sub.dt.kind != KindAudio {
			continue
		}
		if st := sub.dt.egressStream(); st != nil && st.ssrc == rr.SSRC {
			sub.dt.lossQ8.Store(uint32(rr.FractionLost))
		}
	}
	s.mu.Unlock()
	s.p.sfu.m.loss.Observe(float64(rr.FractionLost) / 256)
	if rr.LastSenderReport == 0 {
		return
	}
	now := ntpMiddle(time.Now())
	rtt := now - rr.LastSenderReport - rr.Delay // 1/65536 s
	if int32(rtt) <= 0 {
		return
	}
	s.queue.rttNs.Store(int64(time.Duration(rtt) * time.Second / 65536))
}

// ntpTime is t as a 64-bit NTP timestamp.
func ntpTime(t time.Time) uint64 {
	const ntpEpochOffset = 2208988800
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}

// ntpMiddle is the middle 32 bits of the NTP time, as RTCP's LSR.
func ntpMiddle(t time.Time) uint32 { return uint32(ntpTime(t) >> 16) }

// sendReports sends one compound RTCP packet with a sender report for
// every down-track that has sent something.
func (s *subscriber) sendReports(now time.Time) {
	s.mu.Lock()
	pkts := make([]rtcp.Packet, 0, len(s.downs))
	for _, sub := range s.downs {
		if sr, ok := sub.dt.senderReport(now); ok {
			pkts = append(pkts, &sr)
		}
	}
	s.mu.Unlock()
	if len(pkts) == 0 {
		return
	}
	compound, err := rtcp.Marshal(pkts)
	if err != nil {
		s.p.log.Debug("marshal sender reports", "err", err)
		return
	}
	if s.queue.sendRTCP(compound) {
		return
	}
	if err := s.pc.WriteRTCP(pkts); err != nil {
		s.p.log.Debug("send sender reports", "err", err)
	}
}

// estimate is the bandwidth available towards the subscriber: GCC from
// TWCC feedback, or the client's REMB when it sends no TWCC.
func (s *subscriber) estimate() float64 {
	if !s.sawTWCC.Load() {
		if r := s.remb.Load(); r > 0 {
			return float64(r)
		}
	}
	return gccEstimate(s.queue.estimates())
}

// randomLossLimit is the loss below which the allocator trusts GCC's
// delay-based estimate alone. GCC (gcc.go, as pion's) takes the lower of a delay-based
// and a loss-based estimate, and the loss-based one never rises while loss
// is above 2 %: on a rural line that loses 3 % of packets at random (not
// from congestion, which shows as queueing delay first) it only ratchets
// down, and the classroom ends on the smallest layer of a link with room
// for more. Above 10 % loss the loss-based estimate rules, as in GCC.
const randomLossLimit = 0.10

// gccEstimate is the bandwidth the allocator plans with, from GCC's target
// (the lower of its delay- and loss-based estimates), its delay-based
// estimate and the average loss it sees.
func gccEstimate(target, delayTarget, loss float64) float64 {
	if loss >= randomLossLimit || delayTarget <= target {
		return target
	}
	return delayTarget
}

func (s *subscriber) allocateLoop() {
	defer s.p.wg.Done()
	tick := time.NewTicker(allocateInterval)
	defer tick.Stop()
	lastBytes := s.queue.bytes.Load()
	lastPackets := s.queue.packets.Load()
	lastDirect := s.queue.direct.Load()
	lastDrops := s.queue.dropped.Load()
	last := time.Now()
	ticks := 0
	for {
		select {
		case <-s.p.ctx.Done():
			return
		case now := <-tick.C:
			secs := now.Sub(last).Seconds()
			b := s.queue.bytes.Load()
			d := s.queue.dropped.Load()
			if secs > 0 {
				s.sendBps.Store(uint64(float64(b-lastBytes) * 8 / secs))
			}
			m := s.p.sfu.m
			m.bytesOut.Add(float64(b - lastBytes))
			pk := s.queue.packets.Load()
			m.packetsOut.Add(float64(pk - lastPackets))
			lastPackets = pk
			direct := s.queue.direct.Load()
			m.packetsDirect.Add(float64(direct - lastDirect))
			lastDirect = direct
			m.queueDrops.Add(float64(d - lastDrops))
			lastBytes, lastDrops, last = b, d, now
			s.measure(secs)
			s.allocate()
			if ticks++; ticks%reportEvery == 0 {
				s.sendReports(now)
			}
			m.estimate.Observe(float64(s.estBps.Load()))
		}
	}
}

// measure updates each subscription's per-layer rates from the Track's
// byte counters.
func (s *subscriber) measure(secs float64) {
	if secs <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sub := range s.downs {
		sub.measure(secs)
	}
}

// measure updates the subscription's per-layer rates over secs.
func (sub *subscription) measure(secs float64) {
	for l := range sub.prevBytes {
		b := sub.dt.track.LayerBytes(l)
		r := float64(b-sub.prevBytes[l]) * 8 / secs
		sub.prevBytes[l] = b
		if r == 0 {
			if sub.idle[l]++; sub.idle[l] >= layerGoneTicks {
				sub.rates[l] = 0
			}
			continue
		}
		sub.idle[l] = 0
		if sub.rates[l] == 0 {
			sub.rates[l] = r
		} else {
			sub.rates[l] = 0.6*sub.rates[l] + 0.4*r
		}
	}
}

// redShare is the most of a subscriber's estimate its audio may take with
// its redundancy: on a link of ~150 kbit/s, two copies of a 64 kbit/s
// voice would overflow it by themselves and lose more than they save.
const redShare = 0.8

// redCopiesFitting is how many earlier packets RED may repeat (0 to 2) so
// that the subscriber's audio stays within redShare of est. The caller
// holds s.mu.
func (s *subscriber) redCopiesFitting(est float64) int32 {
	plain := 0.0
	for _, sub := range s.downs {
		if sub.dt.kind == KindAudio {
			for _, r := range sub.rates {
				plain += r
			}
		}
	}
	if plain <= 0 {
		return 2
	}
	return int32(max(0, min(2, math.Floor(redShare*est/plain)-1)))
}

// allocate chooses every video down-track's layer from the one estimate.
func (s *subscriber) allocate() {
	est := s.estimate()
	s.estBps.Store(uint64(est))
	s.mu.Lock()
	var (
		dts    []*DownTrack
		items  []allocItem
		audio  float64
		paused []*DownTrack
	)
	now := time.Now()
	low, high := s.estimates.add(now, est)
	maxCopies := s.redCopiesFitting(est)
	for _, sub := range s.downs {
		if sub.dt.kind == KindAudio {
			sub.dt.updateRED(now, maxCopies)
			copies := float64(1 + sub.dt.redCopies()) // RED carries earlier packets again
			for _, r := range sub.rates {
				audio += r * copies
			}
			continue
		}
		if sub.dt.paused.Load() {
			paused = append(paused, sub.dt)
			continue // not shown: it costs nothing
		}
		dts = append(dts, sub.dt)
		items = append(items, allocItem{
			priority: s.p.priorityOf(sub.dt.track),
			rates:    append([]float64(nil), sub.rates...),
			maxLayer: sub.dt.maxLayerCap(),
			current:  sub.dt.CurrentLayer(),
		})
	}
	s.mu.Unlock()
	layers := allocate(low-audio, high-audio, items)
	stills := s.stills.decide(now, est-audio, items)
	s.onStills.Store(stills)
	modes := forwardModes(items, stills)
	for i, dt := range dts {
		if dt.setTarget(layers[i]) {
			s.p.log.Debug("layer target", "track", dt.track.ID(), "from", items[i].current, "to", layers[i],
				"estimate", int(est), "audio", int(audio))
		}
		dt.setMode(modes[i])
	}
	for _, dt := range paused {
		dt.setMode(forwardAll) // the pause alone decides; shown again, it gets video
	}
	s.probeMu.Lock()
	wasProbing, wasGrant := s.probe.dt != nil, s.probe.granted
	s.probe.step(now, est, float64(s.sendBps.Load()), float64(s.lossQ8.Load())/256, items, layers, dts)
	if probing := s.probe.dt != nil; probing != wasProbing {
		s.p.log.Debug("probe", "on", probing, "estimate", int(est), "grant", int(s.probe.granted), "previousGrant", int(wasGrant), "backoff", s.probe.backoff, "sending", s.sendBps.Load())
	}
	s.probeMu.Unlock()
	if stills != s.stillsAnnounced {
		s.stillsAnnounced = stills
		if err := s.p.room.SetStills(s.p.info.ID, stills); err != nil && !errors.Is(err, ErrRoomEnded) {
			s.p.log.Warn("announce stills", "stills", stills, "err", err)
		}
	}
}

func (s *subscriber) setMaxLayer(trackID string, layer int) error {
	s.mu.Lock()
	sub, ok := s.downs[trackID]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: not subscribed to %s", ErrNoSuchTrack, trackID)
	}
	sub.dt.setMaxLayer(layer)
	s.allocate()
	return nil
}

func (s *subscriber) setPaused(trackID string, paused bool) error {
	s.mu.Lock()
	sub, ok := s.downs[trackID]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: not subscribed to %s", ErrNoSuchTrack, trackID)
	}
	if sub.dt.setPaused(paused) {
		s.allocate()
	}
	return nil
}

func (s *subscriber) quality() Quality {
	q := Quality{
		EstimatedBitrate: s.estBps.Load(),
		SendBitrate:      s.sendBps.Load(),
		Loss:             float64(s.lossQ8.Load()) / 256,
		RTT:              time.Duration(s.queue.rttNs.Load()),
		Layers:           make(map[string]int),
	}
	s.mu.Lock()
	for id, sub := range s.downs {
		if sub.dt.kind == KindVideo {
			q.Layers[id] = sub.dt.CurrentLayer()
		}
	}
	s.mu.Unlock()
	return q
}

func (s *subscriber) close() {
	s.routeMu.Lock()
	s.closed = true
	s.routeMu.Unlock()
	s.routeRTCP()
	now := time.Now()
	if line, ok := lineAtClose(s.queue, s.sawTWCC.Load(), s.remb.Load(), s.onStills.Load(), now); ok {
		s.p.sfu.lines.remember(s.p.room.ID(), s.p.info.ID, line, now)
	}
	s.probeMu.Lock()
	s.probe.release()
	s.probeMu.Unlock()
	s.mu.Lock()
	downs := s.downs
	s.downs = make(map[string]*subscription)
	s.mu.Unlock()
	for _, sub := range downs {
		sub.dt.close()
		sub.dt.track.RemoveSink(s.p.info.ID)
	}
	if err := s.pc.Close(); err != nil && !errors.Is(err, webrtc.ErrConnectionClosed) {
		s.p.log.Debug("close subscriber connection", "err", err)
	}
}
