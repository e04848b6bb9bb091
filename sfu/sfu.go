// Package sfu is Podium's media core: lessons (rooms), who is in them, the
// tracks they publish and the forwarding of every packet from a publisher to
// its subscribers, choosing a simulcast layer per subscriber.
//
// It owns WebRTC peers (pion/webrtc) and nothing about how clients reach it:
// signaling, auth and HTTP live in package signaling; RTSP pull lives in
// sfu/ingest; recording is just another Sink. It knows nothing of storage.
//
// Layout: sfu.go, room.go, track.go are the control plane (registry, lesson
// state and events, the fan-out point of a published track). engine.go
// builds the media ports (one ICE UDP mux, ICE-TCP, TURN in turn.go) and a
// pion API per peer connection; participant.go is the signaling contract,
// publisher.go and subscriber.go its two peer connections. The per-packet
// path is publisher.read -> Track.WriteRTP -> DownTrack.WriteRTP (layer
// choice and SSRC/sequence/timestamp/VP8 id rewriting, downtrack.go) ->
// the subscriber's egress (a ring and one goroutine per subscriber,
// egress.go); it takes no lock shared between subscribers and allocates
// nothing. allocator.go
// picks each subscriber's layers from its bandwidth estimate; codec.go and
// red.go read payloads; audiolevel.go turns RFC 6464 levels into speaking.
package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// ErrRoomExists is returned by CreateRoom for an id already in use.
var ErrRoomExists = errors.New("lesson already exists")

// DefaultEmptyLessonGrace is how long a lesson lives on after the last
// teacher, classroom or RTSP source left it, unless configured otherwise.
const DefaultEmptyLessonGrace = 60 * time.Second

// Rooms is the registry of live lessons on this node.
type Rooms struct {
	log *slog.Logger

	mu         sync.Mutex
	rooms      map[string]*Room
	onCreated  []func(*Room)
	emptyGrace time.Duration
	// Lessons someone took part in and that did not end (a shutdown does
	// not count as an end), kept in statePath when set (lessonstate.go).
	taken     map[string]LessonInfo
	statePath string
	// resumable: lessons of the last run nobody has come back to yet,
	// until resumeTimer ends the offer.
	resumable   map[string]LessonInfo
	resumeTimer *time.Timer
}

// NewRooms makes an empty registry whose lessons end
// DefaultEmptyLessonGrace after the last participant left.
func NewRooms(log *slog.Logger) *Rooms {
	if log == nil {
		log = slog.Default()
	}
	return &Rooms{log: log, rooms: make(map[string]*Room), taken: make(map[string]LessonInfo), emptyGrace: DefaultEmptyLessonGrace}
}

// SetEmptyLessonGrace sets how long a lesson created later lives on once
// no teacher, classroom or RTSP source is left in it (a WHIP publisher's
// DELETE or dead connection, everyone gone): then it ends, and its
// recording completes. d < 0 keeps such lessons until someone ends them.
// A lesson nobody has joined yet (created ahead by an administrator) is
// not ended.
func (rs *Rooms) SetEmptyLessonGrace(d time.Duration) {
	rs.mu.Lock()
	rs.emptyGrace = d
	rs.mu.Unlock()
}

// OnRoomCreated registers fn to run for every room created later (the
// recorder starts recording here). fn runs synchronously before the creator
// gets the room, so it sees every event of the room.
func (rs *Rooms) OnRoomCreated(fn func(*Room)) {
	rs.mu.Lock()
	rs.onCreated = append(rs.onCreated, fn)
	rs.mu.Unlock()
}

// ValidRoomID reports whether id is usable as a lesson id: 1 to 64 letters,
// digits, '-', '_' or '.', not starting with '.'. Lesson ids appear in URLs
// and storage keys, so nothing else is allowed.
func ValidRoomID(id string) bool {
	if len(id) == 0 || len(id) > 64 || id[0] == '.' {
		return false
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// CreateRoom starts a new lesson.
func (rs *Rooms) CreateRoom(info LessonInfo) (*Room, error) {
	if !ValidRoomID(info.ID) {
		return nil, fmt.Errorf("invalid lesson id %q", info.ID)
	}
	rs.mu.Lock()
	if _, ok := rs.rooms[info.ID]; ok {
		rs.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrRoomExists, info.ID)
	}
	r := rs.newRoomLocked(info)
	hooks := append([]func(*Room){}, rs.onCreated...)
	rs.mu.Unlock()
	for _, fn := range hooks {
		fn(r)
	}
	return r, nil
}

// GetOrCreateRoom returns the live lesson with the id, creating it when there
// is none (a teacher's first join).
func (rs *Rooms) GetOrCreateRoom(id string) (r *Room, created bool, err error) {
	if !ValidRoomID(id) {
		return nil, false, fmt.Errorf("invalid lesson id %q", id)
	}
	rs.mu.Lock()
	if r, ok := rs.rooms[id]; ok {
		rs.mu.Unlock()
		return r, false, nil
	}
	r = rs.newRoomLocked(LessonInfo{ID: id})
	hooks := append([]func(*Room){}, rs.onCreated...)
	rs.mu.Unlock()
	for _, fn := range hooks {
		fn(r)
	}
	return r, true, nil
}

func (rs *Rooms) newRoomLocked(info LessonInfo) *Room {
	if info.CreatedAt.IsZero() {
		info.CreatedAt = time.Now()
	}
	r := newRoom(info, rs.emptyGrace, rs.forget)
	r.onTaken = rs.remember
	rs.rooms[info.ID] = r
	delete(rs.resumable, info.ID) // back, whoever brought it
	rs.log.Info("lesson started", "lesson", info.ID)
	return r
}

func (rs *Rooms) forget(r *Room) {
	r.mu.Lock()
	shutdown := r.endReason == EndReasonShutdown
	r.mu.Unlock()
	rs.mu.Lock()
	if rs.rooms[r.ID()] == r {
		delete(rs.rooms, r.ID())
		if !shutdown {
			delete(rs.taken, r.ID())
			rs.saveLocked()
		}
	}
	rs.mu.Unlock()
	rs.log.Info("lesson ended", "lesson", r.ID())
}

// Room returns a live lesson.
func (rs *Rooms) Room(id string) (*Room, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r, ok := rs.rooms[id]
	return r, ok
}

// List returns every live lesson, ordered by id.
func (rs *Rooms) List() []*Room {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := make([]*Room, 0, len(rs.rooms))
	for _, r := range rs.rooms {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID() < out[j].ID() })
	return out
}

// EndAll ends every live lesson (shutdown) and waits until each has
// delivered its last event.
func (rs *Rooms) EndAll(reason string) {
	rs.mu.Lock()
	if rs.resumeTimer != nil {
		rs.resumeTimer.Stop()
	}
	rs.mu.Unlock()
	for _, r := range rs.List() {
		r.End(reason)
		r.events.wait()
	}
}
