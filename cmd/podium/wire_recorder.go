package main

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"time"

	"podium/internal/httpx"
	"podium/recorder"
	"podium/sfu"
	"podium/signaling/auth"
)

// recorderFlags is the recorder part's configuration, filled by registerRecorderFlags.
var recorderFlags struct {
	enabled         bool
	auto            bool
	segmentDuration time.Duration
	spoolDir        string
	spoolMaxBytes   int64
	fs              *flag.FlagSet
}

// registerRecorderFlags adds the recorder part's flags.
func registerRecorderFlags(fs *flag.FlagSet) {
	fs.BoolVar(&recorderFlags.enabled, "record", true, "enable the recorder")
	fs.BoolVar(&recorderFlags.auto, "record-auto", true, "record every lesson from its start (otherwise only on POST /api/lessons/{id}/recording/start)")
	fs.DurationVar(&recorderFlags.segmentDuration, "record-segment-duration", 4*time.Second, "target length of recorded segments; video is cut on the first keyframe after it")
	fs.StringVar(&recorderFlags.spoolDir, "record-spool-dir", "", "directory where closed segments wait for upload, surviving restarts (default <data-dir>/spool)")
	recorderFlags.fs = fs
	fs.Int64Var(&recorderFlags.spoolMaxBytes, "record-spool-max-bytes", 2<<30, "most bytes the spool may hold while storage is slow or down; segments beyond are dropped and reported")
}

// wireRecorder builds the recorder: it records lessons of a.sfu into
// a.store, serves the admin recording API, and spools on shutdown.
func wireRecorder(a *app) error {
	if !recorderFlags.enabled {
		return nil
	}
	if a.store == nil {
		return errors.New("recorder: no storage wired")
	}
	spoolDir := recorderFlags.spoolDir
	if spoolDir == "" {
		spoolDir = dataDirPath(recorderFlags.fs, "spool")
	}
	rec, err := recorder.New(recorder.Config{
		Store:           a.store,
		SpoolDir:        spoolDir,
		SpoolMaxBytes:   recorderFlags.spoolMaxBytes,
		SegmentDuration: recorderFlags.segmentDuration,
		Log:             a.log.With("part", "recorder"),
		Registerer:      a.reg,
		// Read at room creation: wireCluster runs after this and sets it.
		SkipAuto: func(lessonID string) bool { return isClusterMirror(lessonID) },
	})
	if err != nil {
		return fmt.Errorf("recorder: %w", err)
	}
	if a.sfu != nil && a.sfu.Rooms != nil {
		rec.Attach(a.sfu.Rooms, recorderFlags.auto)
	}
	a.onClose(rec.Close)
	// Every lesson's recording state is the server admin's; one lesson's
	// is its admin's.
	a.routes.HandleFunc("GET /api/recordings", auth.ServerAdminScope(), func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, rec.Lessons())
	})
	lessonAdmin := auth.OfLesson("id", sfu.RoleAdmin)
	a.routes.HandleFunc("GET /api/lessons/{id}/recording", lessonAdmin, recordingHandler(rec, "status"))
	a.routes.HandleFunc("POST /api/lessons/{id}/recording/start", lessonAdmin, recordingHandler(rec, "start"))
	a.routes.HandleFunc("POST /api/lessons/{id}/recording/stop", lessonAdmin, recordingHandler(rec, "stop"))
	return nil
}

func recordingHandler(rec *recorder.Recorder, action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if !sfu.ValidRoomID(id) {
			httpx.WriteError(w, http.StatusBadRequest, "invalid_lesson", "invalid lesson id")
			return
		}
		var err error
		switch action {
		case "start":
			err = rec.StartLesson(id)
		case "stop":
			err = rec.Stop(id)
		}
		if err != nil {
			if errors.Is(err, recorder.ErrNoSuchLesson) {
				httpx.WriteError(w, http.StatusNotFound, "no_such_lesson", err.Error())
				return
			}
			httpx.WriteError(w, http.StatusInternalServerError, "recording_failed", err.Error())
			return
		}
		st, err := rec.Status(id)
		if err != nil {
			if errors.Is(err, recorder.ErrNoSuchLesson) {
				httpx.WriteError(w, http.StatusNotFound, "no_such_lesson", err.Error())
				return
			}
			httpx.WriteError(w, http.StatusInternalServerError, "recording_failed", err.Error())
			return
		}
		httpx.WriteJSON(w, http.StatusOK, st)
	}
}
