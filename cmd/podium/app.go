package main

// CONTRACT: app is what serve builds and hands to each part's wire function
// (wireStorage, wireRecorder, wireIngest, wireVOD, each in its own file and
// owned by that part). A wire function reads its own config (a package-level
// var filled by its register*Flags), builds its part, adds its routes to
// a.mux, and appends a closer; closers run in reverse order on shutdown.

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"podium/sfu"
	"podium/storage"
)

type app struct {
	log *slog.Logger
	reg *prometheus.Registry
	mux *http.ServeMux
	sfu *sfu.SFU
	// store is set by wireStorage before any other part is wired.
	store storage.Store
	// requireRole wraps a handler so that only a valid bearer token with one
	// of the roles reaches it (401/403 JSON errors otherwise); set by serve
	// from package signaling before the parts are wired.
	requireRole func(h http.Handler, roles ...sfu.Role) http.Handler
	closers     []func(context.Context) error
}

func (a *app) onClose(fn func(context.Context) error) { a.closers = append(a.closers, fn) }
