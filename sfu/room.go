package sfu

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Role is what a participant may do in a lesson.
type Role string

const (
	RoleTeacher   Role = "teacher"   // publishes camera, mic, screen; controls the lesson
	RoleClassroom Role = "classroom" // publishes camera+mic, subscribes
	RoleViewer    Role = "viewer"    // subscribes only
	RoleAdmin     Role = "admin"     // REST API only, never in a room
	RoleSource    Role = "source"    // an RTSP camera or whiteboard pulled by the server
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	switch r {
	case RoleTeacher, RoleClassroom, RoleViewer, RoleAdmin, RoleSource:
		return true
	}
	return false
}

// ParticipantInfo is the public description of someone (or something) in a
// lesson.
type ParticipantInfo struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Role       Role   `json:"role"`
	HandRaised bool   `json:"handRaised"`
	// Stills: the participant's link cannot carry video now; it receives
	// the lesson's audio and a still picture every few seconds
	// (sfu/stills.go).
	Stills   bool      `json:"stills,omitempty"`
	JoinedAt time.Time `json:"joinedAt"`
	// MicMuted is the server's truth about the participant's microphone
	// (sfu/mute.go): while true its microphone tracks are not forwarded.
	// MicMutedBy says who muted it: MutedBySelf or MutedByTeacher.
	MicMuted   bool   `json:"micMuted"`
	MicMutedBy string `json:"micMutedBy,omitempty"`
	// CameraOff: the participant turned its camera off, or its camera
	// stopped while it stays (sfu/controls.go).
	CameraOff bool `json:"cameraOff"`
}

// ChatMessage is one chat line in a lesson.
type ChatMessage struct {
	From     string    `json:"from"`     // participant id
	FromName string    `json:"fromName"` // display name at the time of sending
	Text     string    `json:"text"`
	Time     time.Time `json:"time"`
}

// EventType names a room event.
type EventType string

const (
	EventParticipantJoined  EventType = "participantJoined"
	EventParticipantLeft    EventType = "participantLeft"
	EventParticipantUpdated EventType = "participantUpdated" // hand raised or lowered
	EventTrackPublished     EventType = "trackPublished"
	EventTrackUnpublished   EventType = "trackUnpublished"
	EventTrackUpdated       EventType = "trackUpdated" // muted or unmuted
	EventStage              EventType = "stage"        // the on-stage classroom changed
	EventChat               EventType = "chat"
	EventLessonEnded        EventType = "lessonEnded"
	EventSpeaking           EventType = "speaking" // the set of speaking participants changed
	// EventMuteRequest: the teacher muted someone else's track (Track, muted
	// already); By names the teacher. Its owner should stop sending it.
	EventMuteRequest EventType = "muteRequest"
	// EventLessonUpdated: the lesson's state (Lesson) changed: recording,
	// chat switched (sfu/controls.go).
	EventLessonUpdated EventType = "lessonUpdated"
)

// Event is something that happened in a room. Listeners get events in the
// order they happened.
type Event struct {
	Type        EventType        `json:"type"`
	Room        string           `json:"room"`
	Time        time.Time        `json:"time"`
	Participant *ParticipantInfo `json:"participant,omitempty"`
	Track       *TrackInfo       `json:"track,omitempty"`
	Stage       string           `json:"stage,omitempty"` // participant id on stage, "" when none
	Chat        *ChatMessage     `json:"chat,omitempty"`
	Reason      string           `json:"reason,omitempty"`
	Speakers    []string         `json:"speakers,omitempty"` // participant ids, loudest first
	By          string           `json:"by,omitempty"`       // who asked (muteRequest)
	Lesson      *LessonInfo      `json:"lesson,omitempty"`   // lessonUpdated
}

// Errors returned by Room methods.
var (
	ErrRoomEnded          = errors.New("lesson has ended")
	ErrNoSuchParticipant  = errors.New("no such participant")
	ErrNoSuchTrack        = errors.New("no such track")
	ErrDuplicateTrack     = errors.New("track id already published")
	ErrNotStageCandidate  = errors.New("only a classroom can be put on stage")
	ErrParticipantPresent = errors.New("participant id already in the lesson")
)

// LessonInfo describes a room for the API.
type LessonInfo struct {
	ID        string    `json:"id"`
	Title     string    `json:"title,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	// Recording and ChatEnabled are the room's live state (Room.Info
	// fills them; sfu/controls.go).
	Recording   bool `json:"recording"`
	ChatEnabled bool `json:"chatEnabled"`
}

// Room is one lesson: who is in it, what they publish, who is on stage. It is
// the control plane; media flows through Track without touching the room.
type Room struct {
	info LessonInfo

	mu           sync.Mutex
	participants map[string]*ParticipantInfo
	tracks       map[string]*Track
	// adoptable holds tracks of a replaced participant (by id) until its
	// new connection takes them over or publishes without them.
	adoptable    map[string]*Track
	stage        string
	speakers     []string        // participant ids speaking now, most recent first
	teacherMuted map[string]bool // participant ids the teacher muted (sfu/mute.go)
	cameraOff    map[string]bool // participant ids that turned their camera off (sfu/controls.go)
	recording    bool            // the recorder records the lesson now
	chatDisabled bool            // the teacher switched the chat off
	ended        bool
	listeners    map[int]func(Event)
	nextListener int

	events *eventQueue
	done   chan struct{}
	onEnd  func(*Room)
	// taken is set once a teacher, classroom or source has been in the
	// lesson; onTaken hears it (the registry remembers the lesson across
	// a restart from then on). endReason is End's reason.
	taken     bool
	onTaken   func(*Room)
	endReason string

	// emptyGrace is how long the lesson lives on once nobody who takes
	// part in it is left (<= 0: forever); emptyTimer ends it then, and
	// emptyGen tells a stale timer that someone came back meanwhile.
	emptyGrace time.Duration
	emptyTimer *time.Timer
	emptyGen   uint64
}

func newRoom(info LessonInfo, emptyGrace time.Duration, onEnd func(*Room)) *Room {
	r := &Room{
		info:         info,
		participants: make(map[string]*ParticipantInfo),
		tracks:       make(map[string]*Track),
		adoptable:    make(map[string]*Track),
		listeners:    make(map[int]func(Event)),
		done:         make(chan struct{}),
		onEnd:        onEnd,
		emptyGrace:   emptyGrace,
	}
	r.events = newEventQueue(r.dispatch)
	return r
}

// ID returns the lesson id.
func (r *Room) ID() string { return r.info.ID }

// Info returns the lesson's description and state.
func (r *Room) Info() LessonInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.infoLocked()
}

// Done is closed when the lesson has ended.
func (r *Room) Done() <-chan struct{} { return r.done }

// Ended reports whether the lesson has ended.
func (r *Room) Ended() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ended
}

// OnEvent registers a listener for every later event of the room and returns
// a function that removes it. Listeners run one at a time on the room's event
// goroutine, in event order; they may call Room methods but must not block
// for long (hand slow work to a goroutine of their own).
func (r *Room) OnEvent(fn func(Event)) (cancel func()) {
	r.mu.Lock()
	id := r.nextListener
	r.nextListener++
	r.listeners[id] = fn
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		delete(r.listeners, id)
		r.mu.Unlock()
	}
}

func (r *Room) dispatch(e Event) {
	r.mu.Lock()
	ids := make([]int, 0, len(r.listeners))
	for id := range r.listeners {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	fns := make([]func(Event), 0, len(ids))
	for _, id := range ids {
		fns = append(fns, r.listeners[id])
	}
	r.mu.Unlock()
	for _, fn := range fns {
		fn(e)
	}
}

// emit queues an event; the caller holds r.mu so that events keep the order
// of the state changes they describe.
func (r *Room) emit(e Event) {
	e.Room = r.info.ID
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	r.events.push(e)
}

// AddParticipant records a participant as present and announces it.
func (r *Room) AddParticipant(info ParticipantInfo) error {
	_, err := r.addEntry(info)
	return err
}

// addEntry is AddParticipant returning the room's entry for the
// participant, which removeEntry takes.
func (r *Room) addEntry(info ParticipantInfo) (*ParticipantInfo, error) {
	r.mu.Lock()
	p, err := r.addEntryLocked(info)
	first := err == nil && takesPart(info.Role) && !r.taken
	if first {
		r.taken = true
	}
	r.mu.Unlock()
	if first && r.onTaken != nil {
		r.onTaken(r)
	}
	return p, err
}

func (r *Room) addEntryLocked(info ParticipantInfo) (*ParticipantInfo, error) {
	if r.ended {
		return nil, ErrRoomEnded
	}
	if _, ok := r.participants[info.ID]; ok {
		return nil, fmt.Errorf("%w: %s", ErrParticipantPresent, info.ID)
	}
	if info.JoinedAt.IsZero() {
		info.JoinedAt = time.Now()
	}
	p := info
	p.CameraOff = false
	r.applyTeacherMuteLocked(&p)
	r.applyCameraOffLocked(&p)
	r.participants[info.ID] = &p
	if takesPart(p.Role) {
		r.stopEmptyTimerLocked()
	}
	cp := p
	r.emit(Event{Type: EventParticipantJoined, Participant: &cp})
	return &p, nil
}

// replaceEntry puts a new connection of a present participant in the place
// of the old one, under the same id (a WHIP encoder that reconnected
// without DELETE): the participant stays in the lesson (participantUpdated,
// no left and joined), and its tracks stay published, waiting for the new
// connection to take them over (adoptTrack), so their subscribers keep
// their down-tracks. Once the old entry has left it is addEntry; when
// another connection replaced it first, ErrParticipantPresent.
func (r *Room) replaceEntry(info ParticipantInfo, old *ParticipantInfo) (*ParticipantInfo, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return nil, ErrRoomEnded
	}
	cur, ok := r.participants[info.ID]
	if !ok {
		return r.addEntryLocked(info)
	}
	if cur != old {
		return nil, fmt.Errorf("%w: %s (replaced by another connection meanwhile)", ErrParticipantPresent, info.ID)
	}
	if info.JoinedAt.IsZero() {
		info.JoinedAt = time.Now()
	}
	p := info
	p.MicMuted, p.MicMutedBy, p.CameraOff = old.MicMuted, old.MicMutedBy, old.CameraOff
	r.participants[info.ID] = &p
	for id, t := range r.tracks {
		if t.info.ParticipantID == info.ID {
			r.adoptable[id] = t
		}
	}
	cp := p
	r.emit(Event{Type: EventParticipantUpdated, Participant: &cp})
	return &p, nil
}

// adoptTrack gives a replacing connection the track its participant
// published before with the same source and kind, when the new one can feed
// it (same codec and layers). An incompatible one is unpublished, so the
// new track takes its id. It returns nil when there is nothing to adopt.
func (r *Room) adoptTrack(participantID string, source Source, kind Kind, codec Codec, layers []string) *Track {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, t := range r.adoptable {
		if t.info.ParticipantID != participantID || t.info.Source != source || t.info.Kind != kind {
			continue
		}
		delete(r.adoptable, id)
		if t.compatible(kind, codec, layers) {
			return t
		}
		r.unpublishLocked(id)
		return nil
	}
	return nil
}

// releaseAdoptable unpublishes the tracks a replacing connection's offer
// does not send (no source of theirs in it): nothing will feed them.
func (r *Room) releaseAdoptable(participantID string, offered map[Source]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, t := range r.adoptable {
		if t.info.ParticipantID == participantID && !offered[t.info.Source] {
			r.unpublishLocked(id)
		}
	}
}

// takesPart reports whether a participant of the role keeps a lesson
// going: a teacher (websocket or WHIP), a classroom or an RTSP source. A
// viewer (a WHEP player) watches what others send; with nobody else left
// there is nothing to watch.
func takesPart(r Role) bool {
	return r == RoleTeacher || r == RoleClassroom || r == RoleSource
}

// startEmptyTimerLocked arms the end of a lesson nobody takes part in any
// more. The caller holds r.mu.
func (r *Room) startEmptyTimerLocked() {
	if r.emptyGrace <= 0 || r.ended {
		return
	}
	for _, p := range r.participants {
		if takesPart(p.Role) {
			return
		}
	}
	r.stopEmptyTimerLocked()
	gen := r.emptyGen
	grace := r.emptyGrace
	r.emptyTimer = time.AfterFunc(grace, func() { r.endIfEmpty(gen, grace) })
}

// stopEmptyTimerLocked disarms it (someone came back, or the lesson ended).
func (r *Room) stopEmptyTimerLocked() {
	r.emptyGen++
	if r.emptyTimer != nil {
		r.emptyTimer.Stop()
		r.emptyTimer = nil
	}
}

func (r *Room) endIfEmpty(gen uint64, grace time.Duration) {
	r.mu.Lock()
	stale := r.ended || gen != r.emptyGen
	r.mu.Unlock()
	if stale {
		return
	}
	r.End(fmt.Sprintf("nobody has been in the lesson for %s", grace))
}

// RemoveParticipant unpublishes the participant's tracks, takes it off stage
// and announces that it left. It is a no-op for an unknown id.
func (r *Room) RemoveParticipant(id, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removeLocked(id, nil, reason)
}

// removeEntry is RemoveParticipant for one entry: a no-op once another
// connection replaced it (replaceEntry), so a replaced participant's late
// leave never removes its successor.
func (r *Room) removeEntry(entry *ParticipantInfo, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removeLocked(entry.ID, entry, reason)
}

func (r *Room) removeLocked(id string, entry *ParticipantInfo, reason string) {
	p, ok := r.participants[id]
	if !ok || (entry != nil && p != entry) {
		return
	}
	for tid, t := range r.tracks {
		if t.info.ParticipantID == id {
			r.unpublishLocked(tid)
		}
	}
	if r.stage == id {
		r.stage = ""
		r.emit(Event{Type: EventStage, Stage: ""})
	}
	r.setSpeakingLocked(id, false)
	delete(r.participants, id)
	cp := *p
	r.emit(Event{Type: EventParticipantLeft, Participant: &cp, Reason: reason})
	if takesPart(p.Role) {
		r.startEmptyTimerLocked()
	}
}

// Participant returns a participant's description.
func (r *Room) Participant(id string) (ParticipantInfo, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.participants[id]
	if !ok {
		return ParticipantInfo{}, false
	}
	return *p, true
}

// Participants returns everyone present, oldest first.
func (r *Room) Participants() []ParticipantInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]ParticipantInfo, 0, len(r.participants))
	for _, p := range r.participants {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].JoinedAt.Equal(out[j].JoinedAt) {
			return out[i].ID < out[j].ID
		}
		return out[i].JoinedAt.Before(out[j].JoinedAt)
	})
	return out
}

// RaiseHand sets or clears a participant's raised hand.
func (r *Room) RaiseHand(id string, raised bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.participants[id]
	if !ok {
		return ErrNoSuchParticipant
	}
	if p.HandRaised == raised {
		return nil
	}
	p.HandRaised = raised
	cp := *p
	r.emit(Event{Type: EventParticipantUpdated, Participant: &cp})
	return nil
}

// Publish adds a track to the room and announces it. The track's
// ParticipantID must name a present participant.
func (r *Room) Publish(t *Track) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return ErrRoomEnded
	}
	if _, ok := r.participants[t.info.ParticipantID]; !ok {
		return fmt.Errorf("publish %s: %w: %s", t.info.ID, ErrNoSuchParticipant, t.info.ParticipantID)
	}
	if _, ok := r.tracks[t.info.ID]; ok {
		return fmt.Errorf("%w: %s", ErrDuplicateTrack, t.info.ID)
	}
	r.tracks[t.info.ID] = t
	r.applyMicMuteLocked(t)
	r.applyCameraMuteLocked(t)
	info := t.Info()
	r.emit(Event{Type: EventTrackPublished, Track: &info})
	r.cameraPublishedLocked(t)
	return nil
}

// Unpublish removes a track and announces it; a no-op for an unknown id.
func (r *Room) Unpublish(trackID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.tracks[trackID]
	if !ok {
		return
	}
	r.unpublishLocked(trackID)
	r.cameraUnpublishedLocked(t)
}

func (r *Room) unpublishLocked(trackID string) {
	t, ok := r.tracks[trackID]
	if !ok {
		return
	}
	delete(r.tracks, trackID)
	delete(r.adoptable, trackID)
	t.Close()
	info := t.Info()
	r.emit(Event{Type: EventTrackUnpublished, Track: &info})
}

// SetTrackMuted records and announces a track's mute state.
func (r *Room) SetTrackMuted(trackID string, muted bool) error {
	return r.setMuted(trackID, muted, "")
}

// RequestMute is the teacher (by) muting someone else's track: the track
// is marked muted for everyone (trackUpdated), then its owner is asked to
// stop sending it (muteRequest).
func (r *Room) RequestMute(trackID string, muted bool, by string) error {
	return r.setMuted(trackID, muted, by)
}

// setMuted marks a track muted or not; a non-empty by also asks its owner.
func (r *Room) setMuted(trackID string, muted bool, by string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.tracks[trackID]
	if !ok {
		return ErrNoSuchTrack
	}
	t.SetMuted(muted)
	info := t.Info()
	r.emit(Event{Type: EventTrackUpdated, Track: &info})
	if by != "" {
		req := info
		r.emit(Event{Type: EventMuteRequest, Track: &req, By: by})
	}
	return nil
}

// Track returns a published track.
func (r *Room) Track(id string) (*Track, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.tracks[id]
	return t, ok
}

// Tracks returns every published track, ordered by id.
func (r *Room) Tracks() []*Track {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Track, 0, len(r.tracks))
	for _, t := range r.tracks {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].info.ID < out[j].info.ID })
	return out
}

// TracksOf returns the tracks a participant publishes.
func (r *Room) TracksOf(participantID string) []*Track {
	var out []*Track
	for _, t := range r.Tracks() {
		if t.info.ParticipantID == participantID {
			out = append(out, t)
		}
	}
	return out
}

// SetStage puts a classroom on stage (its camera and mic go to every
// classroom); an empty id takes whoever is on stage off it.
func (r *Room) SetStage(participantID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return ErrRoomEnded
	}
	if participantID != "" {
		p, ok := r.participants[participantID]
		if !ok {
			return ErrNoSuchParticipant
		}
		if p.Role != RoleClassroom && p.Role != RoleSource {
			return ErrNotStageCandidate
		}
	}
	if r.stage == participantID {
		return nil
	}
	r.stage = participantID
	r.emit(Event{Type: EventStage, Stage: participantID})
	return nil
}

// SetSpeaking records whether a participant is speaking now (from its audio
// levels) and announces the new set of speakers when it changed.
func (r *Room) SetSpeaking(participantID string, speaking bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.participants[participantID]; !ok && speaking {
		return
	}
	r.setSpeakingLocked(participantID, speaking)
}

func (r *Room) setSpeakingLocked(id string, speaking bool) {
	at := -1
	for i, s := range r.speakers {
		if s == id {
			at = i
		}
	}
	switch {
	case speaking && at < 0:
		r.speakers = append([]string{id}, r.speakers...)
	case !speaking && at >= 0:
		r.speakers = append(r.speakers[:at:at], r.speakers[at+1:]...)
	default:
		return
	}
	if r.ended {
		return
	}
	r.emit(Event{Type: EventSpeaking, Speakers: append([]string{}, r.speakers...)})
}

// Speakers returns the participants speaking now, most recent first.
func (r *Room) Speakers() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string{}, r.speakers...)
}

// uniqueTrackID returns "<participant>-<source>" (with "-2", "-3", ...
// when taken), keeping only letters, digits, '-' and '_' so the id is safe
// in storage keys.
func (r *Room) uniqueTrackID(participantID, source string) string {
	base := storageSafe(participantID) + "-" + storageSafe(source)
	r.mu.Lock()
	defer r.mu.Unlock()
	id := base
	for n := 2; ; n++ {
		if _, taken := r.tracks[id]; !taken {
			return id
		}
		id = fmt.Sprintf("%s-%d", base, n)
	}
}

func storageSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

// Stage returns the id of the participant on stage, or "".
func (r *Room) Stage() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stage
}

// Chat announces a chat message from a present participant.
func (r *Room) Chat(from, text string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.participants[from]
	if !ok {
		return ErrNoSuchParticipant
	}
	if r.chatDisabled && p.Role != RoleTeacher {
		return ErrChatDisabled
	}
	r.emit(Event{Type: EventChat, Chat: &ChatMessage{From: from, FromName: p.Name, Text: text, Time: time.Now()}})
	return nil
}

// RelayChat announces a chat message as it was sent on another node (the
// lesson's cascade): sender, name and time are kept as they were there.
func (r *Room) RelayChat(m ChatMessage) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return ErrRoomEnded
	}
	r.emit(Event{Type: EventChat, Chat: &m})
	return nil
}

// End ends the lesson: every track is unpublished, everyone is told, and the
// room leaves its registry. Ending twice is a no-op.
func (r *Room) End(reason string) {
	r.mu.Lock()
	if r.ended {
		r.mu.Unlock()
		return
	}
	for tid := range r.tracks {
		r.unpublishLocked(tid)
	}
	r.stopEmptyTimerLocked()
	r.ended = true
	r.endReason = reason
	r.emit(Event{Type: EventLessonEnded, Reason: reason})
	r.mu.Unlock()
	// Let listeners see lessonEnded before anything is torn down.
	r.events.close()
	close(r.done)
	if r.onEnd != nil {
		r.onEnd(r)
	}
}

// eventQueue delivers events in order on one goroutine without ever blocking
// the emitter, so a listener may itself call Room methods.
type eventQueue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	queue   []Event
	closed  bool
	drained chan struct{}
}

func newEventQueue(deliver func(Event)) *eventQueue {
	q := &eventQueue{drained: make(chan struct{})}
	q.cond = sync.NewCond(&q.mu)
	go q.run(deliver)
	return q
}

func (q *eventQueue) push(e Event) {
	q.mu.Lock()
	if !q.closed {
		q.queue = append(q.queue, e)
		q.cond.Signal()
	}
	q.mu.Unlock()
}

func (q *eventQueue) run(deliver func(Event)) {
	defer close(q.drained)
	for {
		q.mu.Lock()
		for len(q.queue) == 0 && !q.closed {
			q.cond.Wait()
		}
		if len(q.queue) == 0 && q.closed {
			q.mu.Unlock()
			return
		}
		e := q.queue[0]
		q.queue[0] = Event{}
		q.queue = q.queue[1:]
		q.mu.Unlock()
		deliver(e)
	}
}

// close stops taking events; those already queued are still delivered.
func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Signal()
	q.mu.Unlock()
}

// wait blocks until every queued event has been delivered after close.
func (q *eventQueue) wait() { <-q.drained }
