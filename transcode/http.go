package transcode

import (
	"errors"
	"net/http"

	"podium/internal/httpx"
	"podium/vod"
)

// Handlers are the job API: status, cancel and an explicit (re)transcode.
// Routes and roles are chosen by the caller (cmd/podium).
type Handlers struct{ Q *Queue }

// List answers GET /api/vod/jobs: every job, newest first.
func (h Handlers) List(w http.ResponseWriter, r *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"jobs": h.Q.Jobs()})
}

// Get answers GET /api/vod/jobs/{job}.
func (h Handlers) Get(w http.ResponseWriter, r *http.Request) {
	j, ok := h.Q.Job(r.PathValue("job"))
	if !ok {
		httpx.WriteError(w, http.StatusNotFound, "not_found", "no such job")
		return
	}
	httpx.WriteJSON(w, http.StatusOK, j)
}

// Cancel answers POST /api/vod/jobs/{job}/cancel.
func (h Handlers) Cancel(w http.ResponseWriter, r *http.Request) {
	j, err := h.Q.Cancel(r.Context(), r.PathValue("job"))
	switch {
	case errors.Is(err, ErrJobNotFound):
		httpx.WriteError(w, http.StatusNotFound, "not_found", "no such job")
	case err != nil:
		httpx.WriteError(w, http.StatusInternalServerError, "storage", err.Error())
	default:
		httpx.WriteJSON(w, http.StatusOK, j)
	}
}

// Transcode answers POST /api/vod/lessons/{lesson}/transcode: queue (again)
// the lesson's transcode.
func (h Handlers) Transcode(w http.ResponseWriter, r *http.Request) {
	j, err := h.Q.EnqueueLesson(r.Context(), r.PathValue("lesson"))
	switch {
	case errors.Is(err, ErrInvalid):
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
	case errors.Is(err, ErrJobActive):
		httpx.WriteError(w, http.StatusConflict, "job_active", "a transcode of this lesson is already queued or running")
	case err != nil:
		httpx.WriteError(w, http.StatusInternalServerError, "storage", err.Error())
	default:
		httpx.WriteJSON(w, http.StatusAccepted, j)
	}
}

// Register mounts the job API on mux (auth as in vod.Register):
//
//	GET  /api/vod/jobs                       teacher, admin
//	GET  /api/vod/jobs/{job}                 teacher, admin
//	POST /api/vod/jobs/{job}/cancel          teacher, admin
//	POST /api/vod/lessons/{lesson}/transcode admin
func (h Handlers) Register(mux *http.ServeMux, auth vod.AuthFunc) {
	mux.Handle("GET /api/vod/jobs", auth(http.HandlerFunc(h.List), vod.Staff...))
	mux.Handle("GET /api/vod/jobs/{job}", auth(http.HandlerFunc(h.Get), vod.Staff...))
	mux.Handle("POST /api/vod/jobs/{job}/cancel", auth(http.HandlerFunc(h.Cancel), vod.Staff...))
	mux.Handle("POST /api/vod/lessons/{lesson}/transcode", auth(http.HandlerFunc(h.Transcode), vod.RoleAdmin))
}
