package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"podium/sfu"
)

// Errors returned by Manager methods.
var (
	ErrNoSuchSource   = errors.New("no such source")
	ErrTooManySources = errors.New("too many sources")
	ErrClosed         = errors.New("ingest is shutting down")
)

// Config configures the ingest manager.
type Config struct {
	Rooms *sfu.Rooms
	Log   *slog.Logger
	// FFmpegPath is the ffmpeg program used to transcode; default "ffmpeg".
	FFmpegPath string
	// Backoff is the wait between reconnects; default 1 s doubling up to 30 s.
	Backoff Backoff
	// ReadTimeout is how long a silent camera is waited for; default 10 s.
	ReadTimeout time.Duration
	// MaxSources caps the registered sources on this node; default 256.
	MaxSources int
	// Allow is where sources may connect (the registered host, each
	// address it resolves to when dialed, and ffmpeg's input); nil means
	// DefaultAllowCIDRs. Link-local, metadata, unspecified, multicast and
	// broadcast addresses are refused whatever it says.
	Allow *AllowList
}

// Manager owns every registered source of this node.
type Manager struct {
	cfg Config
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	sources map[string]*Source
	closed  bool
	retired retired // counters of removed sources; changed under mu
}

// New makes a manager. Lessons are looked up, or created, in cfg.Rooms.
func New(cfg Config) (*Manager, error) {
	if cfg.Rooms == nil {
		return nil, errors.New("ingest: no room registry")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.FFmpegPath == "" {
		cfg.FFmpegPath = "ffmpeg"
	}
	cfg.Backoff = cfg.Backoff.withDefaults()
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 10 * time.Second
	}
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = 256
	}
	if cfg.Allow == nil {
		a, err := ParseAllowList(DefaultAllowCIDRs)
		if err != nil {
			return nil, fmt.Errorf("ingest: default allow list: %w", err)
		}
		cfg.Allow = a
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{cfg: cfg, log: cfg.Log.With("part", "ingest"), ctx: ctx, cancel: cancel, sources: make(map[string]*Source)}, nil
}

func newSourceID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "src_" + hex.EncodeToString(b[:])
}

// Add registers a source on a lesson and starts pulling it. A lesson that is
// not live yet is created, so operators can set cameras up before the
// teacher arrives; the source stops when the lesson ends.
func (m *Manager) Add(lessonID string, c SourceConfig) (SourceInfo, error) {
	u, err := c.normalize()
	if err != nil {
		return SourceInfo{}, err
	}
	if !sfu.ValidRoomID(lessonID) {
		return SourceInfo{}, fmt.Errorf("%w: invalid lesson id", errInvalid)
	}
	if err := m.cfg.Allow.checkHost(u.Hostname()); err != nil {
		return SourceInfo{}, fmt.Errorf("%w: url host: %v", errInvalid, err)
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return SourceInfo{}, ErrClosed
	}
	if len(m.sources) >= m.cfg.MaxSources {
		m.mu.Unlock()
		return SourceInfo{}, fmt.Errorf("%w: at most %d per node", ErrTooManySources, m.cfg.MaxSources)
	}
	m.mu.Unlock()

	room, _, err := m.cfg.Rooms.GetOrCreateRoom(lessonID)
	if err != nil {
		return SourceInfo{}, fmt.Errorf("%w: %v", errInvalid, err)
	}
	id := newSourceID()
	s := &Source{
		id: id, lesson: lessonID, cfg: c, u: u, scrub: newScrubber(u), room: room, m: m,
		log:   m.log.With("lesson", lessonID, "source", id, "url", redactURL(u)),
		epoch: time.Now(), done: make(chan struct{}),
		state: StateConnecting, since: time.Now(),
	}
	if err := room.AddParticipant(sfu.ParticipantInfo{ID: id, Name: c.Name, Role: sfu.RoleSource}); err != nil {
		return SourceInfo{}, fmt.Errorf("join lesson: %w", err)
	}
	ctx, cancel := context.WithCancelCause(m.ctx)
	s.cancel = cancel

	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		cancel(ErrClosed)
		room.RemoveParticipant(id, "ingest shutting down")
		return SourceInfo{}, ErrClosed
	}
	m.sources[id] = s
	m.mu.Unlock()
	s.log.Info("source added", "kind", c.Kind, "transport", c.Transport)
	go s.run(ctx)
	return s.Info(), nil
}

// List returns a lesson's sources, oldest first.
func (m *Manager) List(lessonID string) []SourceInfo {
	m.mu.Lock()
	var list []*Source
	for _, s := range m.sources {
		if s.lesson == lessonID {
			list = append(list, s)
		}
	}
	m.mu.Unlock()
	out := make([]SourceInfo, 0, len(list))
	for _, s := range list {
		out = append(out, s.Info())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Since.Equal(out[j].Since) {
			return out[i].ID < out[j].ID
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func (m *Manager) source(lessonID, id string) (*Source, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sources[id]
	if !ok || s.lesson != lessonID {
		return nil, false
	}
	return s, true
}

// Get returns one source of a lesson.
func (m *Manager) Get(lessonID, id string) (SourceInfo, bool) {
	s, ok := m.source(lessonID, id)
	if !ok {
		return SourceInfo{}, false
	}
	return s.Info(), true
}

// Track returns a source's published track of the given kind, for tests and
// tools that attach sinks directly.
func (m *Manager) Track(lessonID, id string, kind sfu.Kind) (*sfu.Track, bool) {
	s, ok := m.source(lessonID, id)
	if !ok {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if kind == sfu.KindVideo && s.video != nil {
		return s.video.track, true
	}
	if kind == sfu.KindAudio && s.audio != nil {
		return s.audio.track, true
	}
	return nil, false
}

// Remove stops a source, waits for its RTSP session and ffmpeg to end, and
// takes it (and its tracks) out of the lesson.
func (m *Manager) Remove(lessonID, id string) error {
	s, ok := m.source(lessonID, id)
	if !ok {
		return ErrNoSuchSource
	}
	// Stopped first, so its counters are final when they move to the
	// node's retired totals; both under mu, so a scrape counts them once.
	s.stop("source removed")
	m.mu.Lock()
	if m.sources[id] != s {
		m.mu.Unlock()
		return ErrNoSuchSource // removed meanwhile by another call
	}
	delete(m.sources, id)
	m.retired.add(s.counts())
	m.mu.Unlock()
	s.log.Info("source removed")
	return nil
}

func (s *Source) stop(reason string) {
	s.cancel(errors.New(reason))
	<-s.done
	s.room.RemoveParticipant(s.id, reason)
}

// Close stops every source and waits for them.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	list := make([]*Source, 0, len(m.sources))
	for _, s := range m.sources {
		list = append(list, s)
	}
	m.mu.Unlock()
	m.cancel()
	for _, s := range list {
		s.stop("ingest shutting down")
	}
}

// snapshot returns the registered sources and the counters of removed ones,
// taken together.
func (m *Manager) snapshot() ([]*Source, counts) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Source, 0, len(m.sources))
	for _, s := range m.sources {
		out = append(out, s)
	}
	return out, m.retired.load()
}
