package sfu

import (
	"errors"
	"fmt"
	"sort"
)

// Who muted a participant's microphone (ParticipantInfo.MicMutedBy).
const (
	MutedBySelf    = "self"
	MutedByTeacher = "teacher"
)

// ErrMutedByTeacher refuses a participant unmuting itself while the teacher
// keeps it muted; it may raise its hand to ask to speak.
var ErrMutedByTeacher = errors.New("muted by the teacher")

// A participant's microphone state is the room's: ParticipantInfo.MicMuted
// and MicMutedBy, announced with participantUpdated to everyone. While it is
// muted, every microphone track it publishes (now or later) is muted too,
// so nothing of it is forwarded, whatever its client does. A teacher's mute
// outlives a reconnect: the same participant id comes back muted.

// isMicrophone reports whether a track carries a participant's voice.
func isMicrophone(t *Track) bool {
	return t.info.Kind == KindAudio && t.info.Source == SourceMicrophone
}

// applyTeacherMuteLocked marks a joining participant muted when the teacher
// muted it earlier in this lesson. The caller holds r.mu.
func (r *Room) applyTeacherMuteLocked(p *ParticipantInfo) {
	if r.teacherMuted[p.ID] {
		p.MicMuted, p.MicMutedBy = true, MutedByTeacher
	}
}

// applyMicMuteLocked mutes a newly published microphone track of a muted
// participant before it is announced. The caller holds r.mu.
func (r *Room) applyMicMuteLocked(t *Track) {
	if p, ok := r.participants[t.info.ParticipantID]; ok && p.MicMuted && isMicrophone(t) {
		t.SetMuted(true)
	}
}

// SetMicMuted sets a participant's microphone state. by is MutedBySelf (the
// participant itself) or MutedByTeacher, and requester the id of whoever
// asked (for muteRequest events to the owner). A participant the teacher
// muted cannot unmute itself (ErrMutedByTeacher); muting itself then
// changes nothing. The teacher's unmute lifts either kind of mute.
func (r *Room) SetMicMuted(participantID string, muted bool, by, requester string) error {
	if by != MutedBySelf && by != MutedByTeacher {
		return fmt.Errorf("set microphone of %s: unknown muter %q", participantID, by)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return ErrRoomEnded
	}
	p, ok := r.participants[participantID]
	if !ok {
		return fmt.Errorf("set microphone: %w: %s", ErrNoSuchParticipant, participantID)
	}
	if by == MutedBySelf && p.MicMutedBy == MutedByTeacher {
		if !muted {
			return ErrMutedByTeacher
		}
		return nil
	}
	r.setMicMutedLocked(p, muted, by, requester)
	return nil
}

// MuteAllClassrooms is the teacher's mute-all (muted) or unmute-all: every
// classroom present gets the teacher's mute or has it lifted, and so does
// a classroom that joins later until the teacher unmutes it. It returns how
// many classrooms changed.
func (r *Room) MuteAllClassrooms(muted bool, requester string) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return 0, ErrRoomEnded
	}
	n := 0
	for _, id := range r.sortedParticipantIDsLocked() {
		p := r.participants[id]
		if p.Role != RoleClassroom {
			continue
		}
		if p.MicMuted == muted && (!muted || p.MicMutedBy == MutedByTeacher) {
			continue
		}
		r.setMicMutedLocked(p, muted, MutedByTeacher, requester)
		n++
	}
	return n, nil
}

func (r *Room) sortedParticipantIDsLocked() []string {
	ids := make([]string, 0, len(r.participants))
	for id := range r.participants {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// setMicMutedLocked applies a state: the participant's microphone tracks
// (trackUpdated to all, and a muteRequest to the owner when the teacher,
// requester, asked; a state relayed from another node has none), then
// participantUpdated. The caller holds r.mu.
func (r *Room) setMicMutedLocked(p *ParticipantInfo, muted bool, by, requester string) {
	if by == MutedByTeacher {
		if r.teacherMuted == nil {
			r.teacherMuted = make(map[string]bool)
		}
		if muted {
			r.teacherMuted[p.ID] = true
		} else {
			delete(r.teacherMuted, p.ID)
		}
	}
	newBy := ""
	if muted {
		newBy = by
	}
	for _, tid := range r.sortedTrackIDsLocked() {
		t := r.tracks[tid]
		if t.info.ParticipantID != p.ID || !isMicrophone(t) || t.Muted() == muted {
			continue
		}
		t.SetMuted(muted)
		info := t.Info()
		r.emit(Event{Type: EventTrackUpdated, Track: &info})
		if by == MutedByTeacher && requester != "" {
			req := info
			r.emit(Event{Type: EventMuteRequest, Track: &req, By: requester})
		}
	}
	if p.MicMuted == muted && p.MicMutedBy == newBy {
		return
	}
	p.MicMuted, p.MicMutedBy = muted, newBy
	cp := *p
	r.emit(Event{Type: EventParticipantUpdated, Participant: &cp})
}

func (r *Room) sortedTrackIDsLocked() []string {
	ids := make([]string, 0, len(r.tracks))
	for id := range r.tracks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
