package sfu

import (
	"errors"
	"fmt"
)

// The lesson's control state beside the microphone (sfu/mute.go): a
// participant's camera, whether the lesson is being recorded, and whether
// the classroom chat is on. All of it is the room's, announced to every
// listener (participantUpdated, lessonUpdated), so every page shows the same
// truth.

// ErrChatDisabled refuses a chat message while the teacher has switched
// the chat off; the teacher may still write.
var ErrChatDisabled = errors.New("the teacher has switched the chat off")

// isCamera reports whether a track is a participant's camera picture.
func isCamera(t *Track) bool {
	return t.info.Kind == KindVideo && t.info.Source == SourceCamera
}

// infoLocked is the lesson's description with its live state. The caller
// holds r.mu.
func (r *Room) infoLocked() LessonInfo {
	info := r.info
	info.Recording = r.recording
	info.ChatEnabled = !r.chatDisabled
	return info
}

func (r *Room) emitLessonUpdatedLocked() {
	info := r.infoLocked()
	r.emit(Event{Type: EventLessonUpdated, Lesson: &info})
}

// SetRecording records whether the recorder records the lesson now and
// announces a change. It is a no-op once the lesson has ended.
func (r *Room) SetRecording(recording bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended || r.recording == recording {
		return
	}
	r.recording = recording
	r.emitLessonUpdatedLocked()
}

// SetChatEnabled is the teacher's chat switch; a change is announced.
func (r *Room) SetChatEnabled(enabled bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return ErrRoomEnded
	}
	if r.chatDisabled == !enabled {
		return nil
	}
	r.chatDisabled = !enabled
	r.emitLessonUpdatedLocked()
	return nil
}

// SetCameraOff turns a participant's camera off (or on again): while off,
// none of its camera tracks is forwarded, now or published later. Turning
// it on forwards them again (from a keyframe, see Track.SetMuted).
func (r *Room) SetCameraOff(participantID string, off bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return ErrRoomEnded
	}
	p, ok := r.participants[participantID]
	if !ok {
		return fmt.Errorf("set camera: %w: %s", ErrNoSuchParticipant, participantID)
	}
	r.turnCameraLocked(p, off)
	return nil
}

// ApplyRelayedState takes a participant's control state as another node
// of a cascade announced it (the node where the participant is connected,
// or the origin for its teacher's mutes): microphone muted and by whom,
// camera off. It changes and announces only what differs, and asks no
// one to mute: the node that made the change did.
func (r *Room) ApplyRelayedState(state ParticipantInfo) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return ErrRoomEnded
	}
	p, ok := r.participants[state.ID]
	if !ok {
		return fmt.Errorf("relayed state: %w: %s", ErrNoSuchParticipant, state.ID)
	}
	by := state.MicMutedBy
	switch {
	case !state.MicMuted:
		by = MutedByTeacher // an unmute lifts either kind
	case by != MutedByTeacher:
		by = MutedBySelf
	}
	r.setMicMutedLocked(p, state.MicMuted, by, "")
	r.turnCameraLocked(p, state.CameraOff)
	return nil
}

// turnCameraLocked turns a participant's camera off or on. The caller holds
// r.mu.
func (r *Room) turnCameraLocked(p *ParticipantInfo, off bool) {
	if off {
		if r.cameraOff == nil {
			r.cameraOff = make(map[string]bool)
		}
		r.cameraOff[p.ID] = true
	} else {
		delete(r.cameraOff, p.ID)
	}
	for _, tid := range r.sortedTrackIDsLocked() {
		t := r.tracks[tid]
		if t.info.ParticipantID != p.ID || !isCamera(t) {
			continue
		}
		if t.Muted() == off {
			continue
		}
		t.SetMuted(off)
		info := t.Info()
		r.emit(Event{Type: EventTrackUpdated, Track: &info})
	}
	// Turned on with no camera published, it is not off any more either:
	// the camera it publishes next is shown.
	r.setCameraOffLocked(p, off)
}

// setCameraOffLocked sets the participant's state and announces a change.
// The caller holds r.mu.
func (r *Room) setCameraOffLocked(p *ParticipantInfo, off bool) {
	if p.CameraOff == off {
		return
	}
	p.CameraOff = off
	cp := *p
	r.emit(Event{Type: EventParticipantUpdated, Participant: &cp})
}

// applyCameraOffLocked marks a joining participant whose camera was turned
// off earlier (the same identity reconnecting). The caller holds r.mu.
func (r *Room) applyCameraOffLocked(p *ParticipantInfo) {
	if r.cameraOff[p.ID] {
		p.CameraOff = true
	}
}

// applyCameraMuteLocked mutes a newly published camera of a participant
// that turned its camera off, before it is announced. The caller holds r.mu.
func (r *Room) applyCameraMuteLocked(t *Track) {
	if isCamera(t) && r.cameraOff[t.info.ParticipantID] {
		t.SetMuted(true)
	}
}

// cameraPublishedLocked: a camera published after the participant's camera
// had stopped is on again (unless turned off). The caller holds r.mu.
func (r *Room) cameraPublishedLocked(t *Track) {
	p, ok := r.participants[t.info.ParticipantID]
	if !ok || !isCamera(t) || r.cameraOff[p.ID] {
		return
	}
	r.setCameraOffLocked(p, false)
}

// cameraUnpublishedLocked: a participant that stays in the lesson and has
// no camera left has its camera off (stopped). The caller holds r.mu.
func (r *Room) cameraUnpublishedLocked(t *Track) {
	p, ok := r.participants[t.info.ParticipantID]
	if !ok || !isCamera(t) {
		return
	}
	for _, other := range r.tracks {
		if other.info.ParticipantID == p.ID && isCamera(other) {
			return
		}
	}
	r.setCameraOffLocked(p, true)
}
