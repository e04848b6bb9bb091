package sfu

// CONTRACT between sfu (WebRTC) and signaling. The exported names and
// signatures in this file are what package signaling codes against; the
// bodies are the sfu's own business. Change a signature only together with
// its callers.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// Target names one of a participant's two peer connections. Every
// participant has up to two: the publisher connection, offered by the client,
// carries what it sends; the subscriber connection, offered by the server,
// carries what it receives. Two connections mean no offer glare and no
// renegotiation of the uplink when someone else publishes.
type Target string

const (
	TargetPublisher  Target = "publisher"
	TargetSubscriber Target = "subscriber"
)

// Signaler carries server-to-client signaling for one participant;
// package signaling implements it over the websocket. Calls never block for
// long (the implementation queues).
type Signaler interface {
	// SendOffer sends a server-made offer for the subscriber connection;
	// the client answers through Participant.SetAnswer.
	SendOffer(offer webrtc.SessionDescription)
	// SendCandidate trickles one of the server's ICE candidates.
	SendCandidate(target Target, c webrtc.ICECandidateInit)
}

// PublishTrack tells the sfu what a track in a client's offer is. TrackID is
// the MediaStreamTrack id (the second part of a=msid in the SDP).
type PublishTrack struct {
	TrackID string `json:"trackId"`
	Source  Source `json:"source"`
	Name    string `json:"name,omitempty"`
}

// Quality is a participant's connection as the server sees it.
type Quality struct {
	// EstimatedBitrate is the bandwidth estimate for what the server sends
	// to this participant, in bit/s (0 when unknown).
	EstimatedBitrate uint64 `json:"estimatedBitrate"`
	// SendBitrate is what the server currently sends to it, in bit/s.
	SendBitrate uint64 `json:"sendBitrate"`
	// Loss is the fraction of packets lost towards the participant (0..1), from receiver reports.
	Loss float64 `json:"loss"`
	// RTT is the round-trip time from RTCP, 0 when unknown.
	RTT time.Duration `json:"rtt"`
	// Layers maps a subscribed video track id to the simulcast layer index forwarded now.
	Layers map[string]int `json:"layers,omitempty"`
}

// Errors returned by Participant methods.
var (
	ErrNotAllowed     = errors.New("not allowed for this role")
	ErrBadSDP         = errors.New("bad session description")
	ErrClosed         = errors.New("participant has left")
	ErrNotImplemented = errors.New("not implemented yet")
)

// Participant is one WebRTC client in a lesson (a teacher, a classroom, a
// viewer, a WHIP publisher or a WHEP player).
type Participant struct {
	info ParticipantInfo
	room *Room
	// entry is the room's record of this connection; a successor under the
	// same id replaces it (JoinOptions.Replaces).
	entry *ParticipantInfo
	sfu   *SFU
	sig   Signaler
	opts  JoinOptions
	log   *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{}
	left   sync.Once

	mu  sync.Mutex // guards pub, sub creation
	pub *publisher
	sub *subscriber

	// Room events and connection failures reach the control goroutine
	// through this queue, so the room's listener never blocks.
	qmu          sync.Mutex
	queue        []controlMsg
	wake         chan struct{}
	cancelEvents func()
	// published is closed when the participant first publishes.
	published chan struct{}
}

type controlMsg struct {
	event  *Event
	failed Target // a connection failed for good, or the client closed it
	why    string // "failed" or "closed by the client"
	resync bool   // recompute automatic subscriptions
}

// JoinOptions are the participant-specific knobs of a join.
type JoinOptions struct {
	// AutoSubscribe subscribes the participant to what its role should see:
	// a classroom or viewer gets the teacher's tracks and the on-stage
	// classroom's; a teacher gets every classroom's camera and mic. Tracks
	// published later are added as they come.
	AutoSubscribe bool
	// Replaces is a present participant with the same id that this join
	// takes over from at once (a WHIP encoder that publishes again without
	// DELETE): the old connection is closed, and the tracks it published
	// stay, fed by the new connection once it sends the same kinds of
	// media, so whoever watches them keeps watching without renegotiating.
	Replaces *Participant
}

// speakingInterval is how often audio levels are turned into "speaking".
const speakingInterval = 300 * time.Millisecond

// Join adds a WebRTC participant to a room. info.ID must be unique in the
// room; the caller (signaling) chooses it. sig may be nil for WHIP/WHEP,
// which negotiate in one request.
func (s *SFU) Join(room *Room, info ParticipantInfo, sig Signaler, opts JoinOptions) (*Participant, error) {
	if info.JoinedAt.IsZero() {
		info.JoinedAt = time.Now()
	}
	var (
		entry *ParticipantInfo
		err   error
	)
	old := opts.Replaces
	if old != nil {
		if old.room != room || old.info.ID != info.ID {
			return nil, fmt.Errorf("join %s: replaces %s of lesson %s: not the same participant", info.ID, old.info.ID, old.room.ID())
		}
		entry, err = room.replaceEntry(info, old.entry)
	} else {
		entry, err = room.addEntry(info)
	}
	if err != nil {
		return nil, err
	}
	if old != nil {
		// Its tracks are the new connection's now: its ending must neither
		// feed nor unpublish them.
		old.detachTracks()
		old.leave("replaced by a new connection")
	}
	opts.Replaces = nil // done with: not kept alive by its successor
	ctx, cancel := context.WithCancel(context.Background())
	p := &Participant{
		info: info, room: room, entry: entry, sfu: s, sig: sig, opts: opts,
		log:    s.log.With("lesson", room.ID(), "participant", info.ID),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
		wake:   make(chan struct{}, 1),

		published: make(chan struct{}),
	}
	if err := s.addParticipant(p); err != nil {
		cancel()
		room.removeEntry(entry, "server shutting down")
		return nil, err
	}
	s.m.participants.WithLabelValues(string(info.Role)).Inc()
	p.cancelEvents = room.OnEvent(func(e Event) { p.enqueue(controlMsg{event: &e}) })
	p.enqueue(controlMsg{resync: true})
	p.wg.Add(1)
	go p.control()
	return p, nil
}

// ID returns the participant's id.
func (p *Participant) ID() string { return p.info.ID }

// Info returns the participant's description.
func (p *Participant) Info() ParticipantInfo { return p.info }

// Room returns the participant's room.
func (p *Participant) Room() *Room { return p.room }

func (p *Participant) isClosed() bool { return p.ctx.Err() != nil }

// Publish takes a client's offer for the publisher connection (first or
// renegotiated) with what its tracks are, and returns the answer. Only
// teachers, classrooms and WHIP publishers may publish; a classroom may not
// publish a screen.
func (p *Participant) Publish(offer webrtc.SessionDescription, tracks []PublishTrack) (webrtc.SessionDescription, error) {
	if p.isClosed() {
		return webrtc.SessionDescription{}, ErrClosed
	}
	if p.info.Role == RoleViewer || p.info.Role == RoleAdmin {
		return webrtc.SessionDescription{}, fmt.Errorf("%w: a %s cannot publish", ErrNotAllowed, p.info.Role)
	}
	for _, t := range tracks {
		switch t.Source {
		case SourceCamera, SourceMicrophone, SourceWhiteboard:
		case SourceScreen, SourceScreenAudio:
			if p.info.Role == RoleClassroom {
				return webrtc.SessionDescription{}, fmt.Errorf("%w: a classroom cannot share a screen", ErrNotAllowed)
			}
		default:
			return webrtc.SessionDescription{}, fmt.Errorf("%w: unknown source %q", ErrBadSDP, t.Source)
		}
	}
	offered, err := parseOffer(offer)
	if err != nil {
		return webrtc.SessionDescription{}, err
	}
	p.mu.Lock()
	if p.pub == nil {
		pub, err := newPublisher(p)
		if err != nil {
			p.mu.Unlock()
			return webrtc.SessionDescription{}, err
		}
		p.pub = pub
		close(p.published)
	}
	pub := p.pub
	p.mu.Unlock()
	return pub.publish(offer, offered, tracks)
}

// Watch takes a WHEP player's recvonly offer and answers it with the given
// tracks (the teacher's camera and mic, typically) attached.
func (p *Participant) Watch(offer webrtc.SessionDescription, trackIDs []string) (webrtc.SessionDescription, error) {
	if p.isClosed() {
		return webrtc.SessionDescription{}, ErrClosed
	}
	tracks, err := p.lookup(trackIDs)
	if err != nil {
		return webrtc.SessionDescription{}, err
	}
	sub, err := p.subscriber()
	if err != nil {
		return webrtc.SessionDescription{}, err
	}
	return sub.answer(offer, tracks)
}

// SetAnswer applies the client's answer to the last offer sent through
// Signaler.SendOffer.
func (p *Participant) SetAnswer(answer webrtc.SessionDescription) error {
	if p.isClosed() {
		return ErrClosed
	}
	p.mu.Lock()
	sub := p.sub
	p.mu.Unlock()
	if sub == nil {
		return fmt.Errorf("%w: no offer was sent", ErrBadSDP)
	}
	return sub.setAnswer(answer)
}

// AddCandidate adds a client's trickled ICE candidate to one connection.
func (p *Participant) AddCandidate(target Target, c webrtc.ICECandidateInit) error {
	if p.isClosed() {
		return ErrClosed
	}
	p.mu.Lock()
	var pc *webrtc.PeerConnection
	switch {
	case target == TargetPublisher && p.pub != nil:
		pc = p.pub.pc
	case target == TargetSubscriber && p.sub != nil:
		pc = p.sub.pc
	}
	p.mu.Unlock()
	if pc == nil {
		return fmt.Errorf("%w: no %s connection yet", ErrBadSDP, target)
	}
	if err := pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("%w: candidate: %v", ErrBadSDP, err)
	}
	return nil
}

// RestartClientICE restarts ICE on a connection the client offered (a WHIP
// publisher's, a WHEP player's) with the client's new ICE credentials, as a
// WHIP or WHEP PATCH carries them (RFC 9725 §4.3: no new offer; the rest of
// the session stays as negotiated). It returns the server's new answer,
// whose credentials and candidates the client needs. Media keeps flowing
// on the old path until the new one is checked.
func (p *Participant) RestartClientICE(target Target, ufrag, pwd string) (webrtc.SessionDescription, error) {
	if p.isClosed() {
		return webrtc.SessionDescription{}, ErrClosed
	}
	if ufrag == "" || pwd == "" {
		return webrtc.SessionDescription{}, fmt.Errorf("%w: an ICE restart needs both ice-ufrag and ice-pwd", ErrBadSDP)
	}
	p.mu.Lock()
	var (
		pc    *webrtc.PeerConnection
		negMu *sync.Mutex
	)
	switch {
	case target == TargetPublisher && p.pub != nil:
		pc, negMu = p.pub.pc, &p.pub.negMu
	case target == TargetSubscriber && p.sub != nil:
		pc, negMu = p.sub.pc, &p.sub.negMu
	}
	p.mu.Unlock()
	if pc == nil {
		return webrtc.SessionDescription{}, fmt.Errorf("%w: no %s connection yet", ErrBadSDP, target)
	}
	return restartAnswererICE(p.ctx, pc, negMu, ufrag, pwd)
}

// Subscribe forwards the given tracks to the participant (renegotiating the
// subscriber connection); already subscribed ids are ignored.
func (p *Participant) Subscribe(trackIDs ...string) error {
	if p.isClosed() {
		return ErrClosed
	}
	tracks, err := p.lookup(trackIDs)
	if err != nil {
		return err
	}
	sub, err := p.subscriber()
	if err != nil {
		return err
	}
	added, err := sub.add(tracks)
	if added {
		if nerr := sub.negotiate(false); nerr != nil {
			return errors.Join(err, nerr)
		}
	}
	return err
}

// lookup resolves track ids; one unknown id fails the whole call.
func (p *Participant) lookup(trackIDs []string) ([]*Track, error) {
	tracks := make([]*Track, 0, len(trackIDs))
	for _, id := range trackIDs {
		t, ok := p.room.Track(id)
		if !ok {
			return nil, fmt.Errorf("%w: %s", ErrNoSuchTrack, id)
		}
		tracks = append(tracks, t)
	}
	return tracks, nil
}

func (p *Participant) subscriber() (*subscriber, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sub == nil {
		sub, err := newSubscriber(p)
		if err != nil {
			return nil, err
		}
		p.sub = sub
	}
	return p.sub, nil
}

// Unsubscribe stops forwarding the given tracks.
func (p *Participant) Unsubscribe(trackIDs ...string) error {
	if p.isClosed() {
		return ErrClosed
	}
	p.mu.Lock()
	sub := p.sub
	p.mu.Unlock()
	if sub == nil {
		return nil
	}
	if sub.remove(trackIDs) {
		return sub.negotiate(false)
	}
	return nil
}

// SetMaxLayer caps the simulcast layer forwarded for one subscribed track
// (the teacher's grid wants small pictures); -1 removes the cap.
func (p *Participant) SetMaxLayer(trackID string, layer int) error {
	if layer < -1 {
		return fmt.Errorf("layer %d: must be -1 or a layer index", layer)
	}
	sub, err := p.subscriberFor(trackID)
	if err != nil {
		return err
	}
	return sub.setMaxLayer(trackID, layer)
}

// SetPaused stops forwarding a subscribed video track to the participant
// while it does not show it (the teacher's console shows only a few
// classrooms' pictures of many), or starts it again from a keyframe. The
// track stays negotiated, so showing it again is immediate.
func (p *Participant) SetPaused(trackID string, paused bool) error {
	sub, err := p.subscriberFor(trackID)
	if err != nil {
		return err
	}
	return sub.setPaused(trackID, paused)
}

// subscriberFor is the participant's subscriber connection, for a call
// about one of its tracks.
func (p *Participant) subscriberFor(trackID string) (*subscriber, error) {
	p.mu.Lock()
	sub := p.sub
	p.mu.Unlock()
	if sub == nil {
		return nil, fmt.Errorf("%w: not subscribed to %s", ErrNoSuchTrack, trackID)
	}
	return sub, nil
}

// RestartICE makes a new offer with fresh ICE credentials for the
// subscriber connection (the client restarts the publisher side itself by
// sending an offer with iceRestart).
func (p *Participant) RestartICE() error {
	if p.isClosed() {
		return ErrClosed
	}
	p.mu.Lock()
	sub := p.sub
	p.mu.Unlock()
	if sub == nil {
		return nil
	}
	return sub.negotiate(true)
}

// Quality reports the participant's connection as the server sees it.
func (p *Participant) Quality() Quality {
	p.mu.Lock()
	sub := p.sub
	p.mu.Unlock()
	if sub == nil {
		return Quality{}
	}
	return sub.quality()
}

// Done is closed once the participant has left (Close, or its connections failed for good).
func (p *Participant) Done() <-chan struct{} { return p.done }

// detachTracks stops the participant's publisher from feeding or
// unpublishing its tracks: a successor takes them over.
func (p *Participant) detachTracks() {
	p.mu.Lock()
	pub := p.pub
	p.mu.Unlock()
	if pub != nil {
		pub.detach()
	}
}

// Close leaves the room: its tracks are unpublished, its connections closed.
func (p *Participant) Close(reason string) {
	p.leave(reason)
	p.wg.Wait()
}

// leave tears the participant down without waiting for its goroutines, so
// that they may call it themselves.
func (p *Participant) leave(reason string) {
	p.left.Do(func() {
		p.cancelEvents()
		p.cancel()
		p.room.removeEntry(p.entry, reason)
		p.mu.Lock()
		pub, sub := p.pub, p.sub
		p.mu.Unlock()
		if sub != nil {
			sub.close()
		}
		if pub != nil {
			pub.close()
		}
		p.sfu.m.participants.WithLabelValues(string(p.info.Role)).Dec()
		p.sfu.removeParticipant(p)
		p.log.Info("participant left", "reason", reason)
		close(p.done)
	})
}

// connectionState runs on pion's goroutine; a failed connection (ICE gave
// up after its disconnect timeout) ends the participant's session, and so
// does one the client closed (a DTLS close_notify: a WHIP encoder that
// stops without DELETE, a closed tab): the sfu never closes a connection of
// a participant that stays, so it would be present forever, holding its
// lesson open.
func (p *Participant) connectionState(target Target, s webrtc.PeerConnectionState) {
	switch {
	case s == webrtc.PeerConnectionStateFailed:
		p.enqueue(controlMsg{failed: target, why: "failed"})
	case s == webrtc.PeerConnectionStateClosed && !p.isClosed():
		p.enqueue(controlMsg{failed: target, why: "closed by the client"})
	}
}

func (p *Participant) enqueue(m controlMsg) {
	p.qmu.Lock()
	p.queue = append(p.queue, m)
	p.qmu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// control is the participant's control goroutine: room events
// (automatic subscriptions), connection failures, speaking detection.
func (p *Participant) control() {
	defer p.wg.Done()
	// The audio levels are read only once the participant publishes: a
	// classroom that only watches has none, and 200 of them waking every
	// speakingInterval for nothing were 1 % of a node's CPU.
	levels := time.NewTicker(speakingInterval)
	levels.Stop()
	defer levels.Stop()
	published := p.published
	speaking := false
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-published:
			published = nil
			levels.Reset(speakingInterval)
			continue
		case <-levels.C:
			p.mu.Lock()
			pub := p.pub
			p.mu.Unlock()
			if now := pub.speaking(); now != speaking {
				speaking = now
				p.room.SetSpeaking(p.info.ID, now)
			}
			continue
		case <-p.wake:
		}
		p.qmu.Lock()
		msgs := p.queue
		p.queue = nil
		p.qmu.Unlock()
		for _, m := range msgs {
			if p.handle(m) {
				return
			}
		}
	}
}

// handle processes one control message; it reports whether the
// participant has left.
func (p *Participant) handle(m controlMsg) bool {
	switch {
	case m.failed != "":
		p.leave(fmt.Sprintf("%s connection %s", m.failed, m.why))
		return true
	case m.resync:
		p.syncSubscriptions()
	case m.event != nil:
		e := m.event
		switch e.Type {
		case EventLessonEnded:
			p.leave("lesson ended")
			return true
		case EventParticipantLeft:
			if e.Participant != nil && e.Participant.ID == p.info.ID {
				p.leave(e.Reason)
				return true
			}
		case EventTrackUnpublished:
			p.mu.Lock()
			sub := p.sub
			p.mu.Unlock()
			if sub != nil && e.Track != nil && sub.remove([]string{e.Track.ID}) {
				if p.sig == nil && len(sub.subscribedIDs()) == 0 {
					// A WHEP player cannot be offered other tracks: with
					// nothing left to watch its session ends, so the player
					// sees its connection close and can come back, rather
					// than sit on a connection that carries nothing.
					p.leave("everything it watched was unpublished")
					return true
				}
				if err := sub.negotiate(false); err != nil {
					p.log.Warn("renegotiate", "err", err)
				}
			}
		case EventTrackPublished, EventStage:
			p.syncSubscriptions()
		}
	}
	return false
}

// syncSubscriptions makes automatic subscriptions match the room: what the
// participant's role should see now is subscribed; classroom tracks it no
// longer should see (the stage moved on) are dropped.
func (p *Participant) syncSubscriptions() {
	if !p.opts.AutoSubscribe || p.sig == nil {
		return
	}
	var want []*Track
	wantIDs := make(map[string]bool)
	for _, t := range p.room.Tracks() {
		if p.wants(t) {
			want = append(want, t)
			wantIDs[t.ID()] = true
		}
	}
	var drop []string
	p.mu.Lock()
	sub := p.sub
	p.mu.Unlock()
	if sub != nil && p.info.Role != RoleTeacher {
		stage := p.room.Stage()
		for _, id := range sub.subscribedIDs() {
			t, ok := p.room.Track(id)
			if !ok || wantIDs[id] {
				continue
			}
			owner, _ := p.room.Participant(t.info.ParticipantID)
			if owner.Role == RoleClassroom && owner.ID != stage {
				drop = append(drop, id)
			}
		}
	}
	if len(want) == 0 && len(drop) == 0 {
		return
	}
	sub, err := p.subscriber()
	if err != nil {
		p.log.Warn("auto-subscribe", "err", err)
		return
	}
	removed := sub.remove(drop)
	added, err := sub.add(want)
	if err != nil {
		p.log.Warn("auto-subscribe", "err", err)
	}
	if added || removed {
		if err := sub.negotiate(false); err != nil {
			p.log.Warn("renegotiate", "err", err)
		}
	}
}

// wants reports whether the participant's role automatically sees a track.
func (p *Participant) wants(t *Track) bool {
	info := t.info
	if info.ParticipantID == p.info.ID {
		return false
	}
	owner, ok := p.room.Participant(info.ParticipantID)
	if !ok {
		return false
	}
	switch p.info.Role {
	case RoleTeacher:
		return (owner.Role == RoleClassroom || owner.Role == RoleSource) &&
			(info.Source == SourceCamera || info.Source == SourceMicrophone || info.Source == SourceWhiteboard)
	case RoleClassroom, RoleViewer:
		return owner.Role == RoleTeacher || owner.ID == p.room.Stage() ||
			(owner.Role == RoleSource && info.Source == SourceWhiteboard)
	}
	return false
}

// priorityOf ranks a subscribed video track for the allocator.
func (p *Participant) priorityOf(t *Track) int {
	if t.info.Source == SourceScreen || t.info.Source == SourceWhiteboard {
		return priorityScreen
	}
	owner, _ := p.room.Participant(t.info.ParticipantID)
	if owner.Role == RoleTeacher || owner.ID == p.room.Stage() {
		return priorityStage
	}
	return priorityGrid
}
