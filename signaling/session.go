package signaling

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"podium/internal/httpx"
	"podium/sfu"
	"podium/signaling/auth"
)

// outQueueSize bounds what a client may lag behind; a client that falls
// further behind is disconnected rather than slowing its room.
const outQueueSize = 256

// maxPauseTracks bounds one `pause` (a console showing or hiding every
// classroom of a large lesson at once).
const maxPauseTracks = 512

const writeTimeout = 10 * time.Second

type outgoing struct {
	msg       Message
	final     bool // close the socket after this message
	closeCode int
	closeText string
}

// session is one websocket client. Its reader goroutine (the HTTP handler)
// handles requests one at a time; its writer goroutine owns every write.
type session struct {
	srv    *Server
	conn   *websocket.Conn
	claims *auth.Claims
	pid    string
	roomID string
	log    *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	out    chan outgoing

	mu       sync.Mutex
	holding  int // > 0: server messages wait in held (a request or the join is in progress)
	held     []outgoing
	finished bool // a final message is queued; nothing more is sent
	p        *sfu.Participant
	leftCh   chan struct{} // closed once p has fully left (see leave)
	room     *sfu.Room
	unlisten func()
	// localSources maps the MediaStreamTrack ids this client announced in
	// its offers to their sources, so a `mute` naming its own local id
	// (what older pages send) finds its microphone.
	localSources map[string]sfu.Source

	chatLimit, handLimit, statsLimit bucket
	watchers                         sync.WaitGroup // goroutines watching the participant
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if s.Draining() {
		httpx.WriteError(w, http.StatusServiceUnavailable, "draining", "server is shutting down; reconnect to another node")
		return
	}
	c := claimsOf(r) // the router admitted teacher, classroom and viewer tokens
	if !sfu.ValidRoomID(c.Room) {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("invalid lesson id %q", c.Room))
		return
	}
	// Lessons start with their teacher: anyone else arriving early is told
	// so before the upgrade, plainly. A lesson the node had live before a
	// restart comes back with whoever returns first (sfu/lessonstate.go).
	if c.Role != sfu.RoleTeacher {
		if _, ok := s.sfu.Rooms.RoomOrResumed(c.Room); !ok {
			httpx.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("lesson %q has not started", c.Room))
			return
		}
	}
	if !websocket.IsWebSocketUpgrade(r) {
		// The pages' diagnosis of a refused socket: the token is good and
		// the lesson is live.
		httpx.WriteError(w, http.StatusBadRequest, "not_websocket", "token accepted; connect with a websocket")
		return
	}
	release, ok := s.admitSession(w, c)
	if !ok {
		return
	}
	defer release()
	conn, err := s.up.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	ctx, cancel := context.WithCancel(s.ctx)
	pid := participantID(c.Identity())
	sess := &session{
		srv: s, conn: conn, claims: c, pid: pid, roomID: c.Room,
		log: s.log.With("lesson", c.Room, "participant", pid, "role", c.Role),
		ctx: ctx, cancel: cancel, out: make(chan outgoing, outQueueSize),
		chatLimit: bucket{rate: 1, burst: 5}, handLimit: bucket{rate: 0.5, burst: 4},
		statsLimit: statsRate,
	}
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		cancel()
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseTryAgainLater, "draining"), time.Now().Add(time.Second))
		conn.Close()
		return
	}
	// Added under s.mu with the draining check, so Shutdown's Wait never
	// races a new Add.
	s.wg.Add(1)
	defer s.wg.Done()
	s.conns[sess] = struct{}{}
	s.mu.Unlock()
	s.metrics.wsConnections.Inc()
	defer func() {
		s.mu.Lock()
		delete(s.conns, sess)
		s.mu.Unlock()
		s.metrics.wsConnections.Dec()
	}()
	sess.run()
}

// run serves the session until the client leaves, is replaced, or the
// server shuts down.
func (s *session) run() {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.writeLoop() }()
	go func() { defer wg.Done(); s.qualityLoop() }()
	s.readLoop()
	// The writer closes the socket once it has flushed what is queued: a
	// request that ended the session (endLesson) has its reply and
	// lessonEnded waiting there, and closing here lost them.
	s.cancel()
	wg.Wait()
	s.watchers.Wait()
	s.leave("disconnected")
}

func (s *session) readLoop() {
	s.conn.SetReadLimit(MaxMessageSize)
	deadline := 3 * s.srv.cfg.PingInterval
	_ = s.conn.SetReadDeadline(time.Now().Add(deadline))
	s.conn.SetPongHandler(func(string) error { return s.conn.SetReadDeadline(time.Now().Add(deadline)) })
	for {
		typ, b, err := s.conn.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) && s.ctx.Err() == nil {
				s.log.Debug("websocket read ended", "err", err)
			}
			return
		}
		_ = s.conn.SetReadDeadline(time.Now().Add(deadline))
		if typ != websocket.TextMessage {
			s.sendError("", perr(CodeBadJSON, "binary messages are not part of the protocol"))
			continue
		}
		m, err := DecodeMessage(b)
		if err != nil {
			s.srv.metrics.messages.WithLabelValues("in", "invalid").Inc()
			s.sendError(m.ID, err)
			continue
		}
		s.srv.metrics.messages.WithLabelValues("in", m.Type).Inc()
		if stop := s.handle(m); stop {
			return
		}
		if s.ctx.Err() != nil {
			return
		}
	}
}

// writeLoop owns every write to the socket, and the keepalive pings.
func (s *session) writeLoop() {
	ping := time.NewTicker(s.srv.cfg.PingInterval)
	defer ping.Stop()
	defer s.conn.Close() // unblocks the reader
	for {
		select {
		case <-s.ctx.Done():
			// Messages already queued (lessonEnded, a final error) still go
			// out: the session may be cancelled by the event they announce.
			s.flushQueued()
			_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""), time.Now().Add(time.Second))
			return
		case <-ping.C:
			if err := s.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
				s.cancel()
				return
			}
		case o := <-s.out:
			_ = s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := s.conn.WriteMessage(websocket.TextMessage, o.msg.wire()); err != nil {
				s.cancel()
				return
			}
			s.srv.metrics.messages.WithLabelValues("out", o.msg.Type).Inc()
			if o.final {
				_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(o.closeCode, o.closeText), time.Now().Add(time.Second))
				s.cancel()
				return
			}
		}
	}
}

// flushQueued writes what is already queued, without waiting for more and
// within one write deadline, so a closing session does not lose its last
// words.
func (s *session) flushQueued() {
	_ = s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	for {
		select {
		case o := <-s.out:
			if err := s.conn.WriteMessage(websocket.TextMessage, o.msg.wire()); err != nil {
				return
			}
			s.srv.metrics.messages.WithLabelValues("out", o.msg.Type).Inc()
			if o.final {
				return
			}
		default:
			return
		}
	}
}

// enqueue queues a message for the writer without ever blocking: while a
// request is handled (or the join is in progress) server messages are held
// so that the reply comes first; a client whose queue is full is dropped.
func (s *session) enqueue(o outgoing) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return
	}
	if s.holding > 0 {
		s.held = append(s.held, o)
		return
	}
	s.pushLocked(o)
}

func (s *session) pushLocked(o outgoing) {
	if o.final {
		s.finished = true
	}
	select {
	case s.out <- o:
	default:
		s.finished = true
		s.log.Warn("client too slow, disconnecting", "queued", len(s.out))
		s.cancel()
	}
}

func (s *session) hold() {
	s.mu.Lock()
	s.holding++
	s.mu.Unlock()
}

// release queues reply (if any) and then what was held meanwhile.
func (s *session) release(reply *Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holding--
	if reply != nil && !s.finished {
		s.pushLocked(outgoing{msg: *reply})
	}
	if s.holding > 0 {
		return
	}
	held := s.held
	s.held = nil
	for _, o := range held {
		if s.finished {
			return
		}
		s.pushLocked(o)
	}
}

func (s *session) send(m Message) { s.enqueue(outgoing{msg: m}) }

func (s *session) sendFinal(m Message, code int, text string) {
	s.enqueue(outgoing{msg: m, final: true, closeCode: code, closeText: text})
}

func (s *session) sendError(id string, err error) {
	pe := errorFor(err)
	s.srv.metrics.errors.WithLabelValues(pe.code).Inc()
	s.send(encode("error", id, ErrorData{Code: pe.code, Message: pe.msg}))
}

// SendOffer implements sfu.Signaler.
func (s *session) SendOffer(offer webrtc.SessionDescription) {
	s.send(encode("offer", "", SDPData{SDP: offer.SDP}))
}

// SendCandidate implements sfu.Signaler.
func (s *session) SendCandidate(target sfu.Target, c webrtc.ICECandidateInit) {
	s.send(encode("trickle", "", TrickleData{Target: target, Candidate: CandidateInit{
		Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}}))
}

func (s *session) participant() *sfu.Participant {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p
}

// leave closes the participant (once) and gives up the identity slot.
//
// It returns only after the room has delivered the participant's
// participantLeft event: the sfu treats a participantLeft carrying its own
// id as its removal, so a stale one reaching a new session of the same
// identity would end that session. The slot (and so a rejoin) is released
// only after the event is out.
func (s *session) leave(reason string) {
	s.mu.Lock()
	p, unlisten, room, left := s.p, s.unlisten, s.room, s.leftCh
	s.p, s.unlisten = nil, nil
	s.mu.Unlock()
	if unlisten != nil {
		unlisten()
	}
	if p == nil {
		return
	}
	var delivered chan struct{}
	if _, present := room.Participant(p.ID()); present {
		delivered = make(chan struct{})
		var once sync.Once
		cancel := room.OnEvent(func(e sfu.Event) {
			if e.Type == sfu.EventParticipantLeft && e.Participant != nil && e.Participant.ID == p.ID() {
				once.Do(func() { close(delivered) })
			}
		})
		defer cancel()
	}
	p.Close(reason)
	if delivered != nil {
		select {
		case <-delivered:
		case <-room.Done():
		case <-time.After(5 * time.Second):
			s.log.Warn("participantLeft not delivered within 5 s")
		}
	}
	s.srv.releaseSlot(s.roomID, s.pid, s)
	close(left)
}

// replaced ends this session because the same identity joined again: the
// old participant has fully left the room (event delivered) before the new
// one enters it.
func (s *session) replaced() {
	s.leave("replaced by a new session")
	s.mu.Lock()
	left := s.leftCh
	s.mu.Unlock()
	if left != nil {
		// Another goroutine of this session may be leaving right now.
		select {
		case <-left:
		case <-time.After(10 * time.Second):
			s.log.Warn("old session did not leave within 10 s")
		}
	}
	s.sendFinal(encode("error", "", ErrorData{Code: "replaced", Message: "the same identity joined again from another connection"}),
		4001, "replaced by a new session")
}

// handle serves one request; it returns true when the session must end.
func (s *session) handle(m Message) (stop bool) {
	s.hold()
	reply, err := s.dispatch(m)
	if err != nil {
		pe := errorFor(err)
		s.srv.metrics.errors.WithLabelValues(pe.code).Inc()
		e := encode("error", m.ID, ErrorData{Code: pe.code, Message: pe.msg})
		s.release(&e)
		return false
	}
	if reply != nil {
		s.release(reply)
	} else {
		s.release(nil)
	}
	if m.Type == "endLesson" {
		// After the ok: everyone (this client too) gets lessonEnded.
		if r := s.currentRoom(); r != nil {
			r.End("the teacher ended the lesson")
		}
	}
	return m.Type == "leave"
}

func (s *session) currentRoom() *sfu.Room {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.room
}

func ok(id string) *Message { m := encode("ok", id, nil); return &m }

func (s *session) dispatch(m Message) (*Message, error) {
	if m.Type == "ping" {
		r := encode("pong", m.ID, struct{}{})
		return &r, nil
	}
	if m.Type == "join" {
		return s.join(m)
	}
	p := s.participant()
	if p == nil {
		return nil, perr(CodeNotJoined, "send join first")
	}
	room := s.currentRoom()
	switch m.Type {
	case "offer":
		var d OfferData
		if err := decodeData(m, &d); err != nil {
			return nil, err
		}
		if s.claims.Role == sfu.RoleViewer {
			return nil, perr(CodeForbidden, "a viewer may not publish")
		}
		for _, t := range d.Tracks {
			if err := checkPublishTrack(s.claims.Role, t); err != nil {
				return nil, err
			}
		}
		if err := checkSDP(webrtc.SDPTypeOffer, d.SDP); err != nil {
			return nil, err
		}
		ans, err := p.Publish(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: d.SDP}, d.Tracks)
		if err != nil {
			return nil, err
		}
		s.rememberSources(d.Tracks)
		r := encode("answer", m.ID, SDPData{SDP: ans.SDP})
		return &r, nil
	case "answer":
		var d SDPData
		if err := decodeData(m, &d); err != nil {
			return nil, err
		}
		if err := checkSDP(webrtc.SDPTypeAnswer, d.SDP); err != nil {
			return nil, err
		}
		if err := p.SetAnswer(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: d.SDP}); err != nil {
			return nil, err
		}
		return nil, nil
	case "trickle":
		var d TrickleData
		if err := decodeData(m, &d); err != nil {
			return nil, err
		}
		if d.Target != sfu.TargetPublisher && d.Target != sfu.TargetSubscriber {
			return nil, perr(CodeBadRequest, "target must be publisher or subscriber")
		}
		c := d.Candidate
		if err := p.AddCandidate(d.Target, webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMid: c.SDPMid,
			SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}); err != nil {
			return nil, err
		}
		return nil, nil
	case "subscribe", "unsubscribe":
		var d TrackIDsData
		if err := decodeData(m, &d); err != nil {
			return nil, err
		}
		if len(d.TrackIDs) == 0 {
			return nil, perr(CodeBadRequest, "data.trackIds is required")
		}
		var err error
		if m.Type == "subscribe" {
			for _, id := range d.TrackIDs {
				if _, ok := room.Track(id); !ok {
					return nil, perr(CodeNotFound, "no track %q in this lesson", truncate(id, 64))
				}
			}
			err = p.Subscribe(d.TrackIDs...)
		} else {
			err = p.Unsubscribe(d.TrackIDs...)
		}
		if err != nil {
			return nil, err
		}
		return ok(m.ID), nil
	case "setMaxLayer":
		var d SetMaxLayerData
		if err := decodeData(m, &d); err != nil {
			return nil, err
		}
		if d.Layer < -1 || d.Layer > 2 {
			return nil, perr(CodeBadRequest, "layer must be -1 (no cap), 0, 1 or 2")
		}
		if err := p.SetMaxLayer(d.TrackID, d.Layer); err != nil {
			return nil, err
		}
		return ok(m.ID), nil
	case "pause":
		var d PauseData
		if err := decodeData(m, &d); err != nil {
			return nil, err
		}
		if len(d.TrackIDs) == 0 || len(d.TrackIDs) > maxPauseTracks {
			return nil, perr(CodeBadRequest, "trackIds: 1 to %d track ids", maxPauseTracks)
		}
		for _, id := range d.TrackIDs {
			if err := p.SetPaused(id, d.Paused); err != nil {
				return nil, err
			}
		}
		return ok(m.ID), nil
	case "mute":
		return s.mute(m, room)
	case "muteAll":
		return s.muteAll(m, room)
	case "camera":
		var d CameraData
		if err := decodeData(m, &d); err != nil {
			return nil, err
		}
		if err := room.SetCameraOff(s.pid, d.Off); err != nil {
			return nil, fmt.Errorf("camera: %w", err)
		}
		return ok(m.ID), nil
	case "setChat":
		var d SetChatData
		if err := decodeData(m, &d); err != nil {
			return nil, err
		}
		if s.claims.Role != sfu.RoleTeacher {
			return nil, perr(CodeForbidden, "only the teacher switches the chat")
		}
		if err := room.SetChatEnabled(d.Enabled); err != nil {
			return nil, fmt.Errorf("switch chat: %w", err)
		}
		s.log.Info("chat switched", "enabled", d.Enabled)
		return ok(m.ID), nil
	case "stage":
		var d StageData
		if err := decodeData(m, &d); err != nil {
			return nil, err
		}
		if s.claims.Role != sfu.RoleTeacher {
			return nil, perr(CodeForbidden, "only the teacher puts a classroom on stage")
		}
		if err := room.SetStage(d.ParticipantID); err != nil {
			return nil, err
		}
		return ok(m.ID), nil
	case "raiseHand":
		var d RaiseHandData
		if err := decodeData(m, &d); err != nil {
			return nil, err
		}
		if !s.handLimit.allow(time.Now()) {
			return nil, perr(CodeRateLimited, "too many hand raises; wait a moment")
		}
		if err := room.RaiseHand(s.pid, d.Raised); err != nil {
			return nil, err
		}
		return ok(m.ID), nil
	case "chat":
		var d ChatData
		if err := decodeData(m, &d); err != nil {
			return nil, err
		}
		if n := utf8.RuneCountInString(d.Text); n == 0 || n > 1000 || strings.TrimSpace(d.Text) == "" {
			return nil, perr(CodeBadRequest, "chat text must be 1 to 1000 characters")
		}
		if !s.chatLimit.allow(time.Now()) {
			return nil, perr(CodeRateLimited, "too many chat messages; wait a moment")
		}
		if err := room.Chat(s.pid, d.Text); err != nil {
			if errors.Is(err, sfu.ErrChatDisabled) {
				return nil, perr(CodeChatDisabled, "the teacher has switched the chat off")
			}
			return nil, err
		}
		return ok(m.ID), nil
	case "restartIce":
		if err := decodeData(m, &struct{}{}); err != nil {
			return nil, err
		}
		if err := p.RestartICE(); err != nil {
			return nil, err
		}
		return ok(m.ID), nil
	case "endLesson":
		if s.claims.Role != sfu.RoleTeacher {
			return nil, perr(CodeForbidden, "only the teacher ends the lesson")
		}
		return ok(m.ID), nil
	case "leave":
		s.leave("left")
		return nil, nil
	case "stats":
		return s.stats(m, room)
	}
	return nil, perr(CodeUnknownType, "unknown message type %q", m.Type)
}

// mute sets a microphone (the room's participant state, see sfu/mute.go)
// or, for a camera or screen track, that track alone.
func (s *session) mute(m Message, room *sfu.Room) (*Message, error) {
	var d MuteData
	if err := decodeData(m, &d); err != nil {
		return nil, err
	}
	if (d.TrackID == "") == (d.ParticipantID == "") {
		return nil, perr(CodeBadRequest, "give data.trackId or data.participantId, not both")
	}
	target := d.ParticipantID
	if d.TrackID != "" {
		t, found := room.Track(d.TrackID)
		switch {
		case found && isMicrophone(t.Info()):
			target = t.Info().ParticipantID
		case found && isOwnCamera(t.Info(), s.pid):
			return s.cameraByMute(m, room, d.Muted)
		case found:
			if err := s.muteTrack(room, t.Info(), d.Muted); err != nil {
				return nil, err
			}
			return ok(m.ID), nil
		case s.localSource(d.TrackID) == sfu.SourceMicrophone:
			target = s.pid
		case s.localSource(d.TrackID) == sfu.SourceCamera:
			return s.cameraByMute(m, room, d.Muted)
		default:
			return nil, perr(CodeNotFound, "no track %q in this lesson", truncate(d.TrackID, 64))
		}
	}
	if err := s.muteMicrophone(room, target, d.Muted); err != nil {
		return nil, err
	}
	return ok(m.ID), nil
}

func isMicrophone(t sfu.TrackInfo) bool {
	return t.Kind == sfu.KindAudio && t.Source == sfu.SourceMicrophone
}

func isOwnCamera(t sfu.TrackInfo, pid string) bool {
	return t.ParticipantID == pid && t.Kind == sfu.KindVideo && t.Source == sfu.SourceCamera
}

// cameraByMute is `mute` naming one's own camera track: it stands for the
// participant's camera, as `camera` does.
func (s *session) cameraByMute(m Message, room *sfu.Room, off bool) (*Message, error) {
	if err := room.SetCameraOff(s.pid, off); err != nil {
		return nil, fmt.Errorf("camera: %w", err)
	}
	return ok(m.ID), nil
}

// muteMicrophone sets a participant's microphone: its own, or, for the
// teacher, anyone's.
func (s *session) muteMicrophone(room *sfu.Room, target string, muted bool) error {
	by := sfu.MutedBySelf
	if target != s.pid {
		if s.claims.Role != sfu.RoleTeacher {
			return perr(CodeForbidden, "only the teacher mutes someone else")
		}
		by = sfu.MutedByTeacher
	}
	err := room.SetMicMuted(target, muted, by, s.pid)
	switch {
	case errors.Is(err, sfu.ErrMutedByTeacher):
		return perr(CodeMutedByTeacher, "the teacher muted you; raise your hand to ask to speak")
	case errors.Is(err, sfu.ErrNoSuchParticipant):
		return perr(CodeNotFound, "no participant %q in this lesson", truncate(target, 64))
	case err != nil:
		return fmt.Errorf("mute %s: %w", target, err)
	}
	s.log.Debug("microphone", "target", target, "muted", muted, "by", by)
	return nil
}

// muteTrack mutes a camera or screen track: its owner's own, or the
// teacher's request to its owner (muteRequest), who may be on this node
// or, in a cascaded lesson, on another.
func (s *session) muteTrack(room *sfu.Room, t sfu.TrackInfo, muted bool) error {
	if t.ParticipantID == s.pid {
		return room.SetTrackMuted(t.ID, muted)
	}
	if s.claims.Role != sfu.RoleTeacher {
		return perr(CodeForbidden, "only the teacher mutes someone else's track")
	}
	return room.RequestMute(t.ID, muted, s.pid)
}

// muteAll is the teacher's mute-all or unmute-all of the classrooms.
func (s *session) muteAll(m Message, room *sfu.Room) (*Message, error) {
	var d MuteAllData
	if err := decodeData(m, &d); err != nil {
		return nil, err
	}
	if s.claims.Role != sfu.RoleTeacher {
		return nil, perr(CodeForbidden, "only the teacher mutes every classroom")
	}
	n, err := room.MuteAllClassrooms(d.Muted, s.pid)
	if err != nil {
		return nil, fmt.Errorf("mute all: %w", err)
	}
	s.log.Info("mute all", "muted", d.Muted, "classrooms", n)
	return ok(m.ID), nil
}

func (s *session) rememberSources(tracks []sfu.PublishTrack) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.localSources == nil {
		s.localSources = make(map[string]sfu.Source)
	}
	for _, t := range tracks {
		if len(s.localSources) >= 64 {
			return // a client renegotiating forever does not grow the map
		}
		s.localSources[t.TrackID] = t.Source
	}
}

func (s *session) localSource(trackID string) sfu.Source {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.localSources[trackID]
}

func (s *session) join(m Message) (*Message, error) {
	var d JoinData
	if err := decodeData(m, &d); err != nil {
		return nil, err
	}
	if s.participant() != nil {
		return nil, perr(CodeAlreadyJoined, "already joined")
	}
	var room *sfu.Room
	if s.claims.Role == sfu.RoleTeacher {
		r, _, err := s.srv.sfu.Rooms.GetOrCreateRoom(s.roomID)
		if err != nil {
			return nil, perr(CodeBadRequest, "%v", err)
		}
		room = r
	} else {
		r, found := s.srv.sfu.Rooms.RoomOrResumed(s.roomID)
		if !found {
			return nil, perr(CodeNotFound, "lesson %q has not started or has ended", s.roomID)
		}
		room = r
	}
	// Events are held (s.holding > 0) until the joined reply is queued, so
	// the client learns of its lesson before anything happens in it.
	unlisten := room.OnEvent(s.relay)
	if old := s.srv.claimSlot(s.roomID, s.pid, s); old != nil && old != s {
		old.replaced()
	}
	auto := true
	if d.AutoSubscribe != nil {
		auto = *d.AutoSubscribe
	}
	info := sfu.ParticipantInfo{ID: s.pid, Name: s.claims.Name, Role: s.claims.Role, JoinedAt: time.Now()}
	p, err := s.srv.sfu.Join(room, info, s, sfu.JoinOptions{AutoSubscribe: auto})
	if err != nil {
		unlisten()
		s.srv.releaseSlot(s.roomID, s.pid, s)
		if errors.Is(err, sfu.ErrParticipantPresent) {
			return nil, perr(CodeAlreadyJoined, "this identity is still in the lesson; retry in a moment")
		}
		return nil, err
	}
	s.mu.Lock()
	s.p, s.room, s.unlisten, s.leftCh = p, room, unlisten, make(chan struct{})
	s.mu.Unlock()
	// A participant the sfu drops (connections failed for good) ends the session.
	s.watchers.Add(1)
	go func() {
		defer s.watchers.Done()
		select {
		case <-p.Done():
			s.cancel()
		case <-s.ctx.Done():
		}
	}()
	tracks := room.Tracks()
	ti := make([]sfu.TrackInfo, 0, len(tracks))
	for _, t := range tracks {
		ti = append(ti, t.Info())
	}
	ice := s.srv.sfu.ICEServers(s.pid)
	if ice == nil {
		ice = []sfu.ICEServer{}
	}
	self := p.Info()
	if pi, found := room.Participant(s.pid); found {
		self = pi
	}
	r := encode("joined", m.ID, JoinedData{
		Participant: self, Lesson: room.Info(), Participants: room.Participants(),
		Tracks: ti, Stage: room.Stage(), ICEServers: ice, Protocol: ProtocolVersion,
	})
	s.log.Info("joined")
	return &r, nil
}

// relay turns a room event into a server message. It runs on the room's
// event goroutine, so it only queues.
func (s *session) relay(e sfu.Event) {
	switch e.Type {
	case sfu.EventParticipantJoined, sfu.EventParticipantLeft, sfu.EventParticipantUpdated:
		if e.Participant != nil {
			s.send(encode(string(e.Type), "", ParticipantEventData{Participant: *e.Participant, Reason: e.Reason}))
		}
	case sfu.EventTrackPublished, sfu.EventTrackUnpublished, sfu.EventTrackUpdated:
		if e.Track != nil {
			s.send(encode(string(e.Type), "", TrackEventData{Track: *e.Track}))
		}
	case sfu.EventStage:
		s.send(encode("stage", "", StageData{ParticipantID: e.Stage}))
	case sfu.EventLessonUpdated:
		if e.Lesson != nil {
			s.send(encode("lessonUpdated", "", LessonEventData{Lesson: *e.Lesson}))
		}
	case sfu.EventChat:
		if e.Chat != nil {
			s.send(encode("chat", "", ChatEventData{From: e.Chat.From, FromName: e.Chat.FromName, Text: e.Chat.Text,
				Time: e.Chat.Time.UTC().Format(time.RFC3339)}))
		}
	case sfu.EventSpeaking:
		ids := e.Speakers
		if ids == nil {
			ids = []string{}
		}
		s.send(encode("speaking", "", SpeakingData{ParticipantIDs: ids}))
	case sfu.EventMuteRequest:
		if e.Track != nil && e.Track.ParticipantID == s.pid {
			s.send(encode("muteRequest", "", MuteRequestData{TrackID: e.Track.ID, ParticipantID: e.Track.ParticipantID,
				Muted: e.Track.Muted, By: e.By}))
		}
	case sfu.EventLessonEnded:
		reason := e.Reason
		if reason == "" {
			reason = "the lesson has ended"
		}
		s.sendFinal(encode("lessonEnded", "", ReasonData{Reason: reason}), websocket.CloseNormalClosure, "lesson ended")
	}
}

// qualityLoop sends `quality` every interval once joined: the teacher sees
// everyone's connection, others only their own.
func (s *session) qualityLoop() {
	t := time.NewTicker(s.srv.cfg.QualityInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		p := s.participant()
		if p == nil {
			continue
		}
		q := map[string]sfu.Quality{}
		if s.claims.Role == sfu.RoleTeacher {
			for _, other := range s.srv.roomParticipants(s.roomID) {
				q[other.ID()] = other.Quality()
			}
		}
		q[p.ID()] = p.Quality()
		s.send(encode("quality", "", QualityData{Participants: q}))
		if s.claims.Role == sfu.RoleTeacher {
			s.sendDashboard()
		}
	}
}

// checkSDP refuses a session description that does not parse, before the
// sfu sees it.
func checkSDP(typ webrtc.SDPType, sdp string) error {
	if strings.TrimSpace(sdp) == "" {
		return perr(CodeBadRequest, "data.sdp is required")
	}
	desc := webrtc.SessionDescription{Type: typ, SDP: sdp}
	if _, err := desc.Unmarshal(); err != nil {
		return perr(CodeBadSDP, "the %s does not parse: %v", typ, err)
	}
	return nil
}

func checkPublishTrack(role sfu.Role, t sfu.PublishTrack) error {
	if t.TrackID == "" {
		return perr(CodeBadRequest, "every track needs a trackId")
	}
	switch t.Source {
	case sfu.SourceCamera, sfu.SourceMicrophone:
	case sfu.SourceScreen, sfu.SourceScreenAudio:
		if role != sfu.RoleTeacher {
			return perr(CodeForbidden, "only the teacher shares a screen")
		}
	default:
		return perr(CodeBadRequest, "source %q must be camera, microphone, screen or screen_audio", truncate(string(t.Source), 32))
	}
	return nil
}

// bucket is a token bucket limiting a client's chat and hand raises.
type bucket struct {
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
}

func (b *bucket) allow(now time.Time) bool {
	if b.last.IsZero() {
		b.tokens = b.burst
	} else {
		b.tokens += now.Sub(b.last).Seconds() * b.rate
		if b.tokens > b.burst {
			b.tokens = b.burst
		}
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
