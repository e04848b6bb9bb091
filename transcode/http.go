package transcode

import (
	"errors"
	"net/http"
	"strconv"

	"podium/internal/httpx"
	"podium/sfu"
	"podium/signaling/auth"
	"podium/storage"
	"podium/vod"
)

// Handlers are the job API: status, cancel and an explicit (re)transcode.
// Mount registers them with their scopes.
type Handlers struct{ Q *Queue }

// List answers GET /api/vod/jobs?limit=: the newest jobs (200 unless
// limit says, at most 1000), newest first.
func (h Handlers) List(w http.ResponseWriter, r *http.Request) {
	limit := 200
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			httpx.WriteError(w, http.StatusBadRequest, "bad_request", "limit must be 1 to 1000")
			return
		}
		limit = n
	}
	jobs, err := h.Q.Jobs(r.Context(), limit)
	if err != nil {
		h.Q.log.Error("transcode: listing jobs", "err", err)
		httpx.WriteError(w, http.StatusServiceUnavailable, "database", "the job queue is not answering; try again")
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"jobs": jobs})
}

// Get answers GET /api/vod/jobs/{job}.
func (h Handlers) Get(w http.ResponseWriter, r *http.Request) {
	j, err := h.Q.Job(r.Context(), r.PathValue("job"))
	switch {
	case errors.Is(err, ErrJobNotFound):
		httpx.WriteError(w, http.StatusNotFound, "not_found", "no such job")
	case err != nil:
		h.Q.log.Error("transcode: reading a job", "err", err)
		httpx.WriteError(w, http.StatusServiceUnavailable, "database", "the job queue is not answering; try again")
	default:
		httpx.WriteJSON(w, http.StatusOK, j)
	}
}

// Cancel answers POST /api/vod/jobs/{job}/cancel.
func (h Handlers) Cancel(w http.ResponseWriter, r *http.Request) {
	j, err := h.Q.Cancel(r.Context(), r.PathValue("job"))
	switch {
	case errors.Is(err, ErrJobNotFound):
		httpx.WriteError(w, http.StatusNotFound, "not_found", "no such job")
	case err != nil:
		h.Q.log.Error("transcode: canceling a job", "err", err)
		httpx.WriteError(w, http.StatusServiceUnavailable, "database", "the job queue is not answering; try again")
	default:
		httpx.WriteJSON(w, http.StatusOK, j)
	}
}

// Transcode answers POST /api/vod/lessons/{lesson}/transcode: queue the
// lesson's transcode, or run its finished job again (409 while it is
// queued or running). A lesson without a recording is 404: there is
// nothing to transcode, and a job for it would only fail.
func (h Handlers) Transcode(w http.ResponseWriter, r *http.Request) {
	lesson := r.PathValue("lesson")
	if !vod.ValidID(lesson) {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", "invalid lesson id")
		return
	}
	if _, err := h.Q.store.Stat(r.Context(), vod.ManifestKey(lesson)); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			httpx.WriteError(w, http.StatusNotFound, "no_recording", "the lesson has no recording to transcode")
			return
		}
		h.Q.log.Error("transcode: looking for the recording", "lesson", lesson, "err", err)
		httpx.WriteError(w, http.StatusServiceUnavailable, "storage", "storage is not answering; try again")
		return
	}
	j, err := h.Q.EnqueueLesson(r.Context(), lesson)
	switch {
	case errors.Is(err, ErrInvalid):
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
	case errors.Is(err, ErrJobActive):
		httpx.WriteError(w, http.StatusConflict, "job_active", "a transcode of this lesson is already queued or running")
	case err != nil:
		h.Q.log.Error("transcode: queueing a lesson", "lesson", lesson, "err", err)
		httpx.WriteError(w, http.StatusServiceUnavailable, "database", "the job queue is not answering; try again")
	default:
		httpx.WriteJSON(w, http.StatusAccepted, j)
	}
}

// Mount registers the job API on rt. Jobs name every lesson, so listing
// and cancelling them is a server admin's; a lesson's admin may ask for its
// lesson to be transcoded again.
//
//	GET  /api/vod/jobs                       server admin
//	GET  /api/vod/jobs/{job}                 server admin
//	POST /api/vod/jobs/{job}/cancel          server admin
//	POST /api/vod/lessons/{lesson}/transcode admin of the lesson
func (h Handlers) Mount(rt *auth.Router) {
	rt.HandleFunc("GET /api/vod/jobs", auth.ServerAdminScope(), h.List)
	rt.HandleFunc("GET /api/vod/jobs/{job}", auth.ServerAdminScope(), h.Get)
	rt.HandleFunc("POST /api/vod/jobs/{job}/cancel", auth.ServerAdminScope(), h.Cancel)
	rt.HandleFunc("POST /api/vod/lessons/{lesson}/transcode", auth.OfLesson("lesson", sfu.RoleAdmin), h.Transcode)
}
