package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"podium/internal/httpx"
	"podium/replaydb"
	"podium/vod"
)

// workerConfig is `podium worker`'s own configuration; the database,
// storage and transcode flags are those of serve.
type workerConfig struct {
	configFile   string
	httpAddr     string
	dataDir      string
	logLevel     string
	metricsToken string
	drainTimeout time.Duration
}

func workerFlags(stderr io.Writer) (*flag.FlagSet, *workerConfig) {
	fs := flag.NewFlagSet("podium worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &workerConfig{}
	fs.StringVar(&c.configFile, "config", "", "YAML file of flat flag-name: value settings (flags and PODIUM_* variables win over it)")
	fs.StringVar(&c.httpAddr, "http-addr", ":8080", "HTTP listen address (/metrics, /healthz, /readyz only)")
	fs.StringVar(&c.dataDir, "data-dir", "./data", "directory for the default SQLite database and local storage")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.metricsToken, "metrics-token", "", "bearer token Prometheus must send to read /metrics (empty: /metrics is open)")
	fs.DurationVar(&c.drainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM, how long to stop running jobs (they go back to the queue)")
	registerDBFlags(fs)
	registerStorageFlags(fs)
	registerVodFlags(fs)
	return fs, c
}

// runWorker is `podium worker`: a node that only works transcode jobs of
// the shared replay database (--db postgres://...) on the shared storage,
// and scans that storage for completed recordings. It carries no live
// media: no sfu, no signaling, no catalog API.
func runWorker(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs, c := workerFlags(stderr)
	err := loadConfig(fs, args, "config", getenv)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err == nil {
		err = c.validate()
	}
	if err != nil {
		fmt.Fprintf(stderr, "podium worker: bad configuration:\n  %s\n", strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return 2
	}
	level, _ := parseLogLevel(c.logLevel)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := work(ctx, c, log); err != nil {
		log.Error("podium worker stopped", "err", err)
		return 1
	}
	return 0
}

func (c *workerConfig) validate() error {
	var errs []error
	if err := checkListenAddr("http-addr", c.httpAddr); err != nil {
		errs = append(errs, err)
	}
	if c.dataDir == "" {
		errs = append(errs, errors.New("--data-dir must not be empty"))
	}
	if _, err := parseLogLevel(c.logLevel); err != nil {
		errs = append(errs, err)
	}
	if c.drainTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--drain-timeout must be positive, got %s", c.drainTimeout))
	}
	if !vodFlags.transcode {
		errs = append(errs, errors.New("--vod-transcode=false: a worker that transcodes nothing has nothing to do"))
	}
	return errors.Join(errs...)
}

// work runs the transcode worker until ctx ends.
func work(ctx context.Context, c *workerConfig, log *slog.Logger) (err error) {
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a := &app{log: log, reg: reg, mux: http.NewServeMux()}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), c.drainTimeout)
		defer cancel()
		runClosers(dctx, a, log)
	}()

	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	db, err := replaydb.Open(octx, dbDSN(dbFlags.dsn, c.dataDir))
	cancel()
	if err != nil {
		return fmt.Errorf("replay database: %w", err)
	}
	a.db = db
	a.onClose(func(context.Context) error { return db.Close() })
	if db.Backend() == replaydb.SQLite {
		log.Warn("worker on an SQLite file: it works the jobs of the nodes sharing this file only; give every node --db postgres://... to share one queue")
	}
	if err := wireStorage(a); err != nil {
		return err
	}
	q, err := newTranscodeQueue(a)
	if err != nil {
		return fmt.Errorf("transcode: %w", err)
	}
	// A worker may claim a retention pass: it deletes through the catalog
	// as a serving node would, with the same audit lines.
	retainer, err := vod.New(a.store, db, nil, vod.Config{Retention: time.Duration(vodFlags.retention),
		Audit: dbAudit{db: db, log: log}}, log)
	if err != nil {
		return err
	}
	q.SetRetainer(retainer)
	runTranscodeQueue(a, q)

	a.mux.Handle("GET /metrics", metricsHandler(reg, c.metricsToken))
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "alive"})
	})
	a.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	ln, err := net.Listen("tcp", c.httpAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", c.httpAddr, err)
	}
	srv := &http.Server{Handler: a.mux, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 90 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("podium worker running", "addr", ln.Addr().String(), "database", db.Backend(), "workers", vodFlags.workers)

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("worker shutting down: running jobs go back to the queue")
	case err := <-serveErr:
		runErr = fmt.Errorf("http server: %w", err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	return runErr
}
