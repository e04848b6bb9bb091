package signaling

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"time"

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
	// TTL is a Go duration ("2h", "90m"); default 2h, at most 7 days.
	TTL string `json:"ttl,omitempty"`
}

// TokenResponse is the reply of POST /api/tokens.
type TokenResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
	Room      string    `json:"room"`
	Role      string    `json:"role"`
	Name      string    `json:"name"`
}

const maxTokenTTL = 7 * 24 * time.Hour

func (s *Server) mountAdmin(mux *http.ServeMux) {
	admin := func(h http.HandlerFunc) http.Handler { return s.Require(h, sfu.RoleAdmin) }
	mux.Handle("POST /api/lessons", admin(s.createLesson))
	mux.Handle("GET /api/lessons", admin(s.listLessons))
	mux.Handle("GET /api/lessons/{id}", admin(s.getLesson))
	mux.Handle("DELETE /api/lessons/{id}", admin(s.deleteLesson))
	mux.Handle("POST /api/tokens", admin(s.createToken))
	// Go's profiler, for an operator chasing CPU or memory on a live node
	// (docs/BENCHMARKS.md shows how). Profiles reveal every lesson's
	// internals, so only a server-wide admin token may read them.
	mux.Handle("GET /debug/pprof/", admin(serverAdminOnly(pprof.Index)))
	mux.Handle("GET /debug/pprof/profile", admin(serverAdminOnly(pprof.Profile)))
	mux.Handle("GET /debug/pprof/trace", admin(serverAdminOnly(pprof.Trace)))
}

// serverAdminOnly refuses admins whose token is scoped to one lesson.
func serverAdminOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if claimsOf(r).Room != auth.AnyRoom {
			httpx.WriteError(w, http.StatusForbidden, "forbidden", "profiles need a server-wide admin token (room \"*\")")
			return
		}
		h(w, r)
	}
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
	ttl := 2 * time.Hour
	if body.TTL != "" {
		d, err := time.ParseDuration(body.TTL)
		if err != nil || d <= 0 || d > maxTokenTTL {
			httpx.WriteError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("ttl %q must be a duration between 1s and %s", body.TTL, maxTokenTTL))
			return
		}
		ttl = d
	}
	if !claimsOf(r).AllowsRoom(body.Room) {
		httpx.WriteError(w, http.StatusForbidden, "forbidden", "token is not for lesson "+body.Room)
		return
	}
	tok, exp, err := s.issuer.Issue(auth.Request{Room: body.Room, Role: sfu.Role(body.Role), Name: body.Name, TTL: ttl})
	if err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, TokenResponse{Token: tok, ExpiresAt: exp, Room: body.Room, Role: body.Role, Name: body.Name})
}
