// Package recorder records every lesson for replay. It subscribes in-process
// to a lesson's published tracks (as an sfu.Sink), turns RTP into
// fragmented-MP4 segments per track without decoding, spools each closed
// segment to a bounded local directory and uploads it to storage while the
// lesson runs, keeping a manifest (manifest.go) beside the segments.
//
// It knows rooms, tracks and storage keys; it knows nothing of WebRTC
// peers, signaling, HTTP or which storage backend is behind storage.Store.
package recorder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"podium/sfu"
	"podium/storage"
)

// Config configures a Recorder.
type Config struct {
	Store storage.Store
	// SpoolDir holds closed segments until storage has them.
	SpoolDir string
	// SpoolMaxBytes bounds the spool; 0 means no limit.
	SpoolMaxBytes int64
	// SegmentDuration is the target segment length; video segments are
	// cut on the first keyframe after it.
	SegmentDuration time.Duration
	Log             *slog.Logger
	// Registerer receives the recorder's metrics; nil for none.
	Registerer prometheus.Registerer
	// SkipAuto, when set, names lessons never recorded automatically: a
	// cluster edge's mirror of a lesson another node records.
	SkipAuto func(lessonID string) bool

	// Node names this recorder in the manifests it owns (Manifest.Node);
	// it must differ between nodes sharing a storage. Empty: "local".
	Node string
	// ResumeGrace is how long a recording found interrupted at start (this
	// node was killed or stopped mid-lesson) waits for its lesson to come
	// back before it is closed at its last recorded media and handed to
	// transcode: a lesson nobody rejoins is over. 0: one minute (the
	// lesson's own empty grace); negative: closed at once.
	ResumeGrace time.Duration
	// TakeoverAfter is how old the heartbeat of another node's unfinished
	// recording must be before this node closes it (that node died and
	// did not come back). 0: ten minutes.
	TakeoverAfter time.Duration
	// HeartbeatInterval is how often the manifest of a lesson this node
	// holds is rewritten even when no segment closes. 0: 30 s.
	HeartbeatInterval time.Duration
	// OpenLessons lists the lessons whose recording may be unfinished (the
	// catalog's lessons still recording or interrupted); the recorder
	// looks at their manifests at start and every minute for recordings
	// left by a node that is gone. Nil: only this node's spool is looked at.
	OpenLessons func(ctx context.Context) ([]string, error)
}

// ErrNoSuchLesson is returned for a lesson that is neither live nor recorded.
var ErrNoSuchLesson = errors.New("no such lesson")

// Recorder records lessons.
type Recorder struct {
	cfg     Config
	log     *slog.Logger
	store   storage.Store
	spool   *spool
	up      *uploader
	metrics *metrics

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// draining: this node is shutting down, so a lesson ending now
	// (everyone told to leave, its empty grace running out) is only
	// interrupted.
	draining atomic.Bool

	mu      sync.Mutex
	lessons map[string]*lesson
	rooms   *sfu.Rooms
	closed  bool
}

// New opens the spool, queues whatever an earlier run left in it for
// upload, and starts uploading.
func New(cfg Config) (*Recorder, error) {
	if cfg.Store == nil {
		return nil, errors.New("recorder: no store")
	}
	if cfg.SegmentDuration <= 0 {
		cfg.SegmentDuration = 4 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Node == "" {
		cfg.Node = "local"
	}
	if cfg.ResumeGrace == 0 {
		cfg.ResumeGrace = time.Minute
	}
	if cfg.TakeoverAfter <= 0 {
		cfg.TakeoverAfter = 10 * time.Minute
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 30 * time.Second
	}
	sp, err := openSpool(cfg.SpoolDir, cfg.SpoolMaxBytes)
	if err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Recorder{
		cfg: cfg, log: cfg.Log, store: cfg.Store, spool: sp,
		ctx: ctx, cancel: cancel, lessons: make(map[string]*lesson),
	}
	r.up = newUploader(r)
	r.metrics = newMetrics(r, cfg.Registerer)
	r.recoverSpool()
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		r.up.run(ctx)
	}()
	go func() {
		defer r.wg.Done()
		r.watch(ctx)
	}()
	return r, nil
}

// recoverSpool re-queues what a previous run (maybe killed) left spooled.
func (r *Recorder) recoverSpool() {
	for _, id := range r.spool.lessons() {
		if !sfu.ValidRoomID(id) {
			continue
		}
		m := Manifest{Version: ManifestVersion, Lesson: id}
		if data, err := r.spool.read(r.spool.stateKey(id)); err == nil {
			if err := json.Unmarshal(data, &m); err != nil {
				r.log.Error("recorder: spooled state unreadable", "lesson", id, "err", err)
			}
		}
		m.Lesson = id
		l := newLesson(r, m)
		files := r.spool.files(id)
		for _, k := range files {
			l.pending[k] = true
		}
		// A segment closed but not yet in the state file is uploaded and
		// left out of the manifest; one in the state file whose file is
		// gone was uploaded already.
		r.lessons[id] = l
		for _, k := range files {
			r.up.push(uploadJob{lesson: l, key: k})
		}
		l.mu.Lock()
		// A lesson that had ended is complete once uploaded; one that was
		// still running waits for its participants to come back.
		l.ended = !m.EndedAt.IsZero()
		l.queueManifestLocked()
		l.mu.Unlock()
		if l.ended {
			r.log.Info("recorder: uploading what an earlier run left spooled", "lesson", id, "objects", len(files))
		} else {
			r.log.Warn("recorder: found a recording this node left interrupted; uploading what is spooled and closing it unless the lesson resumes",
				"lesson", id, "objects", len(files), "resume_grace", r.cfg.ResumeGrace)
			r.holdInterrupted(l)
		}
	}
}

// Attach records every lesson created in rooms from now on (when auto is
// set) and lets the API start and stop recordings by lesson id.
func (r *Recorder) Attach(rooms *sfu.Rooms, auto bool) {
	r.mu.Lock()
	r.rooms = rooms
	r.mu.Unlock()
	if auto {
		rooms.OnRoomCreated(func(room *sfu.Room) {
			if r.cfg.SkipAuto != nil && r.cfg.SkipAuto(room.ID()) {
				r.log.Info("recorder: not recording a mirrored lesson; its origin node records it", "lesson", room.ID())
				return
			}
			if err := r.Start(room); err != nil {
				r.log.Error("recorder: start", "lesson", room.ID(), "err", err)
			}
		})
	}
}

// StartLesson starts recording a live lesson by id.
func (r *Recorder) StartLesson(id string) error {
	r.mu.Lock()
	rooms := r.rooms
	r.mu.Unlock()
	if rooms == nil {
		return ErrNoSuchLesson
	}
	room, ok := rooms.Room(id)
	if !ok {
		return fmt.Errorf("%w: %s is not live", ErrNoSuchLesson, id)
	}
	return r.Start(room)
}

// Start records a room. Recording a lesson recorded before (the lesson was
// restarted, or this server was) continues its manifest and segment
// numbering. Starting a lesson already being recorded is a no-op.
func (r *Recorder) Start(room *sfu.Room) error {
	id := room.ID()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errors.New("recorder closed")
	}
	l := r.lessons[id]
	r.mu.Unlock()
	if l == nil {
		m := r.loadManifest(id)
		if m.Lesson == "" {
			info := room.Info()
			m = Manifest{Version: ManifestVersion, Lesson: id, Title: info.Title, StartedAt: time.Now(), Tracks: []ManifestTrack{}, Events: []ManifestEvent{}}
		}
		r.mu.Lock()
		if l = r.lessons[id]; l == nil {
			l = newLesson(r, m)
			r.lessons[id] = l
		}
		r.mu.Unlock()
	}
	l.mu.Lock()
	if l.recording {
		l.mu.Unlock()
		return nil
	}
	if l.resumeTimer != nil { // an interrupted recording is resumed
		l.resumeTimer.Stop()
		l.resumeTimer = nil
	}
	l.resumeDue = true
	l.recording, l.ended, l.complete = true, false, false
	l.man.Complete, l.man.EndedAt = false, time.Time{}
	l.room = room
	l.mu.Unlock()
	// A finished recording may have been forgotten in between (its final
	// manifest landed); a recording lesson is always in the map.
	r.mu.Lock()
	if r.lessons[id] == nil {
		r.lessons[id] = l
	}
	r.mu.Unlock()
	// Listen first, then look: a track published in between is seen twice
	// and subscribed once.
	cancel := room.OnEvent(l.onEvent)
	l.mu.Lock()
	l.cancelEvents = cancel
	l.saveStateLocked()
	l.mu.Unlock()
	for _, t := range room.Tracks() {
		l.subscribe(t)
	}
	// Every page of the lesson shows that it is being recorded.
	room.SetRecording(true)
	r.log.Info("recording started", "lesson", id)
	return nil
}

// loadManifest finds an earlier recording of the lesson in storage.
func (r *Recorder) loadManifest(id string) Manifest {
	m, _ := r.loadStoredManifest(id)
	return m
}

// loadStoredManifest reads a lesson's manifest and when it was written; a
// zero Manifest when there is none (or it is unreadable).
func (r *Recorder) loadStoredManifest(id string) (Manifest, time.Time) {
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
	defer cancel()
	rc, info, err := r.store.Get(ctx, storage.ManifestKey(id))
	if err != nil {
		return Manifest{}, time.Time{}
	}
	defer rc.Close()
	var m Manifest
	data, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	if err != nil || json.Unmarshal(data, &m) != nil || m.Lesson != id {
		return Manifest{}, time.Time{}
	}
	return m, info.LastModified
}

// Stop stops recording a lesson: open segments are closed and spooled, and
// the manifest is marked complete once every segment is in storage. It
// returns when the segments are spooled, not uploaded.
func (r *Recorder) Stop(id string) error {
	r.mu.Lock()
	l := r.lessons[id]
	r.mu.Unlock()
	if l == nil {
		return fmt.Errorf("%w: %s", ErrNoSuchLesson, id)
	}
	r.stop(l)
	return nil
}

// stopAsync stops recording a lesson on its event goroutine's behalf:
// ended says the lesson is over (the recording completes), otherwise it is
// only interrupted (this node shuts down; the lesson goes on elsewhere or
// after the restart).
func (r *Recorder) stopAsync(l *lesson, ended bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return // Close stops every lesson itself
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if ended {
			r.stop(l)
		} else {
			r.interrupt(l)
		}
	}()
}

// stop ends a lesson's recording: it completes once uploaded.
func (r *Recorder) stop(l *lesson) { r.halt(l, true) }

// interrupt stops recording a lesson that has not ended (this node shuts
// down): its open segments are spooled and its manifest stays
// "interrupted", never complete, so no transcode starts; the next start
// resumes or closes it.
func (r *Recorder) interrupt(l *lesson) { r.halt(l, false) }

func (r *Recorder) halt(l *lesson, end bool) {
	l.mu.Lock()
	if l.cancelEvents != nil {
		l.cancelEvents()
		l.cancelEvents = nil
	}
	sessions := l.sessions
	l.sessions = make(map[string]*session)
	tracks := l.tracks
	l.tracks = make(map[string]*recTrack)
	l.ended = end
	l.mu.Unlock()
	for _, s := range sessions {
		s.track.RemoveSink(sinkID)
	}
	for _, rt := range tracks {
		done := make(chan struct{})
		rt.control(ctlMsg{stop: done})
		select {
		case <-done:
		case <-r.ctx.Done():
		}
	}
	l.mu.Lock()
	wasRecording := l.recording
	room := l.room
	l.recording = false
	l.room = nil
	if end && l.resumeDue { // resumed, but nothing came back to record
		l.cutDowntimeLocked(time.Now())
	}
	if end && (l.man.EndedAt.IsZero() || wasRecording) {
		l.man.EndedAt = l.clock(time.Now())
	}
	l.saveStateLocked()
	l.mu.Unlock()
	if wasRecording && room != nil {
		room.SetRecording(false) // a no-op once the lesson has ended
	}
	switch {
	case wasRecording && end:
		r.log.Info("recording stopped", "lesson", l.id)
	case wasRecording:
		r.log.Info("recording interrupted: the lesson has not ended; it resumes or is closed at the next start", "lesson", l.id)
	}
}

// Status returns the recording state of a lesson.
func (r *Recorder) Status(id string) (Status, error) {
	r.mu.Lock()
	l := r.lessons[id]
	r.mu.Unlock()
	if l == nil {
		m := r.loadManifest(id)
		if m.Lesson == "" {
			return Status{}, fmt.Errorf("%w: %s", ErrNoSuchLesson, id)
		}
		st := Status{Lesson: id, State: StateInterrupted, BytesSpooled: r.spool.size(), Manifest: storage.ManifestKey(id)}
		if m.Complete {
			st.State = StateComplete
		}
		for _, t := range m.Tracks {
			st.Tracks = append(st.Tracks, TrackStatus{ID: t.ID, Kind: t.Kind, Source: t.Source, Codec: t.Codec, Segments: len(t.Segments), Gaps: len(t.Gaps)})
		}
		return st, nil
	}
	return l.status(), nil
}

// Lessons returns the status of every lesson this process knows about.
func (r *Recorder) Lessons() []Status {
	r.mu.Lock()
	ls := make([]*lesson, 0, len(r.lessons))
	for _, l := range r.lessons {
		ls = append(ls, l)
	}
	r.mu.Unlock()
	out := make([]Status, 0, len(ls))
	for _, l := range ls {
		out = append(out, l.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Lesson < out[j].Lesson })
	return out
}

// countState counts the lessons this process holds in a Status state.
func (r *Recorder) countState(state string) int {
	n := 0
	for _, s := range r.Lessons() {
		if s.State == state {
			n++
		}
	}
	return n
}

// Flushed returns a channel closed when nothing waits for upload.
func (r *Recorder) Flushed() <-chan struct{} { return r.up.drained() }

func (r *Recorder) uploadFailed(j uploadJob, err error) {
	r.metrics.uploadErrors.Inc()
	j.lesson.mu.Lock()
	j.lesson.uploadErrors++
	j.lesson.lastError = err.Error()
	n := j.lesson.uploadErrors
	j.lesson.mu.Unlock()
	if n == 1 || n%20 == 0 {
		r.log.Warn("recorder: upload failed, segments stay spooled and will be retried", "lesson", j.lesson.id, "key", j.key, "errors", n, "err", err)
	}
}

// Drain tells the recorder that this node is shutting down: from now on a
// lesson that ends here (its participants told to leave, its room closed)
// is interrupted, not complete; it resumes or is closed at the next start.
func (r *Recorder) Drain() { r.draining.Store(true) }

// Close interrupts every recording (open segments are spooled; a lesson
// still running is not complete, so nothing is transcoded), then waits
// until ctx is done for uploads to finish; what is left stays spooled for
// the next start, and is logged lesson by lesson.
func (r *Recorder) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	ls := make([]*lesson, 0, len(r.lessons))
	for _, l := range r.lessons {
		ls = append(ls, l)
	}
	r.mu.Unlock()
	for _, l := range ls {
		l.mu.Lock()
		rec := l.recording
		if l.resumeTimer != nil {
			l.resumeTimer.Stop()
		}
		l.mu.Unlock()
		if rec {
			r.interrupt(l)
		}
	}
	var err error
	select {
	case <-r.up.drained():
	case <-ctx.Done():
		err = fmt.Errorf("recorder: %d uploads left spooled: %w", r.up.pending(), ctx.Err())
		for _, l := range ls {
			if st := l.status(); st.SegmentsPending > 0 {
				r.log.Warn("recorder: recording left in the spool for the next start (storage unreachable)",
					"lesson", st.Lesson, "objects", st.SegmentsPending, "state", st.State, "last_error", st.LastError)
			}
		}
	}
	r.cancel()
	r.wg.Wait()
	return err
}
