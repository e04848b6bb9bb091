// Package connlimit caps the TCP connections one client address may hold
// open on a listener, so that one misbehaving host (or attacker) cannot
// exhaust the server's file descriptors and starve everyone else.
package connlimit

import (
	"net"
	"net/netip"
	"sync"
)

// Listener wraps a net.Listener with a per-address cap.
type Listener struct {
	net.Listener
	max     int
	exempt  []netip.Prefix
	refuse  func(net.Conn) // answers a refused connection before it is closed
	refused func()         // counts a refusal (metrics)

	mu   sync.Mutex
	open map[netip.Addr]int
}

// Config tunes a Listener.
type Config struct {
	// MaxPerIP is the most connections one address may hold (0: no cap).
	MaxPerIP int
	// Exempt addresses are not capped (a reverse proxy in front, loopback).
	Exempt []netip.Prefix
	// Refuse writes an answer on a refused connection (nil: just close).
	Refuse func(net.Conn)
	// OnRefuse is called for each refusal (nil: nothing).
	OnRefuse func()
}

// New wraps ln.
func New(ln net.Listener, cfg Config) *Listener {
	if cfg.Refuse == nil {
		cfg.Refuse = func(net.Conn) {}
	}
	if cfg.OnRefuse == nil {
		cfg.OnRefuse = func() {}
	}
	return &Listener{Listener: ln, max: cfg.MaxPerIP, exempt: cfg.Exempt, refuse: cfg.Refuse, refused: cfg.OnRefuse, open: map[netip.Addr]int{}}
}

// Accept returns the next connection within its address's cap; connections
// over it are answered, closed and not returned.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr, capped := l.key(c)
		if !capped {
			return c, nil
		}
		l.mu.Lock()
		over := l.open[addr] >= l.max
		if !over {
			l.open[addr]++
		}
		l.mu.Unlock()
		if over {
			l.refused()
			l.refuse(c)
			_ = c.Close()
			continue
		}
		return &conn{Conn: c, release: func() { l.release(addr) }}, nil
	}
}

// Open is how many capped connections addr holds now.
func (l *Listener) Open(addr netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open[addr]
}

func (l *Listener) key(c net.Conn) (netip.Addr, bool) {
	if l.max <= 0 {
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}, false
	}
	addr := ap.Addr().Unmap()
	for _, p := range l.exempt {
		if p.Contains(addr) {
			return netip.Addr{}, false
		}
	}
	return addr, true
}

func (l *Listener) release(addr netip.Addr) {
	l.mu.Lock()
	if l.open[addr]--; l.open[addr] <= 0 {
		delete(l.open, addr)
	}
	l.mu.Unlock()
}

type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
