package recorder

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"podium/sfu"
	"podium/storage"
)

// lesson is the recording of one lesson: the full manifest (including
// segments still waiting for upload), what is pending, and, while recording,
// the room it listens to and one recTrack per recorded source.
type lesson struct {
	r  *Recorder
	id string

	mu              sync.Mutex
	man             Manifest
	pending         map[string]bool
	manifestQueued  bool
	recording       bool
	ended           bool // stopped: finalize once everything is uploaded
	complete        bool // final manifest is in storage
	room            *sfu.Room
	cancelEvents    func()
	tracks          map[string]*recTrack // by recorded id
	sessions        map[string]*session  // by sfu track id
	uploadErrors    int64
	segmentsDropped int64
	lastError       string
	// shift is how far the recording clock is behind the wall clock: the
	// Cut of every interruption so far (see ManifestInterruption).
	shift time.Duration
	// resumeTimer closes an interrupted recording nobody resumed.
	resumeTimer *time.Timer
	// resumeDue: the recording started again (this node restarted, or the
	// lesson was ended and started again) and no track has been recorded
	// since. The downtime runs until the first one is: a restarted node
	// offers its lessons again within a second, but the teacher's media
	// comes back only when the teacher does.
	resumeDue bool
}

func newLesson(r *Recorder, m Manifest) *lesson {
	l := &lesson{
		r:        r,
		id:       m.Lesson,
		man:      m,
		pending:  make(map[string]bool),
		tracks:   make(map[string]*recTrack),
		sessions: make(map[string]*session),
	}
	for _, in := range m.Interruptions {
		l.shift += in.Cut
	}
	return l
}

// clock puts a wall-clock time on the recording clock.
func (l *lesson) clock(wall time.Time) time.Time { return wall.Add(-l.shift) }

// lastMediaEndLocked is the end of the last media recorded in any track,
// on the recording clock (zero when nothing was recorded).
func (l *lesson) lastMediaEndLocked() time.Time {
	var end time.Time
	for _, t := range l.man.Tracks {
		if n := len(t.Segments); n > 0 {
			if e := t.Segments[n-1].Start.Add(t.Segments[n-1].Duration); e.After(end) {
				end = e
			}
		}
	}
	return end
}

// cutDowntimeLocked starts a new stretch of a recording that stopped
// before: the time since its last media is cut from the recording clock but
// for ResumePause, and marked as an interruption, so the replay does not
// carry the downtime as frozen video. It runs before the stretch's first
// track is recorded (or at the end, when none was).
func (l *lesson) cutDowntimeLocked(now time.Time) {
	l.resumeDue = false
	end := l.lastMediaEndLocked()
	if end.IsZero() {
		return
	}
	gap := l.clock(now).Sub(end)
	if gap <= ResumePause {
		return
	}
	reason := "lesson started again"
	if l.man.EndedAt.IsZero() {
		reason = "recording interrupted"
	}
	cut := gap - ResumePause
	l.man.Interruptions = append(l.man.Interruptions, ManifestInterruption{
		At: end, From: end.Add(l.shift), To: now, Cut: cut, Reason: reason})
	l.shift += cut
	// Events of the downtime (people coming back) happen where the
	// recording resumes.
	for i := range l.man.Events {
		if l.man.Events[i].Time.After(end) {
			l.man.Events[i].Time = end.Add(ResumePause)
		}
	}
	l.r.log.Info("recording resumes after an interruption; the replay skips it", "lesson", l.id,
		"reason", reason, "downtime", gap.Round(time.Millisecond), "cut", cut.Round(time.Millisecond))
}

func (l *lesson) manifestKey() string { return storage.ManifestKey(l.id) }

// saveStateLocked writes the full manifest to the spool (so a restart knows
// every closed segment) and queues a manifest upload.
func (l *lesson) saveStateLocked() {
	data, err := json.Marshal(&l.man)
	if err == nil {
		err = l.r.spool.writeState(l.id, data)
	}
	if err != nil {
		l.lastError = err.Error()
		l.r.log.Error("recorder: save state", "lesson", l.id, "err", err)
	}
	l.queueManifestLocked()
}

func (l *lesson) queueManifestLocked() {
	if l.manifestQueued {
		return
	}
	l.manifestQueued = true
	l.r.up.push(uploadJob{lesson: l, manifest: true})
}

// storageManifest is the manifest as stored: only uploaded segments, and
// complete once the recording stopped and nothing is pending.
func (l *lesson) storageManifest() ([]byte, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.manifestQueued = false
	m := l.man
	m.Tracks = make([]ManifestTrack, 0, len(l.man.Tracks))
	for _, t := range l.man.Tracks {
		if l.pending[t.Init] {
			continue // not playable without its init segment yet
		}
		segs := make([]ManifestSegment, 0, len(t.Segments))
		for _, s := range t.Segments {
			if !l.pending[s.Key] {
				segs = append(segs, s)
			}
		}
		t.Segments = segs
		m.Tracks = append(m.Tracks, t)
	}
	complete := l.ended && !l.recording && len(l.pending) == 0
	m.Complete = complete
	m.Node, m.Heartbeat = l.r.cfg.Node, time.Now()
	switch {
	case complete:
		m.State = StateComplete
	case l.recording || l.ended:
		m.State = StateRecording // ended: the last segments are on their way
	default:
		m.State = StateInterrupted
	}
	if !complete {
		m.EndedAt = time.Time{}
	}
	data, err := json.MarshalIndent(&m, "", "  ")
	if err != nil {
		return nil, false, fmt.Errorf("manifest %s: %w", l.id, err)
	}
	return data, complete, nil
}

func (l *lesson) manifestUploaded(complete bool) {
	l.mu.Lock()
	done := complete && !l.recording && len(l.pending) == 0
	if done {
		l.complete = true
	}
	l.mu.Unlock()
	if done {
		l.r.spool.removeLesson(l.id)
		// Forget it: the stored manifest answers Status from now on, and a
		// lesson restarted later resumes from it.
		l.r.mu.Lock()
		if l.r.lessons[l.id] == l {
			l.mu.Lock()
			if !l.recording {
				delete(l.r.lessons, l.id)
			}
			l.mu.Unlock()
		}
		l.r.mu.Unlock()
		l.r.metrics.lessonsCompleted.Inc()
		l.r.log.Info("recording complete", "lesson", l.id)
	}
}

// spoolObject writes a closed segment or init segment to the spool and
// queues its upload.
func (l *lesson) spoolObject(key string, data []byte) error {
	if err := l.r.spool.put(key, data); err != nil {
		l.mu.Lock()
		l.segmentsDropped++
		l.lastError = err.Error()
		l.mu.Unlock()
		l.r.metrics.segmentsDropped.Inc()
		l.r.log.Error("recorder: segment dropped", "lesson", l.id, "key", key, "err", err)
		return err
	}
	l.mu.Lock()
	l.pending[key] = true
	l.mu.Unlock()
	l.r.up.push(uploadJob{lesson: l, key: key})
	return nil
}

func (l *lesson) uploaded(key string, n int) {
	l.mu.Lock()
	delete(l.pending, key)
	l.queueManifestLocked()
	l.mu.Unlock()
	if n > 0 {
		l.r.metrics.segmentsUploaded.Inc()
		l.r.metrics.bytesUploaded.Add(float64(n))
	}
}

func (l *lesson) trackLocked(id string) *ManifestTrack {
	for i := range l.man.Tracks {
		if l.man.Tracks[i].ID == id {
			return &l.man.Tracks[i]
		}
	}
	return nil
}

func (l *lesson) addEvent(e ManifestEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e.Time = l.clock(e.Time)
	l.man.Events = append(l.man.Events, e)
	l.saveStateLocked()
}

// onEvent turns room events into recording actions and chapter markers. It
// runs on the room's event goroutine and never waits for media work.
func (l *lesson) onEvent(e sfu.Event) {
	name := func(id string) string {
		if l.room == nil {
			return ""
		}
		p, _ := l.room.Participant(id)
		return p.Name
	}
	switch e.Type {
	case sfu.EventTrackPublished:
		if e.Track != nil {
			if t, ok := l.room.Track(e.Track.ID); ok {
				l.subscribe(t)
			}
			if e.Track.Source == sfu.SourceScreen {
				l.addEvent(ManifestEvent{Time: e.Time, Type: "screenStart", ParticipantID: e.Track.ParticipantID, Participant: name(e.Track.ParticipantID)})
			}
		}
	case sfu.EventTrackUnpublished:
		if e.Track != nil {
			l.unsubscribe(e.Track.ID)
			if e.Track.Source == sfu.SourceScreen {
				l.addEvent(ManifestEvent{Time: e.Time, Type: "screenStop", ParticipantID: e.Track.ParticipantID})
			}
		}
	case sfu.EventTrackUpdated:
		if e.Track != nil {
			l.mu.Lock()
			if s := l.sessions[e.Track.ID]; s != nil {
				s.muted.Store(e.Track.Muted)
			}
			l.mu.Unlock()
		}
	case sfu.EventStage:
		l.setStage(e.Stage)
		l.addEvent(ManifestEvent{Time: e.Time, Type: "stage", ParticipantID: e.Stage, Participant: name(e.Stage)})
	case sfu.EventChat:
		if e.Chat != nil {
			l.addEvent(ManifestEvent{Time: e.Time, Type: "chat", ParticipantID: e.Chat.From, Participant: e.Chat.FromName, Text: e.Chat.Text})
		}
	case sfu.EventParticipantJoined, sfu.EventParticipantLeft:
		if e.Participant != nil {
			typ := "join"
			if e.Type == sfu.EventParticipantLeft {
				typ = "leave"
			}
			if e.Type == sfu.EventParticipantJoined && e.Participant.Role == sfu.RoleTeacher {
				l.mu.Lock()
				if l.man.Teacher == "" {
					l.man.Teacher = e.Participant.Name
				}
				l.mu.Unlock()
			}
			l.addEvent(ManifestEvent{Time: e.Time, Type: typ, ParticipantID: e.Participant.ID, Participant: e.Participant.Name})
		}
	case sfu.EventLessonEnded:
		// A node shutting down ends its rooms, but not the lesson: its
		// participants reconnect (here after the restart, or elsewhere).
		l.r.stopAsync(l, e.Reason != sfu.EndReasonShutdown && !l.r.draining.Load())
	}
}

// recordedID names a recorded source so that a publisher reconnecting (a
// new sfu track for the same camera) continues the same recorded track.
func recordedID(role sfu.Role, info sfu.TrackInfo) string {
	src := string(info.Source)
	if src == "" {
		src = string(info.Kind)
	}
	who := info.ParticipantID
	if role == sfu.RoleTeacher {
		who = "teacher"
	}
	return storage.SafeName(who + "-" + src)
}

// subscribe starts recording one published track.
func (l *lesson) subscribe(t *sfu.Track) {
	info := t.Info()
	codec := codecOf(info.Codec.MimeType)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.recording || l.sessions[info.ID] != nil {
		return
	}
	if codec == "" {
		l.lastError = fmt.Sprintf("track %s: codec %s is not recorded", info.ID, info.Codec.MimeType)
		l.r.log.Warn("recorder: unsupported codec", "lesson", l.id, "track", info.ID, "codec", info.Codec.MimeType)
		return
	}
	var role sfu.Role
	var pname string
	if l.room != nil {
		p, _ := l.room.Participant(info.ParticipantID)
		role, pname = p.Role, p.Name
	}
	// Of the classrooms, only the one on stage is part of the lesson
	// everyone sees, so only it is recorded.
	if role == sfu.RoleClassroom && (l.room == nil || l.room.Stage() != info.ParticipantID) {
		return
	}
	if l.resumeDue {
		l.cutDowntimeLocked(time.Now())
	}
	id := recordedID(role, info)
	if mt := l.trackLocked(id); mt != nil && mt.Codec != codec {
		id = storage.SafeName(id + "-" + codec)
	}
	rt := l.tracks[id]
	if rt == nil {
		mt := l.trackLocked(id)
		if mt == nil {
			l.man.Tracks = append(l.man.Tracks, ManifestTrack{
				ID: id, ParticipantID: info.ParticipantID, Participant: pname, Role: string(role),
				Kind: string(info.Kind), Source: string(info.Source), Codec: codec,
				TimeScale: timescaleOf(codec), Segments: []ManifestSegment{},
			})
			mt = &l.man.Tracks[len(l.man.Tracks)-1]
			l.saveStateLocked()
		}
		rt = newRecTrack(l, *mt, int(info.Codec.Channels), l.shift)
		l.tracks[id] = rt
		l.r.wg.Add(1)
		go func() {
			defer l.r.wg.Done()
			rt.run(l.r.ctx)
		}()
	}
	s := newSession(rt, t)
	s.role, s.participant = role, info.ParticipantID
	l.sessions[info.ID] = s
	rt.control(ctlMsg{begin: s})
	t.AddSink(sinkID, s)
}

const sinkID = "recorder"

func (l *lesson) unsubscribe(trackID string) { l.unsubscribeReason(trackID, "publisher left") }

func (l *lesson) unsubscribeReason(trackID, reason string) {
	l.mu.Lock()
	s := l.sessions[trackID]
	delete(l.sessions, trackID)
	l.mu.Unlock()
	if s != nil {
		s.track.RemoveSink(sinkID)
		s.rt.control(ctlMsg{end: s, reason: reason})
	}
}

// setStage records the classroom now on stage and stops recording the one
// that left it.
func (l *lesson) setStage(pid string) {
	l.mu.Lock()
	room := l.room
	var off []string
	for tid, s := range l.sessions {
		if s.role == sfu.RoleClassroom && s.participant != pid {
			off = append(off, tid)
		}
	}
	l.mu.Unlock()
	for _, tid := range off {
		l.unsubscribeReason(tid, "off stage")
	}
	if room != nil && pid != "" {
		for _, t := range room.TracksOf(pid) {
			l.subscribe(t)
		}
	}
}

// addSegment records a closed segment in the manifest after it is spooled.
func (l *lesson) addSegment(trackID string, seg ManifestSegment, gaps []ManifestGap) {
	l.mu.Lock()
	defer l.mu.Unlock()
	mt := l.trackLocked(trackID)
	if mt == nil {
		return
	}
	mt.Segments = append(mt.Segments, seg)
	mt.Gaps = append(mt.Gaps, gaps...)
	l.saveStateLocked()
}

func (l *lesson) setInit(trackID, key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if mt := l.trackLocked(trackID); mt != nil {
		mt.Init = key
		l.saveStateLocked()
	}
}

func (l *lesson) addGaps(trackID string, gaps []ManifestGap) {
	if len(gaps) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if mt := l.trackLocked(trackID); mt != nil {
		mt.Gaps = append(mt.Gaps, gaps...)
		l.saveStateLocked()
	}
}

// Status is what the admin API shows about one lesson's recording.
type Status struct {
	Lesson string `json:"lesson"`
	// State is "recording", "uploading" (stopped, segments still pending),
	// "complete", or "interrupted" (recovered after a restart, not live).
	State           string        `json:"state"`
	Tracks          []TrackStatus `json:"tracks"`
	SegmentsPending int           `json:"segmentsPending"`
	BytesSpooled    int64         `json:"bytesSpooled"` // whole spool, all lessons
	UploadErrors    int64         `json:"uploadErrors"`
	SegmentsDropped int64         `json:"segmentsDropped"`
	LastError       string        `json:"lastError,omitempty"`
	Manifest        string        `json:"manifest"`
}

// TrackStatus describes one recorded track.
type TrackStatus struct {
	ID             string `json:"id"`
	Kind           string `json:"kind"`
	Source         string `json:"source"`
	Codec          string `json:"codec"`
	Segments       int    `json:"segments"`
	Gaps           int    `json:"gaps"`
	Live           bool   `json:"live"`
	PacketsDropped uint64 `json:"packetsDropped"`
}

func (l *lesson) status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := Status{
		Lesson:          l.id,
		SegmentsPending: len(l.pending),
		BytesSpooled:    l.r.spool.size(),
		UploadErrors:    l.uploadErrors,
		SegmentsDropped: l.segmentsDropped,
		LastError:       l.lastError,
		Manifest:        l.manifestKey(),
	}
	switch {
	case l.recording:
		st.State = "recording"
	case l.complete:
		st.State = "complete"
	case l.ended:
		st.State = "uploading"
	default:
		st.State = "interrupted"
	}
	live := map[string]bool{}
	for _, s := range l.sessions {
		live[s.rt.id] = true
	}
	for _, t := range l.man.Tracks {
		ts := TrackStatus{ID: t.ID, Kind: t.Kind, Source: t.Source, Codec: t.Codec, Segments: len(t.Segments), Gaps: len(t.Gaps), Live: live[t.ID]}
		if rt := l.tracks[t.ID]; rt != nil {
			ts.PacketsDropped = rt.dropped.Load()
		}
		st.Tracks = append(st.Tracks, ts)
	}
	sort.Slice(st.Tracks, func(i, j int) bool { return strings.Compare(st.Tracks[i].ID, st.Tracks[j].ID) < 0 })
	return st
}
