package cascade

// The control plane between nodes: every mirror (an edge mirroring a
// lesson from its origin, or the origin mirroring an edge's own
// classrooms back) reads the peer's lesson events over one websocket,
// GET {lesson}/events, and applies them to its own room. The server side
// keeps the lesson's recent events in a journal with a sequence number,
// so a reader that reconnects resumes after the last event it saw: no
// event is lost to a short break, and none is applied twice.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"podium/internal/httpx"
	"podium/sfu"
)

// Wire-only message types of the event stream.
const (
	// typeHello opens a stream: Epoch names the journal, Seq the last
	// event the reader has (it resumes after it).
	typeHello sfu.EventType = "hello"
	// typePing keeps an idle stream alive; Seq is the journal's position.
	typePing sfu.EventType = "ping"
)

// wireEvent is one message of the event stream: a room event and its
// place in the lesson's journal.
type wireEvent struct {
	sfu.Event
	Seq   uint64 `json:"seq,omitempty"`
	Epoch string `json:"epoch,omitempty"`
}

const (
	journalSize    = 1024
	streamPing     = 10 * time.Second
	streamTimeout  = 3 * streamPing // a reader hearing nothing for this long reconnects
	streamWrite    = 10 * time.Second
	maxStreamEvent = 64 << 10
	// Backoff between reconnects of a broken stream.
	backoffMin  = 250 * time.Millisecond
	backoffMax  = 10 * time.Second
	maxChatLen  = 1000 // as the signaling protocol's chat
	maxSpeakers = 256
)

// journal is the recent events of one lesson on this node, numbered.
type journal struct {
	epoch  string
	cancel func() // stops listening to the room

	mu      sync.Mutex
	first   uint64 // seq of events[0]
	events  []sfu.Event
	next    uint64 // seq the next event gets
	ended   bool   // lessonEnded is in the journal
	changed chan struct{}
}

func (j *journal) add(e sfu.Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.ended {
		return
	}
	j.events = append(j.events, e)
	j.next++
	if len(j.events) > journalSize {
		j.events = slices.Delete(j.events, 0, len(j.events)-journalSize)
		j.first = j.next - journalSize
	}
	j.ended = e.Type == sfu.EventLessonEnded
	close(j.changed)
	j.changed = make(chan struct{})
}

// since returns the events after seq after, whether some were already
// dropped from the journal, and a channel closed at the next event.
func (j *journal) since(after uint64) (evs []wireEvent, lost bool, last uint64, changed <-chan struct{}) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if after+1 < j.first {
		lost = true
		after = j.first - 1
	}
	for i := after + 1; i < j.next; i++ {
		evs = append(evs, wireEvent{Event: j.events[i-j.first], Seq: i})
	}
	return evs, lost, j.next - 1, j.changed
}

// journalOf returns the room's journal, listening to the room from now on.
func (o *Origin) journalOf(room *sfu.Room) *journal {
	o.mu.Lock()
	defer o.mu.Unlock()
	if j, ok := o.journals[room]; ok {
		return j
	}
	j := &journal{epoch: newID(), first: 1, next: 1, changed: make(chan struct{})}
	j.cancel = room.OnEvent(func(e sfu.Event) {
		j.add(e)
		if e.Type == sfu.EventLessonEnded {
			o.dropJournal(room, j)
		}
	})
	o.journals[room] = j
	return j
}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  4 << 10,
	WriteBufferSize: 16 << 10,
	// Nodes, not browsers, call this; the cluster key authenticates them.
	CheckOrigin: func(*http.Request) bool { return true },
}

// serveEvents streams a lesson's events to a peer node. Query: scope=own
// (an origin reading an edge's own participants) or edge=<the reader's
// URL> (an edge reading its origin); epoch and after resume a stream.
func (o *Origin) serveEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	own := false
	switch scope := q.Get("scope"); scope {
	case "":
	case scopeOwn:
		own = true
	default:
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("scope %q: must be empty or %q", truncate(scope), scopeOwn))
		return
	}
	edgeURL := q.Get("edge")
	if edgeURL != "" && !validPeerURL(edgeURL) {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("edge %q: not an http(s) URL", truncate(edgeURL)))
		return
	}
	var after uint64
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			httpx.WriteError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("after %q: not an event number", truncate(s)))
			return
		}
		after = n
	}
	room, ok := o.rooms.Room(r.PathValue("lesson"))
	if !ok || room.Ended() {
		httpx.WriteError(w, http.StatusNotFound, "not_found", "no such lesson on this node")
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", "the event stream is a websocket")
		return
	}
	j := o.journalOf(room)
	o.mu.Lock()
	if o.ctx.Err() != nil {
		o.mu.Unlock()
		httpx.WriteError(w, http.StatusServiceUnavailable, "draining", "origin closed")
		return
	}
	o.wg.Add(1)
	o.mu.Unlock()
	defer o.wg.Done()
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(o.ctx)
	defer cancel()
	// The reader side only answers pings and notices the peer leaving; it
	// ends when the connection closes.
	conn.SetReadLimit(1 << 10)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer cancel()
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	defer func() { conn.Close(); <-readDone }()
	f := &peerFilter{room: room, mirrors: o.mirrors, own: own, edge: edgeURL}
	send := func(m wireEvent) error {
		_ = conn.SetWriteDeadline(time.Now().Add(streamWrite))
		return conn.WriteJSON(m)
	}
	// Resume after the reader's last event when it read this journal;
	// otherwise start from now (the reader refreshes its state first).
	j.mu.Lock()
	cursor := j.next - 1
	if q.Get("epoch") == j.epoch && after <= cursor {
		cursor = after
	}
	j.mu.Unlock()
	if err := send(wireEvent{Event: sfu.Event{Type: typeHello, Room: room.ID()}, Epoch: j.epoch, Seq: cursor}); err != nil {
		return
	}
	log := o.log.With("lesson", room.ID(), "scope", q.Get("scope"), "edge", edgeURL)
	ping := time.NewTicker(streamPing)
	defer ping.Stop()
	// A room that ended just before the journal listened to it never
	// gets lessonEnded into it: give up on it shortly after the end.
	roomDone := room.Done()
	var endGraceC <-chan time.Time
	for {
		evs, lost, last, changed := j.since(cursor)
		if lost {
			log.Warn("cascade: events lost to a slow or broken stream", "after", cursor)
		}
		for _, m := range evs {
			cursor = m.Seq
			e, ok := f.pass(m.Event)
			if !ok {
				continue
			}
			m.Event = e
			if err := send(m); err != nil {
				log.Info("cascade: event stream ended", "err", err)
				return
			}
			if e.Type == sfu.EventLessonEnded {
				_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "lesson ended"), time.Now().Add(time.Second))
				return
			}
		}
		cursor = last
		select {
		case <-changed:
		case <-ping.C:
			if err := send(wireEvent{Event: sfu.Event{Type: typePing, Room: room.ID()}, Seq: cursor}); err != nil {
				return
			}
		case <-roomDone:
			roomDone = nil
			endGraceC = time.After(endGrace)
		case <-endGraceC:
			o.dropJournal(room, j)
			return
		case <-ctx.Done():
			_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "origin closing"), time.Now().Add(time.Second))
			return
		}
	}
}

func (o *Origin) dropJournal(room *sfu.Room, j *journal) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.journals[room] == j {
		delete(o.journals, room)
	}
	j.cancel()
}

// peerFilter chooses the events one reader gets. An origin reading an
// edge (own) gets what concerns the edge's own participants; an edge
// reading its origin gets everything but what concerns its own
// participants (mirrored on the origin from it), except the requests to
// mute them. So no event returns to the node it came from.
type peerFilter struct {
	room    *sfu.Room
	mirrors *mirrorSet
	own     bool
	edge    string
	spoken  []string // last speakers sent
	sentAny bool
}

// ours: the participant belongs to the reader's side. For an own-scope
// reader that is a participant of this node's own, present now (a chat
// relayed here from a classroom of another node names someone absent);
// only its leaving is told after it is gone.
func (f *peerFilter) ours(id string) bool {
	if f.own {
		_, present := f.room.Participant(id)
		return present && !f.mirrors.has(f.room.ID(), id)
	}
	return f.edge != "" && f.mirrors.from(f.room.ID(), id, f.edge)
}

func (f *peerFilter) pass(e sfu.Event) (sfu.Event, bool) {
	// about: whether the event concerns a participant of the reader's
	// side; an own-scope reader wants exactly those, an edge the others.
	want := func(about bool) bool { return about == f.own }
	switch e.Type {
	case sfu.EventParticipantLeft:
		// Only a hint to refresh: the reader's list says who is left.
		if f.own {
			return e, e.Participant != nil && !f.mirrors.has(f.room.ID(), e.Participant.ID)
		}
		return e, e.Participant != nil && !f.ours(e.Participant.ID)
	case sfu.EventParticipantJoined, sfu.EventParticipantUpdated:
		return e, e.Participant != nil && want(f.ours(e.Participant.ID))
	case sfu.EventTrackPublished, sfu.EventTrackUnpublished, sfu.EventTrackUpdated:
		return e, e.Track != nil && want(f.ours(e.Track.ParticipantID))
	case sfu.EventChat:
		return e, e.Chat != nil && want(f.ours(e.Chat.From))
	case sfu.EventStage:
		return e, !f.own
	case sfu.EventMuteRequest:
		// Only to the edge whose classroom owns the track.
		return e, !f.own && e.Track != nil && f.ours(e.Track.ParticipantID)
	case sfu.EventSpeaking:
		var ids []string
		for _, id := range e.Speakers {
			if want(f.ours(id)) {
				ids = append(ids, id)
			}
		}
		if f.sentAny && slices.Equal(ids, f.spoken) {
			return e, false
		}
		f.sentAny, f.spoken = true, ids
		e.Speakers = ids
		return e, true
	case sfu.EventLessonUpdated:
		// The lesson's state (chat switch, recording) is the origin's.
		return e, !f.own && e.Lesson != nil
	case sfu.EventLessonEnded:
		return e, true
	}
	return e, false
}

// follow reads the peer's event stream for room into out until ctx ends,
// reconnecting with backoff when it fails or breaks.
func (e *Edge) follow(ctx context.Context, peerURL, lesson string, back bool, out chan<- sfu.Event) {
	log := e.log.With("lesson", lesson, "peer", peerURL, "peer_side", peerSide(back))
	var epoch string
	var after uint64
	delay := backoffMin
	for ctx.Err() == nil {
		up, err := e.stream(ctx, peerURL, lesson, back, &epoch, &after, out, log)
		if ctx.Err() != nil || errors.Is(err, errStreamEnded) {
			return
		}
		if up {
			delay = backoffMin // it worked for a while: retry soon
		}
		e.metrics.reconnect(back)
		wait := delay/2 + rand.N(delay/2+1)
		log.Warn("cascade: event stream broken, reconnecting", "err", err, "retry_in", wait)
		delay = min(2*delay, backoffMax)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// stream runs one connection of follow; up says whether it got as far as
// the peer's hello.
func (e *Edge) stream(ctx context.Context, peerURL, lesson string, back bool, epoch *string, after *uint64, out chan<- sfu.Event, log *slog.Logger) (up bool, err error) {
	q := url.Values{}
	if back {
		q.Set("scope", scopeOwn)
	} else if e.selfURL != "" {
		q.Set("edge", e.selfURL)
	}
	if *epoch != "" {
		q.Set("epoch", *epoch)
		q.Set("after", strconv.FormatUint(*after, 10))
	}
	u := e.url(peerURL, lesson, "events") + "?" + q.Encode()
	u = "ws" + strings.TrimPrefix(u, "http")
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, res, err := dialer.DialContext(ctx, u, http.Header{"Authorization": {"Bearer " + e.key}})
	if err != nil {
		if res != nil {
			return false, fmt.Errorf("event stream: %s", res.Status)
		}
		return false, fmt.Errorf("event stream: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetReadLimit(maxStreamEvent)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(streamTimeout))
		var m wireEvent
		if err := conn.ReadJSON(&m); err != nil {
			if up && websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				err = errors.New("the peer closed the stream")
			}
			return up, err
		}
		if !up {
			if m.Type != typeHello || m.Epoch == "" {
				return false, fmt.Errorf("event stream: first message is %q, want hello", truncate(string(m.Type)))
			}
			if m.Epoch != *epoch {
				log.Info("cascade: event stream started", "from_event", m.Seq)
			}
			*epoch, *after = m.Epoch, m.Seq
			up = true
			e.metrics.streamUp(back, 1)
			defer e.metrics.streamUp(back, -1)
			log.Info("cascade: event stream connected")
		} else if m.Type != typePing && m.Seq <= *after {
			// Seen already, or unnumbered: a peer resumes after the last
			// event this node has, so this is the peer's mistake.
			e.metrics.event(back, "rejected")
			log.Warn("cascade: event from peer out of sequence, ignored", "type", truncate(string(m.Type)), "seq", m.Seq, "after", *after)
			continue
		}
		if m.Seq > *after {
			*after = m.Seq
		}
		if m.Type == typePing {
			continue
		}
		select {
		case out <- m.Event:
		case <-ctx.Done():
			return up, ctx.Err()
		}
		if m.Type == sfu.EventLessonEnded {
			return up, errStreamEnded
		}
	}
}

// errStreamEnded: the peer's lesson ended; there is nothing to follow.
var errStreamEnded = errors.New("the lesson ended on the peer")

// errRejected marks a peer's event this node refuses.
var errRejected = errors.New("cascade: event from peer rejected")

func reject(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errRejected, fmt.Sprintf(format, args...))
}

// EndedError is why a mirror stopped when the lesson ended on its peer:
// Reason is the one the peer's participants were given.
type EndedError struct{ Reason string }

func (e *EndedError) Error() string {
	return fmt.Sprintf("%v (%s)", ErrLessonEnded, e.Reason)
}

// Is makes errors.Is(err, ErrLessonEnded) true.
func (e *EndedError) Is(target error) bool { return target == ErrLessonEnded }

// apply makes one event of the peer's happen in the mirror's room. It
// reports whether the room must be refreshed from the peer's list
// (presence and tracks); a refused event changes nothing.
func (m *mirrorState) apply(ev sfu.Event) (refresh bool, err error) {
	room := m.room
	if ev.Room != room.ID() {
		return false, reject("event %q for lesson %q on the stream of %q", truncate(string(ev.Type)), truncate(ev.Room), room.ID())
	}
	// mine: a participant this mirror shows for the peer.
	mine := func(id string) bool { return m.mirrored[id] }
	switch ev.Type {
	case typeHello, sfu.EventParticipantJoined, sfu.EventParticipantLeft, sfu.EventTrackPublished, sfu.EventTrackUnpublished:
		return true, nil
	case sfu.EventStage:
		if m.back {
			return false, reject("an edge may not change the stage")
		}
		return true, nil
	case sfu.EventParticipantUpdated:
		p := ev.Participant
		if p == nil || p.ID == "" {
			return false, reject("participantUpdated without a participant")
		}
		if !mine(p.ID) {
			if _, present := room.Participant(p.ID); present {
				return false, reject("participant %q is not the peer's to update", truncate(p.ID))
			}
			return false, nil // not shown here: the list adds it with its hand
		}
		cur, ok := room.Participant(p.ID)
		if !ok {
			return false, nil
		}
		if cur.HandRaised != p.HandRaised {
			if err := room.RaiseHand(p.ID, p.HandRaised); err != nil {
				return false, fmt.Errorf("raise hand of %s: %w", p.ID, err)
			}
		}
		if p.MicMutedBy != "" && p.MicMutedBy != sfu.MutedBySelf && p.MicMutedBy != sfu.MutedByTeacher {
			return false, reject("participantUpdated with microphone muted by %q", truncate(p.MicMutedBy))
		}
		if cur.MicMuted != p.MicMuted || cur.MicMutedBy != p.MicMutedBy || cur.CameraOff != p.CameraOff {
			if err := room.ApplyRelayedState(*p); err != nil {
				return false, fmt.Errorf("state of %s: %w", p.ID, err)
			}
		}
		return false, nil
	case sfu.EventLessonUpdated:
		if m.back {
			return false, reject("an edge may not change the lesson's state")
		}
		if ev.Lesson == nil {
			return false, reject("lessonUpdated without the lesson")
		}
		if err := room.SetChatEnabled(ev.Lesson.ChatEnabled); err != nil {
			return false, fmt.Errorf("chat switch: %w", err)
		}
		room.SetRecording(ev.Lesson.Recording)
		return false, nil
	case sfu.EventTrackUpdated:
		if ev.Track == nil || ev.Track.ID == "" {
			return false, reject("trackUpdated without a track")
		}
		t, ok := room.Track(ev.Track.ID)
		if !ok {
			return false, nil // not relayed here
		}
		info := t.Info()
		if !mine(info.ParticipantID) {
			return false, reject("track %q is not the peer's to update", truncate(info.ID))
		}
		if info.Muted != ev.Track.Muted {
			return false, room.SetTrackMuted(info.ID, ev.Track.Muted)
		}
		return false, nil
	case sfu.EventMuteRequest:
		if m.back || ev.Track == nil || ev.By == "" {
			return false, reject("muteRequest must come from the origin and name a track and who asked")
		}
		t, ok := room.Track(ev.Track.ID)
		if !ok {
			return false, reject("muteRequest for unknown track %q", truncate(ev.Track.ID))
		}
		owner := t.Info().ParticipantID
		if _, present := room.Participant(owner); !present || mine(owner) || m.edge.mirrors.has(room.ID(), owner) {
			return false, reject("muteRequest for track %q, not one of this node's classrooms", truncate(ev.Track.ID))
		}
		if !mine(ev.By) {
			return false, reject("muteRequest by %q, not the origin's teacher", truncate(ev.By))
		}
		if info := t.Info(); info.Kind == sfu.KindAudio && info.Source == sfu.SourceMicrophone {
			// A microphone stands for its classroom: the teacher's mute
			// is the classroom's state here too ("muted by the teacher").
			return false, room.SetMicMuted(owner, ev.Track.Muted, sfu.MutedByTeacher, ev.By)
		}
		return false, room.RequestMute(t.ID(), ev.Track.Muted, ev.By)
	case sfu.EventChat:
		c := ev.Chat
		if c == nil || c.From == "" {
			return false, reject("chat without a sender")
		}
		if n := utf8.RuneCountInString(c.Text); n == 0 || n > maxChatLen || !utf8.ValidString(c.Text) || strings.TrimSpace(c.Text) == "" {
			return false, reject("chat text must be 1 to %d characters", maxChatLen)
		}
		if len(c.FromName) > 256 {
			return false, reject("chat sender name longer than 256 bytes")
		}
		if !mine(c.From) {
			// The origin speaks for the whole lesson: a sender not
			// shown here (left already, or a classroom of another node)
			// is fine, one of this node's own is not. An edge speaks
			// only for its own.
			if _, present := room.Participant(c.From); present || m.back {
				return false, reject("chat from %q, not the peer's participant", truncate(c.From))
			}
		}
		msg := *c
		if msg.Time.IsZero() {
			msg.Time = time.Now()
		}
		return false, room.RelayChat(msg)
	case sfu.EventSpeaking:
		if len(ev.Speakers) > maxSpeakers {
			return false, reject("%d speakers", len(ev.Speakers))
		}
		now := map[string]bool{}
		for _, id := range ev.Speakers {
			if mine(id) {
				now[id] = true
			}
		}
		for id := range m.speaking {
			if !now[id] {
				room.SetSpeaking(id, false)
			}
		}
		// Oldest first, so the loudest (first) ends up first here too.
		for _, id := range slices.Backward(ev.Speakers) {
			if now[id] && !m.speaking[id] {
				room.SetSpeaking(id, true)
			}
		}
		m.speaking = now
		return false, nil
	case sfu.EventLessonEnded:
		reason := ev.Reason
		if reason == "" {
			reason = "the lesson has ended"
		}
		return false, &EndedError{Reason: reason}
	}
	return false, reject("unknown event type %q", truncate(string(ev.Type)))
}

func validPeerURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// truncate keeps a peer's string short in an error message.
func truncate(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + "…"
}
