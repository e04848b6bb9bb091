package connlimit

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// serve accepts on l until it is closed, handing each connection to keep.
func serve(t *testing.T, l *Listener) <-chan net.Conn {
	t.Helper()
	accepted := make(chan net.Conn, 16)
	go func() {
		defer close(accepted)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	return accepted
}

func dial(t *testing.T, addr string, from string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refused reports whether the server answered the refusal and closed c.
func refused(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	return err == nil && string(b) == "no"
}

func TestCapPerAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusals := 0
	l := New(ln, Config{MaxPerIP: 2, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")},
		Refuse: func(c net.Conn) { _, _ = c.Write([]byte("no")) }, OnRefuse: func() { refusals++ }})
	defer l.Close()
	accepted := serve(t, l)
	addr := ln.Addr().String()

	a1, a2 := dial(t, addr, "127.0.0.1"), dial(t, addr, "127.0.0.1")
	s1, s2 := <-accepted, <-accepted
	_, _ = a1, a2
	if got := l.Open(netip.MustParseAddr("127.0.0.1")); got != 2 {
		t.Fatalf("open from 127.0.0.1 = %d, want 2", got)
	}
	if !refused(dial(t, addr, "127.0.0.1")) {
		t.Fatal("a third connection from the same address was not refused")
	}
	// Another address has its own count; an exempt one has none.
	dial(t, addr, "127.0.0.2")
	<-accepted
	for range 4 {
		dial(t, addr, "127.0.0.3")
		<-accepted
	}
	// Closing one (server side) frees a slot.
	s1.Close()
	dial(t, addr, "127.0.0.1")
	select {
	case <-accepted:
	case <-time.After(2 * time.Second):
		t.Fatal("a connection after one closed was not accepted")
	}
	s2.Close()
	if refusals != 1 {
		t.Errorf("%d refusals counted, want 1", refusals)
	}
}
