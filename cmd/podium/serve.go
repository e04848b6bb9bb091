package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"podium/clients"
	"podium/internal/connlimit"
	"podium/internal/httpx"
	"podium/internal/portmux"
	"podium/sfu"
	"podium/signaling"
	"podium/signaling/auth"
)

// serveConfig is serve's own configuration and the sfu's.
type serveConfig struct {
	configFile   string
	httpAddr     string
	secret       string
	dataDir      string
	logLevel     string
	publicURL    string
	drainTimeout time.Duration
	tlsCert      string
	tlsKey       string

	emptyLessonGrace time.Duration

	tokenMaxTTL     auth.MaxTTL
	metricsToken    string
	maxConnsPerIP   int
	connLimitExempt listFlag

	iceUDPPort  int
	unbatched   bool
	noGSO       bool
	iceTCPPort  int
	publicIPs   listFlag
	bindIP      string
	turnEnabled bool
	turnUDPPort int
	turnTCPPort int
	turnRealm   string
	singlePort  bool
}

// serveFlags registers every flag of `podium serve`: serve's and the sfu's
// here, each other part's through its register function.
func serveFlags(stderr io.Writer) (*flag.FlagSet, *serveConfig) {
	fs := flag.NewFlagSet("podium serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &serveConfig{}
	fs.StringVar(&c.configFile, "config", "", "YAML file of flat flag-name: value settings (flags and PODIUM_* variables win over it)")
	fs.StringVar(&c.httpAddr, "http-addr", ":8080", "HTTP listen address (signaling, APIs, web pages, metrics)")
	fs.StringVar(&c.secret, "secret", "", "token signing secret, at least 16 characters (default: generated once and kept in <data-dir>/secret)")
	fs.StringVar(&c.dataDir, "data-dir", "./data", "directory for the generated secret and local storage")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.publicURL, "public-url", "", "URL clients reach this node at, for links in logs and pages (default http://<http-addr>)")
	fs.DurationVar(&c.drainTimeout, "drain-timeout", 10*time.Second, "on SIGTERM, how long to drain clients and stop the parts")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "TLS certificate file (serve HTTPS; needs --tls-key)")
	fs.StringVar(&c.tlsKey, "tls-key", "", "TLS key file")
	fs.DurationVar(&c.emptyLessonGrace, "lesson-empty-grace", sfu.DefaultEmptyLessonGrace, "a lesson ends (and its recording completes) once no teacher, classroom or camera has been in it this long (a WHIP encoder that stopped; negative: never)")
	c.tokenMaxTTL = auth.DefaultMaxTTL()
	fs.Var(&c.tokenMaxTTL, "token-max-ttl", "longest token lifetime accepted per role, as role=duration,... (tokens living longer are refused)")
	fs.StringVar(&c.metricsToken, "metrics-token", "", "bearer token Prometheus must send to read /metrics (empty: /metrics is open)")
	fs.IntVar(&c.maxConnsPerIP, "http-max-conns-per-ip", 256, "most TCP connections one client address may hold open (0: no cap)")
	// A reverse proxy or ingress in front of the node (on loopback or a
	// private network) carries every client's connections from one address:
	// the cap is for clients reaching the node directly.
	c.connLimitExempt = listFlag{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"}
	fs.Var(&c.connLimitExempt, "http-conn-limit-exempt", "addresses (CIDR) the per-address cap does not apply to, added to the default loopback and private ranges where proxies live (\"none\" first clears the list)")

	fs.IntVar(&c.iceUDPPort, "ice-udp-port", 7882, "UDP port shared by every WebRTC connection (0: any free port)")
	fs.BoolVar(&c.unbatched, "udp-unbatched", false, "send each media datagram with its own sendto instead of sendmmsg batches (to compare them)")
	fs.BoolVar(&c.noGSO, "udp-no-gso", false, "send each batched datagram as its own message instead of cutting a classroom's back-to-back datagrams with UDP GSO (to compare them)")
	fs.IntVar(&c.iceTCPPort, "ice-tcp-port", 7881, "TCP port for ICE over TCP (0: any free port, -1: off)")
	fs.Var(&c.publicIPs, "public-ip", "public IP address(es) to advertise in ICE candidates (1:1 NAT); repeat or comma-separate")
	fs.StringVar(&c.bindIP, "bind-ip", "", "address the media ports listen on (default: all)")
	fs.BoolVar(&c.turnEnabled, "turn-enabled", false, "run the embedded TURN server for classrooms behind strict firewalls")
	fs.IntVar(&c.turnUDPPort, "turn-udp-port", 3478, "TURN UDP port (0: any free port)")
	fs.IntVar(&c.turnTCPPort, "turn-tcp-port", 3478, "TURN TCP port (0: any free port)")
	fs.StringVar(&c.turnRealm, "turn-realm", "podium", "TURN realm")
	fs.BoolVar(&c.singlePort, "single-port", false, "serve ICE over TCP and the embedded TURN (over TCP, and over TLS with --tls-cert) on the HTTP port too, told apart by their first bytes, for schools whose firewall lets only TCP 443 out; turns the embedded TURN on (--ice-tcp-port and --turn-tcp-port are then unused)")

	registerDBFlags(fs)
	registerStorageFlags(fs)
	registerRecorderFlags(fs)
	registerIngestFlags(fs)
	registerVodFlags(fs)
	registerClusterFlags(fs)
	return fs, c
}

// parseServe reads serve's configuration from args, the environment and
// the --config file, and validates it.
func parseServe(args []string, getenv func(string) string, stderr io.Writer) (*serveConfig, error) {
	fs, c := serveFlags(stderr)
	if err := loadConfig(fs, args, "config", getenv); err != nil {
		return nil, err
	}
	return c, c.validate()
}

func (c *serveConfig) validate() error {
	var errs []error
	if err := checkListenAddr("http-addr", c.httpAddr); err != nil {
		errs = append(errs, err)
	}
	if c.secret != "" && len(c.secret) < auth.MinSecretLen {
		errs = append(errs, fmt.Errorf("--secret must be at least %d characters", auth.MinSecretLen))
	}
	if c.dataDir == "" {
		errs = append(errs, errors.New("--data-dir must not be empty"))
	}
	if _, err := parseLogLevel(c.logLevel); err != nil {
		errs = append(errs, err)
	}
	if c.publicURL != "" {
		if u, err := url.Parse(c.publicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("--public-url: %q is not an http(s) URL", c.publicURL))
		}
	}
	if c.drainTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--drain-timeout must be positive, got %s", c.drainTimeout))
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	for _, p := range []struct {
		name    string
		port    int
		disable bool
	}{{"ice-udp-port", c.iceUDPPort, false}, {"ice-tcp-port", c.iceTCPPort, true},
		{"turn-udp-port", c.turnUDPPort, false}, {"turn-tcp-port", c.turnTCPPort, false}} {
		if err := checkPort(p.name, p.port, p.disable); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ip := range c.publicIPs {
		if net.ParseIP(ip) == nil {
			errs = append(errs, fmt.Errorf("--public-ip: %q is not an IP address", ip))
		}
	}
	if c.bindIP != "" && net.ParseIP(c.bindIP) == nil {
		errs = append(errs, fmt.Errorf("--bind-ip: %q is not an IP address", c.bindIP))
	}
	if c.metricsToken != "" && len(c.metricsToken) < 16 {
		errs = append(errs, errors.New("--metrics-token must be at least 16 characters"))
	}
	if c.maxConnsPerIP < 0 {
		errs = append(errs, fmt.Errorf("--http-max-conns-per-ip must not be negative, got %d", c.maxConnsPerIP))
	}
	for _, p := range c.connLimitExempt {
		if _, err := netip.ParsePrefix(p); err != nil {
			errs = append(errs, fmt.Errorf("--http-conn-limit-exempt: %q is not a CIDR prefix", p))
		}
	}
	return errors.Join(errs...)
}

func parseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level: %q is not debug, info, warn or error", s)
	}
	return l, nil
}

// secretFile is where a generated secret is kept between runs.
func secretFile(dataDir string) string { return filepath.Join(dataDir, "secret") }

// loadOrCreateSecret returns the secret kept in the data dir, generating
// and persisting one on first start so tokens survive restarts.
func loadOrCreateSecret(dataDir string) (secret string, created bool, err error) {
	b, err := os.ReadFile(secretFile(dataDir))
	if err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) < auth.MinSecretLen {
			return "", false, fmt.Errorf("%s holds a secret shorter than %d characters", secretFile(dataDir), auth.MinSecretLen)
		}
		return s, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("read secret: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return "", false, fmt.Errorf("create data dir: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", false, fmt.Errorf("generate secret: %w", err)
	}
	s := hex.EncodeToString(raw)
	if err := os.WriteFile(secretFile(dataDir), []byte(s+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("persist secret: %w", err)
	}
	return s, true, nil
}

// derive makes a separate key for another use of the secret (TURN), so
// leaking one does not leak the other.
func derive(secret, purpose string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(purpose))
	return hex.EncodeToString(m.Sum(nil))
}

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c, err := parseServe(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "podium serve: bad configuration:\n  %s\n", strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return 2
	}
	level, _ := parseLogLevel(c.logLevel)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log) // parts that log without a logger of their own (replaydb's migrations)
	if err := serve(ctx, c, log); err != nil {
		log.Error("podium stopped", "err", err)
		return 1
	}
	return 0
}

// built is a wired node before it listens: its parts, its HTTP handler and
// its router (whose routes the access tests walk).
type built struct {
	app          *app
	sig          *signaling.Server
	closeSFU     func()
	secretSource string
	ready        *atomic.Bool
	draining     *atomic.Bool
}

// build wires every part of a node. shared is the node's one port in
// --single-port mode (nil otherwise): the sfu takes its ICE-TCP and TURN
// listeners from it. On error, what was built is closed.
func build(c *serveConfig, log *slog.Logger, shared *portmux.Mux) (_ *built, err error) {
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	// Recordings of children, the secret and the database live here: only
	// podium's user may read them, also in a directory made by someone else.
	if err := os.Chmod(c.dataDir, 0o700); err != nil {
		log.Warn("cannot make the data dir private", "dir", c.dataDir, "err", err)
	}
	secretSource := "--secret"
	if c.secret == "" {
		s, created, err := loadOrCreateSecret(c.dataDir)
		if err != nil {
			return nil, err
		}
		c.secret = s
		secretSource = secretFile(c.dataDir)
		if created {
			secretSource += " (generated now)"
		}
	}
	issuer, err := auth.NewIssuer(c.secret)
	if err != nil {
		return nil, err
	}
	issuer.SetMaxTTL(c.tokenMaxTTL)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a := &app{log: log, reg: reg, mux: http.NewServeMux(), issuer: issuer}
	b := &built{app: a, secretSource: secretSource, ready: new(atomic.Bool), draining: new(atomic.Bool)}
	// The router is made before any part is wired; it counts refusals in
	// the signaling metrics once signaling exists.
	a.routes = auth.NewRouter(a.mux, issuer, func(reason string) {
		if b.sig != nil {
			b.sig.AuthFailure(reason)
		}
	})
	// Closers run even when wiring fails half-way.
	defer func() {
		if err != nil {
			if b.closeSFU != nil {
				b.closeSFU()
			}
			runClosers(context.Background(), a, log)
		}
	}()

	if err := wireDB(a, c.dataDir); err != nil {
		return nil, fmt.Errorf("replay database: %w", err)
	}
	if err := wireStorage(a); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	sc := sfu.Config{
		ICEUDPPort: c.iceUDPPort, ICETCPPort: c.iceTCPPort, PublicIPs: c.publicIPs, BindIP: c.bindIP, UnbatchedSends: c.unbatched, NoGSO: c.noGSO,
		EmptyLessonGrace: c.emptyLessonGrace,
		TURN: sfu.TURNConfig{Enabled: c.turnEnabled, UDPPort: c.turnUDPPort, TCPPort: c.turnTCPPort,
			Realm: c.turnRealm, Secret: derive(c.secret, "turn")},
	}
	if shared != nil {
		useSharedPort(&sc, c, shared)
	}
	s, err := sfu.New(sc, log.With("part", "sfu"), reg)
	if err != nil {
		return nil, fmt.Errorf("sfu: %w", err)
	}
	a.sfu = s
	var once sync.Once
	b.closeSFU = func() {
		once.Do(func() {
			if err := s.Close(); err != nil {
				log.Warn("sfu close", "err", err)
			}
		})
	}
	for _, w := range []struct {
		name string
		fn   func(*app) error
	}{{"recorder", wireRecorder}, {"ingest", wireIngest}, {"vod", wireVod}, {"cluster", wireCluster}} {
		if err := w.fn(a); err != nil {
			return nil, fmt.Errorf("%s: %w", w.name, err)
		}
	}
	b.sig, err = signaling.New(signaling.Config{SFU: s, Issuer: issuer, Log: log, Registerer: reg,
		Revocations: a.revocations, Audit: a.audit})
	if err != nil {
		return nil, err
	}
	b.sig.Mount(a.routes)
	// Lessons this node had live when it stopped (a crash, a restart)
	// come back before it serves, so their classrooms rejoin at once;
	// every part has its room hooks by now (the recorder resumes them).
	resumed, err := s.Rooms.ResumeLessons(filepath.Join(c.dataDir, "live-lessons.json"))
	if err != nil {
		log.Warn("lessons of the last run not resumed", "err", err)
	} else if len(resumed) > 0 {
		log.Info("lessons resumed after a restart", "lessons", resumed)
	}
	a.routes.Handle("GET /metrics", auth.PublicScope(), metricsHandler(reg, c.metricsToken))
	a.routes.HandleFunc("GET /healthz", auth.PublicScope(), func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "alive"})
	})
	// started tells one run of the node from the next: a restart quicker
	// than a probe's interval still shows (the load tool's --reconnect
	// measures recovery from it).
	started := time.Now().UTC().Format(time.RFC3339Nano)
	a.routes.HandleFunc("GET /readyz", auth.PublicScope(), func(w http.ResponseWriter, r *http.Request) {
		switch {
		case b.draining.Load():
			httpx.WriteError(w, http.StatusServiceUnavailable, "draining", "server is shutting down")
		case !b.ready.Load():
			httpx.WriteError(w, http.StatusServiceUnavailable, "starting", "server is starting")
		default:
			httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready", "started": started})
		}
	})
	a.routes.Handle("/", auth.PublicScope(), clients.Handler())
	return b, nil
}

// useSharedPort gives the sfu its ICE-TCP and TURN listeners from the
// node's one port. A school that lets only TCP 443 out reaches the node by
// ICE-TCP where its browser gathers TCP candidates, else only through
// TURN over TCP or TLS: so the embedded TURN is on in this mode.
func useSharedPort(sc *sfu.Config, c *serveConfig, shared *portmux.Mux) {
	sc.ICETCPListener = shared.Listener(portmux.RouteICETCP)
	sc.TURN.Enabled = true
	sc.TURN.TCPListener = shared.Listener(portmux.RouteTURN)
	if c.tlsCert == "" {
		// Nothing serves it: its connections are then closed, not held.
		_ = shared.Listener(portmux.RouteTURNTLS).Close()
		return
	}
	sc.TURN.TLSListener = shared.Listener(portmux.RouteTURNTLS)
	// turns: URLs name the host of the public URL, which the certificate
	// names too: a browser checks a TURN server's certificate.
	if u, err := url.Parse(c.publicURL); err == nil && u.Hostname() != "" {
		sc.TURN.TLSHost = u.Hostname()
	}
}

// handler is the node's whole HTTP handler.
func (b *built) handler() http.Handler { return clusterFront(b.app.mux) }

// close stops what build started (for a node that never served).
func (b *built) close(ctx context.Context) {
	b.app.startDrain()
	if err := b.sig.Shutdown(ctx); err != nil {
		b.app.log.Warn("signaling drain incomplete", "err", err)
	}
	b.closeSFU()
	runClosers(ctx, b.app, b.app.log)
}

// serve builds the app, serves until ctx ends, then drains.
func serve(ctx context.Context, c *serveConfig, log *slog.Logger) error {
	// The port is open before the parts are built: in --single-port mode
	// the sfu's ICE-TCP and TURN listen on it.
	ln, refused, err := listenHTTP(c)
	if err != nil {
		return err
	}
	shared, httpLn, err := sharePort(c, ln, log)
	if err != nil {
		_ = ln.Close()
		return err
	}
	closePort := func() {
		if shared != nil {
			_ = shared.Close()
		} else {
			_ = ln.Close()
		}
	}
	b, err := build(c, log, shared)
	if err != nil {
		closePort()
		return err
	}
	a, sig, ready, draining, secretSource, reg := b.app, b.sig, b.ready, b.draining, b.secretSource, b.app.reg
	started := false
	defer func() {
		if !started {
			b.close(context.Background())
			closePort()
		}
	}()
	reg.MustRegister(refused)

	srv := &http.Server{Handler: b.handler(), ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		// A client that trickles its headers or body, or idles on a
		// keep-alive connection, does not keep a descriptor for long.
		// Websockets are hijacked (gorilla clears the deadlines) and
		// downloads have no write timeout.
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 90 * time.Second}
	if shared != nil {
		// The shared port terminated TLS already; requests it read into
		// to route them get their r.TLS back here.
		srv.Handler = portmux.WithTLSState(srv.Handler)
		srv.ConnContext = portmux.ConnContext
	}
	serveErr := make(chan error, 1)
	go func() {
		if c.tlsCert != "" && shared == nil {
			serveErr <- srv.ServeTLS(httpLn, c.tlsCert, c.tlsKey)
		} else {
			serveErr <- srv.Serve(httpLn)
		}
	}()
	ready.Store(true)
	started = true
	base := c.publicURL
	if base == "" {
		scheme := "http"
		if c.tlsCert != "" {
			scheme = "https"
		}
		host, port, _ := net.SplitHostPort(ln.Addr().String())
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			host = "localhost"
		}
		base = scheme + "://" + net.JoinHostPort(host, port)
	}
	log.Info("podium listening", "addr", ln.Addr().String(), "url", base, "data_dir", c.dataDir, "secret", secretSource)
	log.Info("get a token: podium token --data-dir "+c.dataDir+" --room demo --role teacher --name Teacher",
		"teacher_page", base+"/teacher.html", "classroom_page", base+"/classroom.html")

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "drain_timeout", c.drainTimeout)
	case err := <-serveErr:
		runErr = fmt.Errorf("http server: %w", err)
	}

	// Drain: readyz goes 503, clients are told, parts stop in reverse.
	draining.Store(true)
	a.startDrain()
	dctx, cancel := context.WithTimeout(context.Background(), c.drainTimeout)
	defer cancel()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		if err := sig.Shutdown(dctx); err != nil {
			log.Warn("signaling drain incomplete", "err", err)
		}
		if err := srv.Shutdown(dctx); err != nil {
			log.Warn("http shutdown incomplete", "err", err)
			_ = srv.Close()
		}
		b.closeSFU()
		runClosers(dctx, a, log)
		// Last: ICE-TCP and TURN connections came through it until the
		// sfu closed.
		closePort()
	}()
	// The drain is bounded whatever a part does: an operator's SIGTERM must
	// end the process. Nothing recorded is lost by giving up here: closed
	// segments wait in the spool and are uploaded at the next start.
	select {
	case <-drained:
	case <-time.After(c.drainTimeout + drainGrace):
		log.Error("drain did not finish in time; exiting anyway", "drain_timeout", c.drainTimeout)
		if runErr == nil {
			runErr = errors.New("drain did not finish within --drain-timeout")
		}
	}
	ready.Store(false)
	log.Info("podium stopped")
	return runErr
}

// drainGrace is how long past --drain-timeout serve waits for the parts to
// stop before it gives up on them.
const drainGrace = 5 * time.Second

// runClosers runs the parts' closers in reverse order of registration.
func runClosers(ctx context.Context, a *app, log *slog.Logger) {
	for i := len(a.closers) - 1; i >= 0; i-- {
		if err := a.closers[i](ctx); err != nil {
			log.Warn("closing a part", "err", err)
		}
	}
	a.closers = nil
}

// metricsHandler serves Prometheus metrics, behind a bearer token when one
// is configured (compared in constant time).
func metricsHandler(reg *prometheus.Registry, token string) http.Handler {
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			httpx.WriteError(w, http.StatusUnauthorized, "unauthorized", "/metrics needs the --metrics-token as a bearer token")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// sharePort puts the portmux on the HTTP listener in --single-port mode
// and returns the listener HTTP is served on (ln itself otherwise).
func sharePort(c *serveConfig, ln net.Listener, log *slog.Logger) (*portmux.Mux, net.Listener, error) {
	if !c.singlePort {
		return nil, ln, nil
	}
	var tc *tls.Config
	if c.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
		if err != nil {
			return nil, nil, fmt.Errorf("--single-port: load --tls-cert and --tls-key: %w", err)
		}
		tc = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	m := portmux.New(ln, portmux.Config{TLS: tc, Log: log.With("part", "portmux")})
	log.Info("one port for HTTP, ICE-TCP and TURN", "addr", ln.Addr().String(), "turn_tls", tc != nil)
	return m, m.Listener(portmux.RouteHTTP), nil
}

// listenHTTP opens the HTTP listener with the per-address connection cap
// and returns the cap's refusal counter, registered by the caller once
// the node's registry exists.
//
// In --single-port mode the cap wraps the shared port, before the demux,
// so it counts every connection (HTTP, ICE-TCP, TURN and those still
// sending their first bytes): it is there to keep one address from taking
// all the descriptors, and each of them takes one. A school behind one NAT
// address uses a few per classroom (pages, websocket, two ICE or TURN
// connections), far under the default 256.
func listenHTTP(c *serveConfig) (net.Listener, prometheus.Counter, error) {
	ln, err := net.Listen("tcp", c.httpAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen %s: %w", c.httpAddr, err)
	}
	var exempt []netip.Prefix
	for _, p := range c.connLimitExempt {
		exempt = append(exempt, netip.MustParsePrefix(p)) // validated
	}
	refused := prometheus.NewCounter(prometheus.CounterOpts{Name: "podium_http_connections_refused_total",
		Help: "TCP connections closed at accept because their address held --http-max-conns-per-ip already."})
	// A TLS client cannot read a plain answer, and on the shared port a
	// refused connection may be ICE or TURN (it has sent nothing yet).
	plainHTTP := c.tlsCert == "" && !c.singlePort
	return connlimit.New(ln, connlimit.Config{MaxPerIP: c.maxConnsPerIP, Exempt: exempt, OnRefuse: refused.Inc,
		Refuse: func(conn net.Conn) {
			if !plainHTTP {
				return
			}
			_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
			body := `{"error":"too many connections from your address","code":"too_many_connections"}`
			_, _ = fmt.Fprintf(conn, "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
		}}), refused, nil
}
