package signaling

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/gorilla/websocket"

	"podium/internal/audit"
	"podium/internal/httpx"
	"podium/sfu"
	"podium/signaling/auth"
)

// LessonView is a live lesson as the admin API shows it.
type LessonView struct {
	sfu.LessonInfo
	Participants []sfu.ParticipantInfo `json:"participants"`
	Tracks       []sfu.TrackInfo       `json:"tracks"`
	Stage        string                `json:"stage"`
}

// TokenRequest is the body of POST /api/tokens.
type TokenRequest struct {
	Room string `json:"room"`
	Role string `json:"role"`
	Name string `json:"name"`
	// TTL is a Go duration ("2h", "90m"); default 2h, at most the role's
	// maximum (--token-max-ttl).
	TTL string `json:"ttl,omitempty"`
	// Lessons, Courses and AllLessons are what a student token replays.
	Lessons    []string `json:"lessons,omitempty"`
	Courses    []string `json:"courses,omitempty"`
	AllLessons bool     `json:"allLessons,omitempty"`
}

// TokenResponse is the reply of POST /api/tokens.
type TokenResponse struct {
	Token     string      `json:"token"`
	ID        string      `json:"id"`
	ExpiresAt time.Time   `json:"expiresAt"`
	Room      string      `json:"room"`
	Role      string      `json:"role"`
	Name      string      `json:"name"`
	Replay    *auth.Grant `json:"replay,omitempty"`
}

func (s *Server) mountAdmin(rt *auth.Router) {
	// Creating and listing take any admin token; the handlers keep a
	// lesson's admin to its lesson.
	anyAdmin := auth.AnyToken(sfu.RoleAdmin)
	rt.HandleFunc("POST /api/lessons", anyAdmin, s.createLesson)
	rt.HandleFunc("GET /api/lessons", anyAdmin, s.listLessons)
	rt.HandleFunc("GET /api/lessons/{id}", auth.OfLesson("id", sfu.RoleAdmin), s.getLesson)
	rt.HandleFunc("GET /api/lessons/{id}/dashboard", auth.OfLesson("id", sfu.RoleAdmin), s.getDashboard)
	rt.HandleFunc("DELETE /api/lessons/{id}", auth.OfLesson("id", sfu.RoleAdmin), s.deleteLesson)
	rt.HandleFunc("POST /api/tokens", anyAdmin, s.createToken)
	rt.HandleFunc("POST /api/tokens/revoke", anyAdmin, s.revokeToken)
	// Go's profiler, for an operator chasing CPU or memory on a live node
	// (docs/BENCHMARKS.md shows how). Profiles reveal every lesson's
	// internals, so only a server-wide admin token may read them.
	rt.HandleFunc("GET /debug/pprof/", auth.ServerAdminScope(), pprof.Index)
	rt.HandleFunc("GET /debug/pprof/profile", auth.ServerAdminScope(), pprof.Profile)
	rt.HandleFunc("GET /debug/pprof/trace", auth.ServerAdminScope(), pprof.Trace)
}

func lessonView(r *sfu.Room) LessonView {
	tracks := r.Tracks()
	ti := make([]sfu.TrackInfo, 0, len(tracks))
	for _, t := range tracks {
		ti = append(ti, t.Info())
	}
	return LessonView{LessonInfo: r.Info(), Participants: r.Participants(), Tracks: ti, Stage: r.Stage()}
}

// decodeBody reads a small JSON body strictly.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", "body must be a JSON object: "+jsonErr(err))
		return false
	}
	return true
}

func claimsOf(r *http.Request) *auth.Claims {
	c, _ := auth.FromContext(r.Context())
	return c
}

func (s *Server) createLesson(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if !sfu.ValidRoomID(body.ID) {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("invalid lesson id %q: 1 to 64 letters, digits, '-', '_' or '.'", body.ID))
		return
	}
	if len(body.Title) > 200 {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", "title is longer than 200 characters")
		return
	}
	if !claimsOf(r).AllowsRoom(body.ID) {
		httpx.WriteError(w, http.StatusForbidden, "forbidden", "token is not for lesson "+body.ID)
		return
	}
	room, err := s.sfu.Rooms.CreateRoom(sfu.LessonInfo{ID: body.ID, Title: body.Title})
	if errors.Is(err, sfu.ErrRoomExists) {
		httpx.WriteError(w, http.StatusConflict, "conflict", fmt.Sprintf("lesson %q is already live", body.ID))
		return
	}
	if err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	w.Header().Set("Location", "/api/lessons/"+room.ID())
	httpx.WriteJSON(w, http.StatusCreated, lessonView(room))
}

func (s *Server) listLessons(w http.ResponseWriter, r *http.Request) {
	c := claimsOf(r)
	out := []LessonView{}
	for _, room := range s.sfu.Rooms.List() {
		if c.AllowsRoom(room.ID()) {
			out = append(out, lessonView(room))
		}
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (s *Server) lessonFor(w http.ResponseWriter, r *http.Request) (*sfu.Room, bool) {
	id := r.PathValue("id")
	if !claimsOf(r).AllowsRoom(id) {
		httpx.WriteError(w, http.StatusForbidden, "forbidden", "token is not for lesson "+id)
		return nil, false
	}
	room, ok := s.sfu.Rooms.Room(id)
	if !ok {
		httpx.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no live lesson %q", id))
		return nil, false
	}
	return room, true
}

func (s *Server) getLesson(w http.ResponseWriter, r *http.Request) {
	if room, ok := s.lessonFor(w, r); ok {
		httpx.WriteJSON(w, http.StatusOK, lessonView(room))
	}
}

func (s *Server) deleteLesson(w http.ResponseWriter, r *http.Request) {
	room, ok := s.lessonFor(w, r)
	if !ok {
		return
	}
	room.End("ended by an administrator")
	// WHIP/WHEP sessions have no socket to hear lessonEnded: end them here.
	s.mu.Lock()
	var res []*httpSession
	for _, hs := range s.resources {
		if hs.room == room.ID() {
			res = append(res, hs)
		}
	}
	s.mu.Unlock()
	for _, hs := range res {
		s.endResource(hs, "lesson ended")
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var body TokenRequest
	if !decodeBody(w, r, &body) {
		return
	}
	role := sfu.Role(body.Role)
	ttl := 2 * time.Hour
	if body.TTL != "" {
		d, err := time.ParseDuration(body.TTL)
		if err != nil || d <= 0 {
			httpx.WriteError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("ttl %q must be a positive duration such as 2h", body.TTL))
			return
		}
		ttl = d
	}
	caller := claimsOf(r)
	req := auth.Request{Room: body.Room, Role: role, Name: body.Name, TTL: ttl}
	if role == auth.RoleStudent {
		req.Replay = &auth.Grant{Lessons: body.Lessons, Courses: body.Courses, All: body.AllLessons}
		// A lesson's admin may let students replay that lesson; courses and
		// the whole catalog are the server admin's to give.
		if !caller.ServerAdmin() && (req.Replay.All || len(req.Replay.Courses) > 0 || !allAllowed(caller, req.Replay.Lessons)) {
			httpx.WriteError(w, http.StatusForbidden, "forbidden", "only a server admin grants courses or all lessons; a lesson admin grants only its lesson")
			return
		}
	} else if !caller.AllowsRoom(body.Room) {
		httpx.WriteError(w, http.StatusForbidden, "forbidden", "token is not for lesson "+body.Room)
		return
	}
	tok, c, err := s.issuer.Issue(req)
	if err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	s.cfg.Audit.Record(r.Context(), audit.Entry{At: time.Now(), Actor: caller.Subject, Role: string(caller.Role),
		Action: audit.TokenIssue, Lesson: body.Room, Object: c.ID, Detail: fmt.Sprintf("%s %q %s", role, body.Name, req.Replay.String()), RemoteAddr: r.RemoteAddr})
	httpx.WriteJSON(w, http.StatusCreated, TokenResponse{Token: tok, ID: c.ID, ExpiresAt: c.ExpiresAt.Time, Room: body.Room,
		Role: body.Role, Name: body.Name, Replay: c.Replay})
}

func allAllowed(c *auth.Claims, lessons []string) bool {
	for _, l := range lessons {
		if !c.AllowsRoom(l) {
			return false
		}
	}
	return true
}

// RevokeRequest is the body of POST /api/tokens/revoke: the token itself,
// or (server admins) its id and expiry.
type RevokeRequest struct {
	Token     string    `json:"token,omitempty"`
	ID        string    `json:"id,omitempty"`
	ExpiresAt time.Time `json:"expiresAt,omitempty"`
	Reason    string    `json:"reason,omitempty"`
}

// revokeToken answers POST /api/tokens/revoke. An admin revokes the tokens
// of lessons it administers; a server admin any token, by id too.
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Revocations == nil {
		httpx.WriteError(w, http.StatusServiceUnavailable, "unavailable", "token revocation needs the replay database")
		return
	}
	var body RevokeRequest
	if !decodeBody(w, r, &body) {
		return
	}
	caller := claimsOf(r)
	rev := auth.Revocation{ID: body.ID, ExpiresAt: body.ExpiresAt, By: caller.Subject, Reason: body.Reason}
	lesson := ""
	switch {
	case body.Token != "":
		c, err := s.issuer.ParseForRevocation(body.Token)
		if err != nil {
			httpx.WriteError(w, http.StatusBadRequest, "bad_request", "not a token of this server: "+err.Error())
			return
		}
		if !caller.ServerAdmin() && (c.Role == auth.RoleStudent || !caller.AllowsRoom(c.Room) || c.Room == auth.AnyRoom) {
			httpx.WriteError(w, http.StatusForbidden, "forbidden", "that token is not of a lesson you administer")
			return
		}
		rev.ID, rev.ExpiresAt, lesson = c.ID, c.ExpiresAt.Time, c.Room
	case body.ID != "" && !body.ExpiresAt.IsZero():
		if !caller.ServerAdmin() {
			httpx.WriteError(w, http.StatusForbidden, "forbidden", "revoking by id needs a server-wide admin token; send the token itself")
			return
		}
	default:
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", `body must be {"token": "..."} or {"id": "...", "expiresAt": "..."}`)
		return
	}
	if len(rev.Reason) > 200 {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", "reason is longer than 200 characters")
		return
	}
	if err := s.cfg.Revocations.Revoke(r.Context(), rev); err != nil {
		httpx.WriteError(w, http.StatusServiceUnavailable, "database", err.Error())
		return
	}
	s.cfg.Audit.Record(r.Context(), audit.Entry{At: time.Now(), Actor: caller.Subject, Role: string(caller.Role),
		Action: audit.TokenRevoke, Lesson: lesson, Object: rev.ID, Detail: rev.Reason, RemoteAddr: r.RemoteAddr})
	// Sessions already open with the token end now, not at their next request.
	s.closeSessionsOf(rev.ID, "token revoked")
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"revoked": rev.ID, "expiresAt": rev.ExpiresAt})
}

// closeSessionsOf ends every websocket and WHIP/WHEP session opened with
// the token id.
func (s *Server) closeSessionsOf(jti, reason string) {
	s.mu.Lock()
	var conns []*session
	for c := range s.conns {
		if c.claims.ID == jti {
			conns = append(conns, c)
		}
	}
	var res []*httpSession
	for _, hs := range s.resources {
		if hs.tokenID == jti {
			res = append(res, hs)
		}
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.sendFinal(encode("error", "", ErrorData{Code: CodeForbidden, Message: reason}), websocket.ClosePolicyViolation, reason)
	}
	for _, hs := range res {
		s.endResource(hs, reason)
	}
}
