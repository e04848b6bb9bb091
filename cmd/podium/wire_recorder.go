package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"podium/internal/httpx"
	"podium/recorder"
	"podium/replaydb"
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
	takeoverAfter   time.Duration
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
	fs.DurationVar(&recorderFlags.takeoverAfter, "record-takeover-after", 10*time.Minute, "how long another node's unfinished recording must go without a manifest write before this node closes it (its node died and did not come back)")
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
	node, err := recorderNode()
	if err != nil {
		return fmt.Errorf("recorder: %w", err)
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
		Node:     node,
		// A lesson interrupted by a restart is over when nobody came back
		// within the time an empty lesson lives.
		ResumeGrace:   flagDuration(recorderFlags.fs, "lesson-empty-grace", time.Minute),
		TakeoverAfter: recorderFlags.takeoverAfter,
		OpenLessons:   openLessons(a),
	})
	if err != nil {
		return fmt.Errorf("recorder: %w", err)
	}
	if a.sfu != nil && a.sfu.Rooms != nil {
		rec.Attach(a.sfu.Rooms, recorderFlags.auto)
	}
	a.onDrain(rec.Drain)
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

// recorderNode is the name this node's recorder writes in the manifests it
// owns: the cluster node id when set, else the host name and a random
// suffix kept in the data dir, so two nodes on one host differ and a
// restart keeps its name (and finds its own unfinished recordings).
func recorderNode() (string, error) {
	if clusterConfig.nodeID != "" {
		return clusterConfig.nodeID, nil
	}
	path := dataDirPath(recorderFlags.fs, "recorder-node")
	if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) > 0 {
		return string(bytes.TrimSpace(b)), nil
	}
	host, _ := os.Hostname()
	var suffix [4]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return "", err
	}
	node := host + "-" + hex.EncodeToString(suffix[:])
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("node name: %w", err)
	}
	if err := os.WriteFile(path, []byte(node+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("node name: %w", err)
	}
	return node, nil
}

// flagDuration reads another part's duration flag (def when absent).
func flagDuration(fs *flag.FlagSet, name string, def time.Duration) time.Duration {
	if fs == nil {
		return def
	}
	if f := fs.Lookup(name); f != nil {
		if g, ok := f.Value.(flag.Getter); ok {
			if d, ok := g.Get().(time.Duration); ok {
				return d
			}
		}
	}
	return def
}

// openLessons lists the lessons the catalog holds as recording or
// interrupted: where a recording left unfinished by a node that is gone
// can be (the recorder reads only their manifests).
func openLessons(a *app) func(context.Context) ([]string, error) {
	if a.db == nil {
		return nil
	}
	return func(ctx context.Context) ([]string, error) {
		recs, err := a.db.LessonsInProgress(ctx)
		if err != nil {
			return nil, err
		}
		var ids []string
		for _, l := range recs {
			if l.Status != replaydb.StatusProcessing {
				ids = append(ids, l.ID)
			}
		}
		return ids, nil
	}
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
