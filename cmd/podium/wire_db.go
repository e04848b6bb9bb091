package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"podium/internal/audit"
	"podium/internal/httpx"
	"podium/replaydb"
	"podium/sfu"
	"podium/signaling/auth"
)

// dbFlags is the replay database's configuration.
var dbFlags struct {
	dsn string
}

// registerDBFlags adds the replay database's flags.
func registerDBFlags(fs *flag.FlagSet) {
	fs.StringVar(&dbFlags.dsn, "db", "", "replay database: postgres://user:pass@host/db when nodes share one (default: SQLite in <data-dir>/podium.db)")
}

// dbDSN is the database a data dir implies when --db is empty.
func dbDSN(dsn, dataDir string) string {
	if dsn != "" {
		return dsn
	}
	return "sqlite:" + filepath.Join(dataDir, "podium.db")
}

// wireDB opens the replay database (running its migrations), loads the
// revoked tokens into the issuer, and keeps the audit log there. It runs
// first: nothing that checks a token may start without the revocations.
func wireDB(a *app, dataDir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := replaydb.Open(ctx, dbDSN(dbFlags.dsn, dataDir))
	if err != nil {
		return err
	}
	a.db = db
	a.onClose(func(context.Context) error { return db.Close() })
	a.audit = dbAudit{db: db, log: a.log}

	revs, err := auth.NewRevocations(ctx, revocationStore{db}, a.log)
	if err != nil {
		return err
	}
	a.issuer.SetRevoked(revs)
	a.revocations = revs
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Another node's revocation reaches this one within 5 s.
		revs.Run(runCtx, 5*time.Second)
	}()
	a.onClose(func(context.Context) error {
		stop()
		<-done
		return nil
	})
	a.routes.HandleFunc("GET /api/audit", auth.AnyToken(sfu.RoleAdmin), auditHandler(db))
	a.log.Info("replay database open", "backend", db.Backend())
	return nil
}

// auditHandler answers GET /api/audit?lesson=&since=&limit=: the audit log,
// newest first. A lesson's admin reads its lesson's lines; a server admin
// every line.
func auditHandler(db *replaydb.DB) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, _ := auth.FromContext(r.Context())
		q := r.URL.Query()
		f := replaydb.AuditFilter{Lesson: q.Get("lesson"), Limit: 200}
		if !c.ServerAdmin() && !(f.Lesson != "" && c.AllowsRoom(f.Lesson)) {
			httpx.WriteError(w, http.StatusForbidden, "forbidden", "a lesson admin reads the audit log of its lesson: add ?lesson=<id>")
			return
		}
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				httpx.WriteError(w, http.StatusBadRequest, "bad_request", "limit must be 1 to 1000")
				return
			}
			f.Limit = n
		}
		if v := q.Get("since"); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				httpx.WriteError(w, http.StatusBadRequest, "bad_request", "since must be an RFC 3339 time")
				return
			}
			f.Since = t
		}
		lines, err := db.ListAudit(r.Context(), f)
		if err != nil {
			httpx.WriteError(w, http.StatusServiceUnavailable, "database", err.Error())
			return
		}
		out := make([]audit.Entry, 0, len(lines))
		for _, l := range lines {
			out = append(out, audit.Entry{At: l.At, Actor: l.Actor, Role: l.Role, Action: l.Action, Lesson: l.Lesson,
				Object: l.Object, Detail: l.Detail, RemoteAddr: l.RemoteAddr})
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"entries": out})
	}
}

// revocationStore adapts the replay database to auth.RevocationStore.
type revocationStore struct{ db *replaydb.DB }

// revocationKeep is how long a revocation outlives its token's expiry
// (more than the clock leeway, so no node can still accept the token).
const revocationKeep = time.Minute

func (s revocationStore) RevokedIDs(ctx context.Context, now time.Time) ([]string, error) {
	revs, err := s.db.ListRevocations(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(revs))
	stale := false
	for _, r := range revs {
		if r.ExpiresAt.After(now.Add(-revocationKeep)) {
			ids = append(ids, r.JTI)
		} else {
			stale = true
		}
	}
	// Tokens that expired anyway need no revocation: the list stays as
	// short as the tokens still alive (a write only when there is some).
	if stale {
		if _, err := s.db.PruneRevocations(ctx, now.Add(-revocationKeep)); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

func (s revocationStore) Revoke(ctx context.Context, r auth.Revocation) error {
	return s.db.RevokeToken(ctx, replaydb.Revocation{JTI: r.ID, ExpiresAt: r.ExpiresAt, RevokedAt: time.Now(),
		RevokedBy: r.By, Reason: r.Reason})
}

// dbAudit keeps audit lines in the replay database. A line that cannot be
// written is logged in full, so it is not lost silently.
type dbAudit struct {
	db  *replaydb.DB
	log *slog.Logger
}

func (d dbAudit) Record(ctx context.Context, e audit.Entry) {
	err := d.db.AppendAudit(context.WithoutCancel(ctx), replaydb.AuditEntry{At: e.At, Actor: e.Actor, Role: e.Role,
		Action: e.Action, Lesson: e.Lesson, Object: e.Object, Detail: e.Detail, RemoteAddr: e.RemoteAddr})
	if err != nil {
		d.log.Error("audit line not stored", "err", fmt.Errorf("replay database: %w", err),
			"actor", e.Actor, "action", e.Action, "lesson", e.Lesson, "object", e.Object, "detail", e.Detail)
	}
}
