// Package signaling is how clients reach Podium's media core: the websocket
// protocol of docs/PROTOCOL.md (join, publish, subscribe, lesson control and
// room events), the admin REST API for lessons and tokens, and the WHIP and
// WHEP endpoints. Tokens are checked with package signaling/auth.
//
// It owns client sessions and their lifetimes, and nothing of the media
// plane: every WebRTC decision is the sfu's (package sfu), reached only
// through sfu.Participant and sfu.Room. It knows nothing of storage,
// recording or VOD.
package signaling

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"podium/internal/audit"
	"podium/internal/httpx"
	"podium/sfu"
	"podium/signaling/auth"
)

// Config builds a Server.
type Config struct {
	SFU    *sfu.SFU
	Issuer *auth.Issuer
	Log    *slog.Logger
	// Registerer receives the signaling metrics (nil: not registered).
	Registerer prometheus.Registerer
	// QualityInterval is how often `quality` is sent (default 2 s).
	QualityInterval time.Duration
	// PingInterval is the websocket keepalive period (default 20 s); a
	// client silent for three periods is dropped.
	PingInterval time.Duration
	// ReconnectAfter is what `shutdown` tells clients to wait (default 2 s).
	ReconnectAfter time.Duration
	// MaxSessions caps the concurrent sessions (websocket and WHIP/WHEP)
	// one token may hold, per role (DefaultMaxSessions when nil).
	MaxSessions map[sfu.Role]int
	// Revocations stores and applies token revocations (nil: the revoke
	// API answers 503).
	Revocations *auth.Revocations
	// Audit hears token issues and revocations (nil: not recorded).
	Audit audit.Recorder
}

// DefaultMaxSessions lets a classroom or viewer open a few sessions (a
// reload, a second screen), a teacher a few more (console, WHIP encoder),
// and nobody thousands.
func DefaultMaxSessions() map[sfu.Role]int {
	return map[sfu.Role]int{sfu.RoleTeacher: 6, sfu.RoleClassroom: 4, sfu.RoleViewer: 4, sfu.RoleAdmin: 16}
}

// Server serves signaling, the admin API and WHIP/WHEP for one node.
type Server struct {
	cfg     Config
	sfu     *sfu.SFU
	issuer  *auth.Issuer
	log     *slog.Logger
	metrics *metrics
	up      websocket.Upgrader

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // one per websocket handler and per WHIP/WHEP watcher

	mu        sync.Mutex
	draining  bool
	conns     map[*session]struct{}
	joined    map[string]map[string]*session // room -> participant id -> session
	resources map[string]*httpSession        // WHIP/WHEP resource id -> session
	perToken  map[string]int                 // token id -> open sessions

	boards boardSet // per-lesson dashboards (quality.go)
}

// New builds a signaling server.
func New(cfg Config) (*Server, error) {
	if cfg.SFU == nil || cfg.Issuer == nil {
		return nil, errors.New("signaling: SFU and Issuer are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.QualityInterval <= 0 {
		cfg.QualityInterval = 2 * time.Second
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 20 * time.Second
	}
	if cfg.ReconnectAfter <= 0 {
		cfg.ReconnectAfter = 2 * time.Second
	}
	if cfg.MaxSessions == nil {
		cfg.MaxSessions = DefaultMaxSessions()
	}
	if cfg.Audit == nil {
		cfg.Audit = audit.Discard{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg: cfg, sfu: cfg.SFU, issuer: cfg.Issuer, log: cfg.Log.With("part", "signaling"),
		metrics: newMetrics(cfg.Registerer),
		up: websocket.Upgrader{
			ReadBufferSize: 4096, WriteBufferSize: 4096,
			// Tokens, not cookies, authorize the socket, so a foreign page
			// gains nothing from opening it.
			CheckOrigin: func(*http.Request) bool { return true },
		},
		ctx: ctx, cancel: cancel,
		conns:     map[*session]struct{}{},
		joined:    map[string]map[string]*session{},
		resources: map[string]*httpSession{},
		perToken:  map[string]int{},
	}
	return s, nil
}

// Mount adds every signaling route to rt, each with its scope.
func (s *Server) Mount(rt *auth.Router) {
	// The token names its lesson; the page's websocket cannot send a header.
	rt.HandleFunc("GET /ws", auth.AnyToken(sfu.RoleTeacher, sfu.RoleClassroom, sfu.RoleViewer).WithQueryToken(), s.serveWS)
	s.mountAdmin(rt)
	s.mountWHIP(rt)
}

// Draining reports whether Shutdown has begun.
func (s *Server) Draining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// Shutdown tells every websocket client `shutdown`, closes every participant
// and WHIP/WHEP session, and waits for their goroutines, or for ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	conns := make([]*session, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	res := make([]*httpSession, 0, len(s.resources))
	for _, r := range s.resources {
		res = append(res, r)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.sendFinal(encode("shutdown", "", ShutdownData{Reason: "server is shutting down",
			ReconnectAfterMs: int(s.cfg.ReconnectAfter / time.Millisecond)}), websocket.CloseGoingAway, "server shutting down")
	}
	for _, r := range res {
		s.endResource(r, "server shutting down")
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.cancel() // force every remaining session down
		<-done
		return fmt.Errorf("signaling drain: %w", ctx.Err())
	}
	s.cancel()
	return nil
}

// participantID turns a token identity into a participant id that is safe
// in SDP msid lines and URLs: the identity itself when it is plain, a hash
// of it otherwise. The same identity always gets the same id, which is what
// lets a reconnecting client replace its old session.
func participantID(identity string) string {
	if sfu.ValidRoomID(identity) && len(identity) <= 48 {
		return identity
	}
	h := sha256.Sum256([]byte(identity))
	return "p-" + hex.EncodeToString(h[:8])
}

// claimSlot registers sess as the one session of its identity in its room
// and returns the session it replaces, if any.
func (s *Server) claimSlot(room, pid string, sess *session) (old *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.joined[room]
	if m == nil {
		m = map[string]*session{}
		s.joined[room] = m
	}
	old = m[pid]
	m[pid] = sess
	return old
}

func (s *Server) releaseSlot(room, pid string, sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.joined[room]; m != nil && m[pid] == sess {
		delete(m, pid)
		if len(m) == 0 {
			delete(s.joined, room)
		}
	}
}

// roomParticipants returns every live sfu participant of a room that this
// server manages (websocket sessions and WHIP/WHEP sessions).
func (s *Server) roomParticipants(room string) []*sfu.Participant {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*sfu.Participant
	for _, sess := range s.joined[room] {
		if p := sess.participant(); p != nil {
			out = append(out, p)
		}
	}
	for _, r := range s.resources {
		if r.room == room {
			out = append(out, r.p)
		}
	}
	return out
}

// errorFor maps an sfu error to a protocol error code.
func errorFor(err error) *protocolError {
	var pe *protocolError
	switch {
	case errors.As(err, &pe):
		return pe
	case errors.Is(err, sfu.ErrBadSDP):
		return perr(CodeBadSDP, "%v", err)
	case errors.Is(err, webrtc.ErrUnsupportedCodec):
		return perr(CodeCodecMismatch, "the offer has no codec this lesson carries: %v", err)
	case errors.Is(err, sfu.ErrNotAllowed), errors.Is(err, sfu.ErrNotStageCandidate):
		return perr(CodeForbidden, "%v", err)
	case errors.Is(err, sfu.ErrRoomEnded):
		return perr(CodeLessonEnded, "%v", err)
	case errors.Is(err, sfu.ErrNoSuchTrack), errors.Is(err, sfu.ErrNoSuchParticipant):
		return perr(CodeNotFound, "%v", err)
	case errors.Is(err, sfu.ErrDuplicateTrack):
		return perr(CodeBadRequest, "%v", err)
	case errors.Is(err, sfu.ErrClosed):
		return perr(CodeNotJoined, "%v", err)
	default:
		return perr(CodeInternal, "%v", err)
	}
}

// httpStatusFor maps a protocol error code to an HTTP status.
func httpStatusFor(code string) int {
	switch code {
	case CodeBadSDP, CodeBadRequest, CodeBadJSON:
		return http.StatusBadRequest
	case CodeCodecMismatch:
		return http.StatusUnprocessableEntity
	case CodeForbidden:
		return http.StatusForbidden
	case CodeNotFound, CodeLessonEnded:
		return http.StatusNotFound
	default:
		return http.StatusInternalServerError
	}
}

func writeProtocolError(w http.ResponseWriter, err error) {
	pe := errorFor(err)
	httpx.WriteError(w, httpStatusFor(pe.code), pe.code, pe.msg)
}

// admitSession counts one more session of the token, or refuses it (429)
// when the token holds its role's cap already. The returned release must
// be called once when the session ends.
func (s *Server) admitSession(w http.ResponseWriter, c *auth.Claims) (release func(), ok bool) {
	limit := s.cfg.MaxSessions[c.Role]
	s.mu.Lock()
	if limit > 0 && s.perToken[c.ID] >= limit {
		s.mu.Unlock()
		s.AuthFailure("too_many_sessions")
		httpx.WriteError(w, http.StatusTooManyRequests, "too_many_sessions",
			fmt.Sprintf("this token already holds %d sessions, the most a %s may; close one or use another token", limit, c.Role))
		return nil, false
	}
	s.perToken[c.ID]++
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			if s.perToken[c.ID]--; s.perToken[c.ID] <= 0 {
				delete(s.perToken, c.ID)
			}
			s.mu.Unlock()
		})
	}, true
}
