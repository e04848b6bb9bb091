package ingest

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"podium/internal/httpx"
	"podium/sfu"
)

// maxRequestBody bounds a registration request.
const maxRequestBody = 16 << 10

// Routes are the admin API patterns the handler serves; the caller mounts
// each behind its admin check.
var Routes = []string{
	"POST /api/lessons/{id}/sources",
	"GET /api/lessons/{id}/sources",
	"GET /api/lessons/{id}/sources/{sid}",
	"DELETE /api/lessons/{id}/sources/{sid}",
}

// Handler serves the admin API for sources:
//
//	POST   /api/lessons/{id}/sources        {url, kind, name, transport} -> 201 SourceInfo
//	GET    /api/lessons/{id}/sources        -> 200 {"sources": [SourceInfo]}
//	GET    /api/lessons/{id}/sources/{sid}  -> 200 SourceInfo
//	DELETE /api/lessons/{id}/sources/{sid}  -> 204
//
// It does no authentication: mount it behind the admin role check.
func (m *Manager) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(Routes[0], m.handleAdd)
	mux.HandleFunc(Routes[1], m.handleList)
	mux.HandleFunc(Routes[2], m.handleGet)
	mux.HandleFunc(Routes[3], m.handleRemove)
	return mux
}

func (m *Manager) handleAdd(w http.ResponseWriter, r *http.Request) {
	var c SourceConfig
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		// json errors may quote the input, and the input holds the password.
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", "body must be a JSON object {url, kind, name, transport}")
		return
	}
	info, err := m.Add(r.PathValue("id"), c)
	switch {
	case err == nil:
		w.Header().Set("Location", "/api/lessons/"+info.Lesson+"/sources/"+info.ID)
		httpx.WriteJSON(w, http.StatusCreated, info)
	case errors.Is(err, errInvalid):
		httpx.WriteError(w, http.StatusBadRequest, "invalid_source", err.Error())
	case errors.Is(err, ErrTooManySources):
		httpx.WriteError(w, http.StatusTooManyRequests, "too_many_sources", err.Error())
	case errors.Is(err, sfu.ErrRoomEnded):
		httpx.WriteError(w, http.StatusConflict, "lesson_ended", err.Error())
	case errors.Is(err, ErrClosed):
		httpx.WriteError(w, http.StatusServiceUnavailable, "shutting_down", err.Error())
	default:
		httpx.WriteError(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

func (m *Manager) handleList(w http.ResponseWriter, r *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"sources": m.List(r.PathValue("id"))})
}

func (m *Manager) handleGet(w http.ResponseWriter, r *http.Request) {
	info, ok := m.Get(r.PathValue("id"), r.PathValue("sid"))
	if !ok {
		httpx.WriteError(w, http.StatusNotFound, "no_such_source", ErrNoSuchSource.Error())
		return
	}
	httpx.WriteJSON(w, http.StatusOK, info)
}

func (m *Manager) handleRemove(w http.ResponseWriter, r *http.Request) {
	if err := m.Remove(r.PathValue("id"), r.PathValue("sid")); err != nil {
		httpx.WriteError(w, http.StatusNotFound, "no_such_source", err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
