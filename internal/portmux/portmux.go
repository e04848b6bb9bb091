// Package portmux shares one TCP port between HTTP(S), ICE over TCP and TURN
// over TCP and TLS, telling them apart by their first bytes, so a school
// whose firewall lets only TCP 443 out reaches everything on one port.
//
// A Mux accepts on its parent listener, reads the first bytes of each
// connection under a short deadline, and hands the connection, with those
// bytes replayed, to one of its child listeners:
//
//   - a TLS handshake record (first byte 0x16) when TLS is configured is
//     terminated here; then ALPN decides (h2, http/1.1 → HTTP; stun.turn →
//     TURN over TLS) or, with no ALPN, the first bytes inside the TLS
//     stream (a STUN header → TURN over TLS, anything else → HTTP);
//   - an RFC 4571 frame (2-byte length) holding a STUN message → ICE-TCP;
//   - a bare STUN message → TURN over TCP;
//   - anything else → HTTP (whose server answers garbage with 400).
package portmux

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Route is where a connection goes.
type Route int

const (
	RouteHTTP    Route = iota // pages, websocket, WHIP/WHEP, API
	RouteICETCP               // RFC 4571 framed STUN and media (RFC 6544)
	RouteTURN                 // TURN over TCP (RFC 8656 §3.1)
	RouteTURNTLS              // TURN over TLS, already terminated here
	routeCount
)

func (r Route) String() string {
	switch r {
	case RouteHTTP:
		return "http"
	case RouteICETCP:
		return "ice-tcp"
	case RouteTURN:
		return "turn-tcp"
	case RouteTURNTLS:
		return "turn-tls"
	}
	return fmt.Sprintf("route(%d)", int(r))
}

// peekLen is how many bytes decide a plain connection: an RFC 4571 frame's
// STUN magic cookie ends at offset 2+8. Every protocol here has the client
// speak first and send more than this at once (an HTTP request line, a
// ClientHello, a 20-byte STUN header), so waiting for all of them costs
// nothing; a client that sends fewer is closed at the deadline.
const peekLen = 10

// innerPeekLen decides a TLS stream without ALPN: a STUN header's magic
// cookie ends at offset 8; no HTTP request is shorter.
const innerPeekLen = 8

// stunMagicCookie is at offset 4 of every STUN message (RFC 5389 §6).
const stunMagicCookie = 0x2112A442

// alpnTURN is the ALPN id of STUN/TURN over TLS (RFC 7443).
const alpnTURN = "stun.turn"

// DefaultPeekTimeout is how long a new connection has to send its first
// bytes (and, with TLS, to finish its handshake and send the first bytes
// inside). Long enough for a satellite round trip or three; a silent client
// holds a descriptor no longer than this.
const DefaultPeekTimeout = 5 * time.Second

// isSTUN reports whether b starts like a STUN message: the top two bits of
// the type are zero and the magic cookie follows the length.
func isSTUN(b []byte) bool {
	return len(b) >= 8 && b[0]&0xC0 == 0 && binary.BigEndian.Uint32(b[4:8]) == stunMagicCookie
}

// Classify routes a plain connection by its first bytes (at least peekLen
// of them); tlsConfigured says whether a TLS record is terminated here.
// The second result is true for a TLS handshake to terminate.
func Classify(b []byte, tlsConfigured bool) (r Route, isTLS bool) {
	switch {
	case tlsConfigured && len(b) > 0 && b[0] == 0x16:
		return RouteHTTP, true
	case len(b) >= 2+8 && isSTUN(b[2:]):
		return RouteICETCP, false
	case isSTUN(b):
		return RouteTURN, false
	}
	return RouteHTTP, false
}

// ClassifyTLS routes a terminated TLS connection by its negotiated ALPN
// protocol, or with none by the first bytes inside (nil when not read yet:
// needsPeek is then true).
func ClassifyTLS(alpn string, inner []byte) (r Route, needsPeek bool) {
	switch alpn {
	case "h2", "http/1.1":
		return RouteHTTP, false
	case alpnTURN:
		return RouteTURNTLS, false
	}
	if inner == nil {
		return RouteHTTP, true
	}
	if isSTUN(inner) {
		return RouteTURNTLS, false
	}
	return RouteHTTP, false
}

// Config tunes a Mux.
type Config struct {
	// TLS, when set, terminates TLS handshakes (it needs Certificates or
	// GetCertificate). Its NextProtos are replaced by h2, http/1.1 and
	// stun.turn. Nil: a TLS record is routed as HTTP like any other bytes.
	TLS *tls.Config
	// PeekTimeout bounds the first bytes and the TLS handshake (0:
	// DefaultPeekTimeout).
	PeekTimeout time.Duration
	// Log gets a debug line per connection closed unclassified (nil:
	// slog.Default()).
	Log *slog.Logger
}

// Mux shares one listener between its child listeners.
type Mux struct {
	parent  net.Listener
	tls     *tls.Config
	timeout time.Duration
	log     *slog.Logger

	children [routeCount]*child
	done     chan struct{} // closed by Close
	wg       sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	pending  map[net.Conn]struct{} // connections being classified
	closeErr error
}

// New starts a Mux on ln: it accepts until Close. Close every child
// listener that nothing serves: connections routed to a closed child are
// closed at once, where an open one nobody accepts from would hold them.
func New(ln net.Listener, cfg Config) *Mux {
	m := &Mux{parent: ln, timeout: cfg.PeekTimeout, log: cfg.Log, done: make(chan struct{}), pending: map[net.Conn]struct{}{}}
	if m.timeout <= 0 {
		m.timeout = DefaultPeekTimeout
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if cfg.TLS != nil {
		m.tls = cfg.TLS.Clone()
		m.tls.NextProtos = []string{"h2", "http/1.1", alpnTURN}
	}
	for r := range m.children {
		m.children[r] = &child{mux: m, route: Route(r), conns: make(chan net.Conn), done: make(chan struct{})}
	}
	m.wg.Add(1)
	go m.acceptLoop()
	return m
}

// Listener is the child listener of a route. Its Addr is the parent's, so
// ICE and TURN advertise the shared port.
func (m *Mux) Listener(r Route) net.Listener { return m.children[r] }

// Addr is the shared port's address.
func (m *Mux) Addr() net.Addr { return m.parent.Addr() }

// Close stops accepting, closes every child listener and every connection
// still being classified, and waits for the Mux's goroutines. Connections
// already handed to a child belong to its server.
func (m *Mux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return m.closeErr
	}
	m.closed = true
	close(m.done)
	m.closeErr = m.parent.Close()
	for c := range m.pending {
		_ = c.Close()
	}
	m.mu.Unlock()
	for _, c := range m.children {
		_ = c.Close()
	}
	m.wg.Wait()
	return m.closeErr
}

func (m *Mux) acceptLoop() {
	defer m.wg.Done()
	var backoff time.Duration
	for {
		c, err := m.parent.Accept()
		if err != nil {
			select {
			case <-m.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of descriptors (EMFILE) and the like: wait as
				// net/http does instead of spinning or giving up.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				m.log.Warn("shared port accept", "err", err, "retry_in", backoff)
				select {
				case <-time.After(backoff):
					continue
				case <-m.done:
					return
				}
			}
			m.log.Error("shared port stopped accepting", "err", err)
			m.closeChildren()
			return
		}
		backoff = 0
		if !m.track(c) {
			_ = c.Close()
			return
		}
		m.wg.Add(1)
		go m.route(c)
	}
}

// isTemporary matches accept errors a server outlives (EMFILE, ENFILE,
// ECONNABORTED), which net reports as temporary.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// closeChildren ends the children's Accept after the parent failed for
// good, so their servers see an error instead of waiting forever.
func (m *Mux) closeChildren() {
	for _, c := range m.children {
		_ = c.Close()
	}
}

// track notes a connection being classified, so Close can end it; false
// once the Mux is closed.
func (m *Mux) track(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.pending[c] = struct{}{}
	return true
}

func (m *Mux) untrack(c net.Conn) {
	m.mu.Lock()
	delete(m.pending, c)
	m.mu.Unlock()
}

// route classifies one connection and hands it over; on any error it
// closes it (a peer's bytes never panic or stop the Mux).
func (m *Mux) route(raw net.Conn) {
	defer m.wg.Done()
	conn, r, err := m.classify(raw)
	m.untrack(raw)
	if err != nil {
		m.log.Debug("shared port: connection closed unclassified", "remote", raw.RemoteAddr().String(), "err", err)
		_ = raw.Close()
		return
	}
	m.children[r].deliver(conn)
}

// classify reads the first bytes under the deadline and returns the
// connection to hand over (bytes replayed, TLS terminated) and its route.
func (m *Mux) classify(raw net.Conn) (net.Conn, Route, error) {
	deadline := time.Now().Add(m.timeout)
	if err := raw.SetReadDeadline(deadline); err != nil {
		return nil, 0, fmt.Errorf("set deadline: %w", err)
	}
	head := make([]byte, peekLen)
	if _, err := io.ReadFull(raw, head); err != nil {
		return nil, 0, fmt.Errorf("read first bytes: %w", err)
	}
	r, isTLS := Classify(head, m.tls != nil)
	if !isTLS {
		if err := raw.SetReadDeadline(time.Time{}); err != nil {
			return nil, 0, fmt.Errorf("clear deadline: %w", err)
		}
		return &replayConn{Conn: raw, head: head}, r, nil
	}
	tc := tls.Server(&replayConn{Conn: raw, head: head}, m.tls)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, 0, fmt.Errorf("tls handshake: %w", err)
	}
	r, needsPeek := ClassifyTLS(tc.ConnectionState().NegotiatedProtocol, nil)
	var conn net.Conn = tc
	if needsPeek {
		// Only clients that offer no ALPN (TURN clients, some scripts)
		// get here; browsers always offer it, so their HTTP is the bare
		// *tls.Conn, from which http.Server fills in r.TLS itself.
		inner := make([]byte, innerPeekLen)
		if _, err := io.ReadFull(tc, inner); err != nil {
			return nil, 0, fmt.Errorf("read first bytes inside tls: %w", err)
		}
		r, _ = ClassifyTLS("", inner)
		conn = &tlsReplayConn{replayConn: replayConn{Conn: tc, head: inner}, tls: tc}
	}
	// The handshake's deadline is on the TLS conn too (it passes it down).
	if err := tc.SetReadDeadline(time.Time{}); err != nil {
		return nil, 0, fmt.Errorf("clear deadline: %w", err)
	}
	return conn, r, nil
}

// replayConn returns the bytes read to classify it before reading on.
// Reads of one connection come from one goroutine (its server's), as
// net.Conn users do; head needs no lock.
type replayConn struct {
	net.Conn
	head []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// tlsReplayConn is a terminated TLS connection read into to classify it.
// http.Server sets r.TLS only for a *tls.Conn; ConnectionState lets
// WithTLSState set it for these (see there).
type tlsReplayConn struct {
	replayConn
	tls *tls.Conn
}

// ConnectionState is the TLS state of the connection.
func (c *tlsReplayConn) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }

type connKey struct{}

// ConnContext is an http.Server ConnContext that keeps the connection in
// the request context for WithTLSState.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// WithTLSState sets r.TLS on requests that came over TLS terminated by a
// Mux without ALPN (http.Server sees a wrapper, not a *tls.Conn, there), so
// a handler asking whether the request is HTTPS gets the right answer.
// The server must set ConnContext.
func WithTLSState(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			if c, ok := r.Context().Value(connKey{}).(*tlsReplayConn); ok {
				st := c.ConnectionState()
				r.TLS = &st
			}
		}
		h.ServeHTTP(w, r)
	})
}

// child is one route's listener, fed by the Mux.
type child struct {
	mux   *Mux
	route Route
	conns chan net.Conn // unbuffered: a connection is the child's once Accept took it

	once sync.Once
	done chan struct{} // closed by Close
}

// deliver hands c to the child's Accept, or closes it when the child or
// the Mux is closed first. It blocks the connection's own goroutine only.
func (l *child) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		_ = c.Close()
	case <-l.mux.done:
		_ = c.Close()
	}
}

func (l *child) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, fmt.Errorf("portmux %s: %w", l.route, net.ErrClosed)
	}
}

// Close closes this child only; the shared port stays open for the others.
func (l *child) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *child) Addr() net.Addr { return l.mux.parent.Addr() }
