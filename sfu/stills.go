package sfu

import (
	"fmt"
	"time"
)

// Audio and stills. A classroom whose link cannot carry even the lowest
// video layer with the lesson's audio (below ~200 kbit/s: a satellite
// school at a bad hour, a village on one shared 3G cell) would otherwise
// lose everything: the allocator always forwards the lowest layer, the link
// overflows, and audio goes with the video. Instead the classroom keeps
// the voice and a still picture: its most important picture (the teacher's
// slides when shared, else the teacher's camera) is forwarded as keyframes
// only, a new one asked for every stillsEvery, and every other picture is
// stopped. Each still decodes on its own, so a lost delta frame never
// breaks the picture. The classroom is told (ParticipantInfo.Stills) so its
// big screen can say why the picture moves only every few seconds, and it
// climbs back to video once its estimate has carried the lowest layers
// with margin for stillsHold.

// forwardMode is what a video down-track forwards, set by its
// subscriber's allocator.
type forwardMode int32

const (
	forwardAll    forwardMode = iota // every frame of the chosen layer
	forwardStills                    // keyframes only
	forwardNone                      // nothing
)

const (
	// stillsEvery is how often a classroom on stills gets a new picture.
	stillsEvery = 3 * time.Second
	// stillsEnter is how long the estimate must stay short of the lowest
	// layers before video stops: GCC's estimate dips for a moment on any
	// burst of loss, and each switch costs a keyframe.
	stillsEnter = 2 * time.Second
	// stillsHold is how long the estimate must carry the lowest layers
	// again, with upgradeHeadroom, before video comes back.
	stillsHold = 10 * time.Second
)

// stillsState is a subscriber's audio-and-stills decision, owned by its
// allocator.
type stillsState struct {
	on    bool
	since time.Time // when the estimate last crossed the line it must stay beyond; zero: not crossed
}

// decide updates the decision from the budget left after audio and the
// rate the lowest layer of the most important picture needs, and reports
// whether the subscriber is on stills now. Only that picture counts: a
// classroom that can carry the teacher's slides but not also the camera
// and a stage classroom keeps the slides moving (the allocator's lowest
// layers of the rest are what it cannot carry), where counting every
// picture sent a 2 Mbit/s classroom to stills as soon as the teacher
// shared a screen.
func (st *stillsState) decide(now time.Time, budget float64, items []allocItem) bool {
	need := 0.0
	if top := mostImportant(items); top >= 0 {
		r := effectiveRates(items[top].rates)
		need = r[lowestAvailable(r)]
	}
	if need == 0 {
		st.on, st.since = false, time.Time{}
		return false
	}
	var beyond bool // on the far side of the line for the other state
	if st.on {
		beyond = budget >= need*upgradeHeadroom
	} else {
		beyond = budget < need*keepMargin
	}
	switch {
	case !beyond:
		st.since = time.Time{}
	case st.since.IsZero():
		st.since = now
	case !st.on && now.Sub(st.since) >= stillsEnter, st.on && now.Sub(st.since) >= stillsHold:
		st.on, st.since = !st.on, time.Time{}
	}
	return st.on
}

// forwardModes returns each item's forward mode: everything off stills;
// on stills the most important picture as stills, every other one
// stopped.
func forwardModes(items []allocItem, stills bool) []forwardMode {
	out := make([]forwardMode, len(items))
	if !stills {
		return out // forwardAll
	}
	for i := range out {
		out[i] = forwardNone
	}
	if top := mostImportant(items); top >= 0 {
		out[top] = forwardStills
	}
	return out
}

// mostImportant is the index of the highest-priority item (the first of
// equals), -1 for none.
func mostImportant(items []allocItem) int {
	top := -1
	for i, it := range items {
		if top < 0 || it.priority > items[top].priority {
			top = i
		}
	}
	return top
}

// setMode sets what the down-track forwards. Leaving stills or none it
// starts again from a keyframe: the frames in between were never sent.
func (d *DownTrack) setMode(m forwardMode) {
	if d.kind != KindVideo {
		return
	}
	d.mu.Lock()
	old := forwardMode(d.mode.Swap(int32(m)))
	if old == m {
		d.mu.Unlock()
		return
	}
	d.stillOpen, d.stillAt = false, time.Time{}
	d.askedAt = time.Time{} // a still (or the keyframe to resume from) at once
	if m == forwardAll {
		d.current = -1
		d.currentLayer.Store(-1)
	}
	d.mu.Unlock()
	if m != forwardNone {
		d.requestKeyframe()
	}
}

// stillsFilterLocked decides, in stills mode, whether a packet is part of a
// keyframe to forward. A keyframe starts a run of its own (its delta frames
// are never sent, so the output's numbering simply goes on); every other
// frame is dropped, and so are keyframes that come sooner than about
// stillsEvery after the last still (a camera that sends one every second
// would otherwise triple the cost). A new keyframe is asked for every
// stillsEvery. Only the allocator's layer (the lowest) gives stills: a
// classroom that was on 720p when its line failed must not get 720p
// keyframes of 50 kB on a line of 100 kbit/s while it waits for the
// switch. It returns whether to forward the packet and a layer to ask a
// keyframe of (or -1).
func (d *DownTrack) stillsFilterLocked(layer int, ts uint32, payload []byte, now time.Time) (forward bool, ask int) {
	if d.stillOpen && ts == d.stillTS {
		return true, -1
	}
	soon := !d.stillAt.IsZero() && now.Sub(d.stillAt) < stillsEvery*4/5
	if soon || layer != d.target || len(payload) == 0 || !isKeyframe(d.family, payload) {
		d.stillOpen = false
		if now.Sub(d.askedAt) >= stillsEvery {
			d.askedAt = now
			return false, d.target
		}
		return false, -1
	}
	d.stillTS, d.stillOpen, d.stillAt = ts, true, now
	d.resync = true
	return true, -1
}

// SetStills records that a participant receives audio and stills (or video
// again) and announces it.
func (r *Room) SetStills(participantID string, on bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return ErrRoomEnded
	}
	p, ok := r.participants[participantID]
	if !ok {
		return fmt.Errorf("set stills: %w: %s", ErrNoSuchParticipant, participantID)
	}
	if p.Stills == on {
		return nil
	}
	p.Stills = on
	cp := *p
	r.emit(Event{Type: EventParticipantUpdated, Participant: &cp})
	return nil
}
