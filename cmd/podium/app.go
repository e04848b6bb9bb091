package main

// CONTRACT: app is what serve builds and hands to each part's wire function
// (wireStorage, wireRecorder, wireIngest, wireVOD, each in its own file and
// owned by that part). A wire function reads its own config (a package-level
// var filled by its register*Flags), builds its part, adds its routes to
// a.routes (each with its scope), and appends a closer; closers run in
// reverse order on shutdown.

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"podium/internal/audit"
	"podium/replaydb"
	"podium/sfu"
	"podium/signaling/auth"
	"podium/storage"
)

type app struct {
	log *slog.Logger
	reg *prometheus.Registry
	mux *http.ServeMux
	sfu *sfu.SFU
	// store is set by wireStorage before any other part is wired.
	store storage.Store
	// routes is where every part registers its HTTP routes with their
	// scopes (who may call them); it serves on mux.
	routes *auth.Router
	issuer *auth.Issuer
	// db is the replay database, set by wireDB first; revocations and
	// audit live in it.
	db          *replaydb.DB
	revocations *auth.Revocations
	audit       audit.Recorder
	closers     []func(context.Context) error
	drainers    []func()
}

func (a *app) onClose(fn func(context.Context) error) { a.closers = append(a.closers, fn) }

// onDrain registers fn to run when the node starts draining (SIGTERM),
// before clients are told to leave: what they do next is the node going
// away, not the end of their lesson.
func (a *app) onDrain(fn func()) { a.drainers = append(a.drainers, fn) }

// startDrain runs the drain hooks.
func (a *app) startDrain() {
	for _, fn := range a.drainers {
		fn()
	}
}
