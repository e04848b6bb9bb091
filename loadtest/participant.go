package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// lesson is one synthetic lesson: a teacher and the classrooms watching it.
type lesson struct {
	id   string
	book *stampBook
	// teacherID is the teacher's participant id (Podium protocol), used to
	// tell the teacher's tracks from other classrooms' cameras.
	teacherID string
}

// joinedData is the part of the `joined` reply the tool needs.
type joinedData struct {
	Participant struct {
		ID string `json:"id"`
	} `json:"participant"`
	// ICEServers are the server's TURN URLs and credentials, if its TURN
	// is on; a turn-tcp classroom relays through them.
	ICEServers []iceServer `json:"iceServers"`
}

// session is one synthetic participant's signaling and connections. Its
// goroutines are owned by run, which returns after they have stopped.
type session struct {
	r     *runner
	l     *lesson
	name  string
	token string

	ws  *wsSession
	pub *publisher
	sub *webrtc.PeerConnection
	// lean is a lean classroom's receiving connection (instead of sub).
	lean *leanConn

	link *linkFactory
	api  *peerAPI
	// iceServers are the last join reply's (set before answerOffers runs).
	iceServers []iceServer

	signal  sync.WaitGroup  // answerOffers
	readers sync.WaitGroup  // track readers
	stats   *classroomStats // nil for a teacher
}

// classroomStats is what one classroom measured.
type classroomStats struct {
	lesson string
	name   string
	start  time.Time
	video  streamStats
	audio  streamStats
	other  streamStats // tracks of other classrooms (publish-back)

	// transport is what the selected candidate pair of the classroom's
	// receiving connection ran over at the end (transportOf).
	transport string
	// Counters at the middle of the measuring time (markHalf).
	halfVideoBytes  uint64
	halfAudioBytes  uint64
	halfLayerFrames [4]uint64
	// The streams' expected and distinct packets then, for the loss in
	// the second half (after the join's first seconds).
	halfVideoExpected, halfVideoDistinct uint64
	halfAudioExpected, halfAudioDistinct uint64
	halfStillsTime                       time.Duration
	halfStillsFrames                     uint64
	linkDropped                          uint64
	linkQueueDropped                     uint64

	mu       sync.Mutex
	err      string
	joinedAt time.Time
	// recv is the receiving connection, read at the end for its transport;
	// recvMu is held while it is read and taken to close it, since pion's
	// GetStats races with its Close.
	recvMu sync.Mutex
	recv   *webrtc.PeerConnection
	// Audio and stills (the server's sfu/stills.go): time spent on stills
	// and the pictures that came meanwhile.
	stillsOn     bool
	stillsSince  time.Time
	stillsTime   time.Duration
	stillsFrames uint64 // video frames received while on stills
	stillsFrom   uint64 // video frames when the current stills began
	// Milestones of the join, to tell where join time goes.
	replyAt, offerAt, connectedAt, firstPacketAt time.Time
	// With --reconnect: when the classroom first lost its link, the same
	// milestones of its rejoin, and when the teacher's first video frame
	// arrived after it.
	lostAt, rejoinedAt, reofferAt, reconnectedAt, recoveredAt time.Time
}

// setStills follows the server's word that the classroom gets only sound
// and stills (or video again).
func (c *classroomStats) setStills(on bool) {
	now := time.Now()
	c.video.mu.Lock()
	frames := c.video.frames
	c.video.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if on == c.stillsOn {
		return
	}
	c.stillsOn = on
	if on {
		c.stillsSince, c.stillsFrom = now, frames
		return
	}
	c.stillsTime += now.Sub(c.stillsSince)
	c.stillsFrames += frames - c.stillsFrom
}

// stillsUntil returns the time on stills and the frames received on
// stills up to end, counting a stills period still running.
func (c *classroomStats) stillsUntil(end time.Time) (time.Duration, uint64) {
	c.video.mu.Lock()
	frames := c.video.frames
	c.video.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	d, n := c.stillsTime, c.stillsFrames
	if c.stillsOn && end.After(c.stillsSince) {
		d += end.Sub(c.stillsSince)
		n += frames - c.stillsFrom
	}
	return d, n
}

// markAfterLoss records a rejoin milestone the first time it happens after
// the link was lost.
func (c *classroomStats) markAfterLoss(at *time.Time) {
	c.mu.Lock()
	if !c.lostAt.IsZero() && at.IsZero() {
		*at = time.Now()
	}
	c.mu.Unlock()
}

// linkLost records the first lost link.
func (c *classroomStats) linkLost(now time.Time) {
	c.mu.Lock()
	if c.lostAt.IsZero() {
		c.lostAt = now
	}
	c.mu.Unlock()
}

// teacherFrame records the first complete teacher video frame after a
// lost link.
func (c *classroomStats) teacherFrame(now time.Time) {
	c.mu.Lock()
	if !c.lostAt.IsZero() && c.recoveredAt.IsZero() {
		c.recoveredAt = now
	}
	c.mu.Unlock()
}

// mark records a join milestone the first time it happens.
func (c *classroomStats) mark(at *time.Time) {
	c.mu.Lock()
	if at.IsZero() {
		*at = time.Now()
	}
	c.mu.Unlock()
}

func (c *classroomStats) fail(err error) {
	c.mu.Lock()
	if c.err == "" {
		c.err = err.Error()
	}
	c.mu.Unlock()
}

// publishWS joins over the websocket and publishes plan on a publisher
// connection.
func (s *session) publishWS(ctx context.Context, plan mediaPlan, autoSubscribe bool) error {
	ws, err := dialSession(ctx, s.r.cfg.Server, s.token)
	if err != nil {
		return err
	}
	s.ws = ws
	reply, err := ws.request(ctx, "join", map[string]any{"autoSubscribe": autoSubscribe})
	if err != nil {
		return err
	}
	var jd joinedData
	_ = json.Unmarshal(reply.Data, &jd)
	s.iceServers = jd.ICEServers
	if s.stats == nil {
		s.l.teacherID = jd.Participant.ID
	} else {
		s.stats.mark(&s.stats.replyAt)
		s.stats.markAfterLoss(&s.stats.rejoinedAt)
		ws.watchStills(jd.Participant.ID, s.stats.setStills)
	}
	s.signal.Add(1)
	go func() {
		defer s.signal.Done()
		s.answerOffers(ctx)
	}()
	if plan.codec == "" {
		return nil
	}
	var layers ssrcLayers
	// The publisher connection has an API of its own: a teacher's records
	// frame send times; a classroom's only tags its packets.
	var book *stampBook
	if s.stats == nil {
		book = s.l.book
	}
	api, err := newAPI(peerOptions{stamps: &stampFactory{book: book, layers: &layers}, loopbackOnly: s.r.cfg.LoopbackOnly, transport: s.transport()})
	if err != nil {
		return err
	}
	cfg, err := connConfig(s.transport(), s.iceServers)
	if err != nil {
		return err
	}
	pub, err := newPublisher(api.API, cfg, plan, "loadtest", &layers)
	if err != nil {
		return err
	}
	s.pub = pub
	offer, err := pub.pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("publisher offer: %w", err)
	}
	sdp, err := completeLocal(ctx, pub.pc, offer)
	if err != nil {
		return err
	}
	ans, err := ws.request(ctx, "offer", sdpData{SDP: sdp, Tracks: pub.decl})
	if err != nil {
		return err
	}
	var d sdpData
	if err := json.Unmarshal(ans.Data, &d); err != nil || d.SDP == "" {
		return fmt.Errorf("answer without sdp: %s", ans.Data)
	}
	if err := pub.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: d.SDP}); err != nil {
		return fmt.Errorf("publisher answer: %w", err)
	}
	return nil
}

// answerOffers answers the server's offers for the subscriber connection,
// one at a time, until the socket closes.
func (s *session) answerOffers(ctx context.Context) {
	for {
		var offer string
		select {
		case offer = <-s.ws.offers:
		case <-s.ws.ended:
			if s.stats != nil && ctx.Err() == nil && !s.r.cfg.Reconnect {
				s.stats.fail(fmt.Errorf("signaling closed: %v", s.ws.err))
			}
			return
		case <-ctx.Done():
			return
		}
		if s.stats != nil {
			s.stats.mark(&s.stats.offerAt)
			s.stats.markAfterLoss(&s.stats.reofferAt)
		}
		if err := s.answer(ctx, offer); err != nil && ctx.Err() == nil {
			if s.stats != nil {
				s.stats.fail(err)
			}
			s.r.log.Debug("answer", "participant", s.name, "err", err)
		}
	}
}

func (s *session) answer(ctx context.Context, offer string) error {
	if s.stats != nil && s.r.cfg.Receiver == ReceiverLean {
		return s.answerLean(ctx, offer)
	}
	if s.sub == nil {
		cfg, err := connConfig(s.transport(), s.iceServers)
		if err != nil {
			return err
		}
		pc, err := s.api.NewPeerConnection(cfg)
		if err != nil {
			return fmt.Errorf("subscriber connection: %w", err)
		}
		s.sub = pc
		pc.OnTrack(s.onTrack)
		s.watchConnected(pc)
	}
	s.api.repair.LearnSDP(offer)
	if err := s.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return fmt.Errorf("subscriber offer: %w", err)
	}
	ans, err := s.sub.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("subscriber answer: %w", err)
	}
	sdp, err := completeLocal(ctx, s.sub, ans)
	if err != nil {
		return err
	}
	return s.ws.send(envelope{Type: "answer", Data: mustJSON(sdpData{SDP: sdp})})
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// onTrack reads one received track until it ends, counting headers only.
func (s *session) onTrack(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	// Read the track's RTCP as a browser does: the server's sender reports
	// reach the receiver-report interceptor only when read, and without them
	// the receiver reports carry no round-trip timing, so the server could
	// not space its retransmissions by the round trip.
	s.readers.Add(1)
	go func() {
		defer s.readers.Done()
		for {
			if _, _, err := recv.ReadRTCP(); err != nil {
				return
			}
		}
	}()
	if s.stats == nil { // a teacher: read and drop what it is sent
		s.readers.Add(1)
		go func() {
			defer s.readers.Done()
			buf := make([]byte, 1500)
			for {
				if _, _, err := tr.Read(buf); err != nil {
					return
				}
			}
		}()
		return
	}
	video := tr.Kind() == webrtc.RTPCodecTypeVideo
	st := &s.stats.other
	fromTeacher := s.l.teacherID == "" || tr.StreamID() == s.l.teacherID ||
		strings.HasPrefix(tr.StreamID(), s.l.teacherID)
	if fromTeacher {
		if video {
			st = &s.stats.video
		} else {
			st = &s.stats.audio
		}
	}
	if !video && strings.EqualFold(tr.Codec().MimeType, "audio/red") {
		st.mu.Lock()
		st.red = true
		st.mu.Unlock()
	}
	var book *stampBook
	if fromTeacher && video {
		book = s.l.book
	}
	s.readers.Add(1)
	go func() {
		defer s.readers.Done()
		buf := make([]byte, 1500)
		first := fromTeacher && video
		for {
			n, _, err := tr.Read(buf)
			if err != nil {
				return
			}
			now := time.Now()
			if first {
				first = false
				s.stats.mark(&s.stats.firstPacketAt)
			}
			if fromTeacher && video && n > 1 && buf[1]&0x80 != 0 {
				s.stats.teacherFrame(now)
			}
			st.onPacket(now, buf[:n], video, book)
		}
	}()
}

// transport is the session's --transport: a classroom's; a teacher keeps
// the default (UDP), as the docs say.
func (s *session) transport() string {
	if s.stats == nil {
		return TransportUDP
	}
	return s.r.cfg.Transport
}

// recordTransport notes what the classroom's receiving connection runs
// over; called at the end of the measuring time, before the rooms stop.
func (c *classroomStats) recordTransport() {
	c.recvMu.Lock()
	var t string
	if c.recv != nil {
		t = transportOf(c.recv)
	}
	c.recvMu.Unlock()
	if t == "" {
		return
	}
	c.mu.Lock()
	c.transport = t
	c.mu.Unlock()
}

// forgetRecv lets the receiving connection go before it is closed, once
// any reading of its transport is done.
func (c *classroomStats) forgetRecv() {
	c.recvMu.Lock()
	c.recv = nil
	c.recvMu.Unlock()
}

// close ends the session: leave, close connections, wait for readers.
func (s *session) close() {
	if s.ws != nil {
		_ = s.ws.send(envelope{Type: "leave"})
	}
	s.closeConns()
}

// closeConns closes the socket and the connections and waits for their
// goroutines (signaling, track readers, link pumps).
func (s *session) closeConns() {
	if s.ws != nil {
		s.ws.close()
		<-s.ws.ended
		s.signal.Wait()
	}
	if s.pub != nil {
		_ = s.pub.pc.Close()
	}
	if s.sub != nil {
		if s.stats != nil {
			s.stats.forgetRecv()
		}
		_ = s.sub.Close()
	}
	if s.lean != nil {
		s.lean.close()
	}
	s.readers.Wait()
	if s.link != nil {
		s.link.wait()
	}
}

// subscribeWHEP watches the lesson through plain WHEP: one receive-only
// connection with a video and an audio transceiver.
func (s *session) subscribeWHEP(ctx context.Context, client *http.Client) (resource string, err error) {
	pc, err := s.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return "", fmt.Errorf("whep connection: %w", err)
	}
	s.sub = pc
	pc.OnTrack(s.onTrack)
	s.watchConnected(pc)
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return "", fmt.Errorf("whep transceiver: %w", err)
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return "", fmt.Errorf("whep offer: %w", err)
	}
	sdp, err := completeLocal(ctx, pc, offer)
	if err != nil {
		return "", err
	}
	answer, resource, err := httpSDP(ctx, client, s.r.endpoint(s.r.cfg.WHEPURL, "whep", s.l.id), s.token, sdp)
	if err != nil {
		return "", err
	}
	s.api.repair.LearnSDP(answer)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return resource, fmt.Errorf("whep answer: %w", err)
	}
	return resource, nil
}

// publishWHIP publishes the teacher's media through WHIP.
func (s *session) publishWHIP(ctx context.Context, client *http.Client, plan mediaPlan) (resource string, err error) {
	var layers ssrcLayers
	api, err := newAPI(peerOptions{stamps: &stampFactory{book: s.l.book, layers: &layers}, loopbackOnly: s.r.cfg.LoopbackOnly})
	if err != nil {
		return "", err
	}
	pub, err := newPublisher(api.API, webrtc.Configuration{}, plan, "loadtest", &layers)
	if err != nil {
		return "", err
	}
	s.pub = pub
	offer, err := pub.pc.CreateOffer(nil)
	if err != nil {
		return "", fmt.Errorf("whip offer: %w", err)
	}
	sdp, err := completeLocal(ctx, pub.pc, offer)
	if err != nil {
		return "", err
	}
	answer, resource, err := httpSDP(ctx, client, s.r.endpoint(s.r.cfg.WHIPURL, "whip", s.l.id), s.token, sdp)
	if err != nil {
		return "", err
	}
	if err := pub.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return resource, fmt.Errorf("whip answer: %w", err)
	}
	return resource, nil
}

// waitConnected waits until a connection is connected.
func waitConnected(ctx context.Context, pc *webrtc.PeerConnection, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		switch pc.ConnectionState() {
		case webrtc.PeerConnectionStateConnected:
			return nil
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			return errors.New("connection failed")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("not connected after %s", timeout)
		case <-tick.C:
		}
	}
}

// markHalf remembers the counters at the middle of the measuring time, so
// the report can say what a classroom settled on (bitrate, layer) in the
// second half, after congestion control had time to find its rate.
func (c *classroomStats) markHalf() {
	c.halfStillsTime, c.halfStillsFrames = c.stillsUntil(time.Now())
	c.video.mu.Lock()
	c.halfVideoBytes = c.video.bytes
	c.halfLayerFrames = c.video.layerFrames
	c.halfVideoExpected, c.halfVideoDistinct = c.video.counts()
	c.video.delayHalfOpen = true
	c.video.mu.Unlock()
	c.audio.mu.Lock()
	c.halfAudioBytes = c.audio.bytes
	c.halfAudioExpected, c.halfAudioDistinct = c.audio.counts()
	c.audio.mu.Unlock()
}

// watchConnected records when a classroom's receiving connection first
// connects.
func (s *session) watchConnected(pc *webrtc.PeerConnection) {
	if s.stats == nil {
		return
	}
	s.stats.recvMu.Lock()
	s.stats.recv = pc
	s.stats.recvMu.Unlock()
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			s.stats.mark(&s.stats.connectedAt)
			s.stats.markAfterLoss(&s.stats.reconnectedAt)
		}
	})
}

// Receiver modes (Config.Receiver).
const (
	ReceiverPion = "pion"
	ReceiverLean = "lean"
)

// answerLean answers the server's offer with the classroom's lean
// connection, opening it on the first offer.
func (s *session) answerLean(ctx context.Context, offer string) error {
	first := s.lean == nil
	if first {
		lc, err := s.openLean(false)
		if err != nil {
			return err
		}
		s.lean = lc
	}
	sdp, err := s.lean.answer(offer)
	if err != nil {
		return fmt.Errorf("subscriber offer: %w", err)
	}
	if err := s.ws.send(envelope{Type: "answer", Data: mustJSON(sdpData{SDP: sdp})}); err != nil {
		return err
	}
	if first {
		s.connectLean(ctx)
	}
	return nil
}

// subscribeWHEPLean watches the lesson through WHEP with a lean
// connection.
func (s *session) subscribeWHEPLean(ctx context.Context, client *http.Client) (resource string, err error) {
	lc, err := s.openLean(true)
	if err != nil {
		return "", err
	}
	s.lean = lc
	answer, resource, err := httpSDP(ctx, client, s.r.endpoint(s.r.cfg.WHEPURL, "whep", s.l.id), s.token, lc.offer())
	if err != nil {
		return "", err
	}
	if err := lc.takeAnswer(answer); err != nil {
		return resource, fmt.Errorf("whep answer: %w", err)
	}
	s.connectLean(ctx)
	return resource, nil
}

// openLean opens a lean connection; controlling: the classroom offers.
func (s *session) openLean(controlling bool) (*leanConn, error) {
	return newLeanConn(s.r.leanPollers.pick(), s.stats, s.l, s.r.lean, s.r.cfg.Server, s.r.cfg.LoopbackOnly, controlling, s.r.cfg.leanLoss)
}

// connectLean connects the lean connection, once both descriptions are
// known, and marks the classroom connected when ICE and DTLS are done.
func (s *session) connectLean(ctx context.Context) {
	lc := s.lean
	s.readers.Add(1)
	go func() {
		defer s.readers.Done()
		if err := lc.connect(ctx, 15*time.Second); err != nil {
			if ctx.Err() == nil {
				s.stats.fail(err)
				s.r.log.Debug("lean connection", "participant", s.name, "err", err)
			}
			return
		}
		s.stats.mark(&s.stats.connectedAt)
		s.stats.mu.Lock()
		s.stats.transport = "udp"
		s.stats.mu.Unlock()
	}()
}
