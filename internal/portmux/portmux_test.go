package portmux

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"podium/internal/testenv"
)

// stunBinding is a STUN binding request header with no attributes.
func stunBinding() []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:2], 0x0001)
	binary.BigEndian.PutUint32(b[4:8], stunMagicCookie)
	copy(b[8:], "txid-123456\x00")
	return b
}

// framed is b in an RFC 4571 frame.
func framed(b []byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)
}

func TestClassify(t *testing.T) {
	hello := []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03}
	for _, tc := range []struct {
		name    string
		b       []byte
		withTLS bool
		want    Route
		tls     bool
	}{
		{"http request", []byte("GET / HTTP/1.1\r\n"), true, RouteHTTP, false},
		{"tls hello with tls", hello, true, RouteHTTP, true},
		{"tls hello without tls", hello, false, RouteHTTP, false},
		{"rfc4571 stun", framed(stunBinding()), true, RouteICETCP, false},
		{"bare stun", stunBinding(), true, RouteTURN, false},
		{"stun without cookie", append([]byte{0, 1, 0, 0, 1, 2, 3, 4}, make([]byte, 12)...), true, RouteHTTP, false},
		{"stun with top bits set", append([]byte{0xc0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42}, make([]byte, 12)...), true, RouteHTTP, false},
		{"garbage", []byte{0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8, 0xf7, 0xf6}, true, RouteHTTP, false},
		{"empty", nil, true, RouteHTTP, false},
		{"short", []byte{0x00, 0x14}, true, RouteHTTP, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, isTLS := Classify(tc.b, tc.withTLS)
			if r != tc.want || isTLS != tc.tls {
				t.Errorf("Classify = %s, tls %v; want %s, tls %v", r, isTLS, tc.want, tc.tls)
			}
		})
	}
	for _, tc := range []struct {
		alpn      string
		inner     []byte
		want      Route
		needsPeek bool
	}{
		{"h2", nil, RouteHTTP, false},
		{"http/1.1", nil, RouteHTTP, false},
		{"stun.turn", nil, RouteTURNTLS, false},
		{"", nil, RouteHTTP, true},
		{"", stunBinding()[:8], RouteTURNTLS, false},
		{"", []byte("GET / HT"), RouteHTTP, false},
	} {
		r, needsPeek := ClassifyTLS(tc.alpn, tc.inner)
		if r != tc.want || needsPeek != tc.needsPeek {
			t.Errorf("ClassifyTLS(%q, %q) = %s, %v; want %s, %v", tc.alpn, tc.inner, r, needsPeek, tc.want, tc.needsPeek)
		}
	}
}

// newTestMux starts a Mux with TLS on 127.0.0.1 and returns it with a
// pool trusting its certificate; it is closed when the test ends.
func newTestMux(t *testing.T, peekTimeout time.Duration) (*Mux, *x509.CertPool) {
	t.Helper()
	certFile, keyFile, roots := testenv.TestCert(t)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := New(ln, Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, PeekTimeout: peekTimeout})
	t.Cleanup(func() { _ = m.Close() })
	return m, roots
}

// serveEcho accepts on l and answers every connection with what its first
// n bytes were, prefixed by whether it is TLS, until l closes.
func serveEcho(l net.Listener, n int) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			b := make([]byte, n)
			if _, err := io.ReadFull(c, b); err != nil {
				return
			}
			_, isTLS := c.(interface{ ConnectionState() tls.ConnectionState })
			fmt.Fprintf(c, "tls=%v %x", isTLS, b)
		}()
	}
}

// exchange sends b on c and returns everything c answers until it closes.
func exchange(t *testing.T, c net.Conn, b []byte) string {
	t.Helper()
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(got)
}

func TestMuxRoutesByFirstBytes(t *testing.T) {
	m, roots := newTestMux(t, 0)
	srv := &http.Server{
		Handler: WithTLSState(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "tls=%v proto=%s", r.TLS != nil, r.Proto)
		})),
		ConnContext: ConnContext,
	}
	go srv.Serve(m.Listener(RouteHTTP))
	t.Cleanup(func() { _ = srv.Close() })
	go serveEcho(m.Listener(RouteICETCP), 22)
	go serveEcho(m.Listener(RouteTURN), 20)
	go serveEcho(m.Listener(RouteTURNTLS), 20)
	addr := m.Addr().String()
	if m.Listener(RouteICETCP).Addr().String() != addr {
		t.Errorf("child address %s, want the shared %s", m.Listener(RouteICETCP).Addr(), addr)
	}
	dial := func(t *testing.T) net.Conn {
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	dialTLS := func(t *testing.T, alpn ...string) net.Conn {
		c, err := tls.Dial("tcp4", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: alpn})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	get := "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

	t.Run("plain http", func(t *testing.T) {
		if got := exchange(t, dial(t), []byte(get)); !strings.Contains(got, "tls=false proto=HTTP/1.1") {
			t.Errorf("answer %q", got)
		}
	})
	t.Run("https with alpn http/1.1", func(t *testing.T) {
		if got := exchange(t, dialTLS(t, "http/1.1"), []byte(get)); !strings.Contains(got, "tls=true proto=HTTP/1.1") {
			t.Errorf("answer %q", got)
		}
	})
	t.Run("https with alpn h2", func(t *testing.T) {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}}
		defer client.CloseIdleConnections()
		resp, err := client.Get("https://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if string(body) != "tls=true proto=HTTP/2.0" {
			t.Errorf("answer %q", body)
		}
	})
	t.Run("https without alpn", func(t *testing.T) {
		if got := exchange(t, dialTLS(t), []byte(get)); !strings.Contains(got, "tls=true proto=HTTP/1.1") {
			t.Errorf("answer %q", got)
		}
	})
	t.Run("ice-tcp", func(t *testing.T) {
		msg := framed(stunBinding())
		if got, want := exchange(t, dial(t), msg), fmt.Sprintf("tls=false %x", msg); got != want {
			t.Errorf("ICE-TCP child got %q, want %q", got, want)
		}
	})
	t.Run("turn over tcp", func(t *testing.T) {
		msg := stunBinding()
		if got, want := exchange(t, dial(t), msg), fmt.Sprintf("tls=false %x", msg); got != want {
			t.Errorf("TURN child got %q, want %q", got, want)
		}
	})
	t.Run("turn over tls without alpn", func(t *testing.T) {
		msg := stunBinding()
		if got, want := exchange(t, dialTLS(t), msg), fmt.Sprintf("tls=true %x", msg); got != want {
			t.Errorf("TURN-TLS child got %q, want %q", got, want)
		}
	})
	t.Run("turn over tls with alpn stun.turn", func(t *testing.T) {
		msg := stunBinding()
		if got, want := exchange(t, dialTLS(t, "stun.turn"), msg), fmt.Sprintf("tls=true %x", msg); got != want {
			t.Errorf("TURN-TLS child got %q, want %q", got, want)
		}
	})
	t.Run("garbage goes to http", func(t *testing.T) {
		if got := exchange(t, dial(t), []byte("\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\r\n\r\n")); !strings.HasPrefix(got, "HTTP/1.1 400") {
			t.Errorf("answer %q, want a 400", got)
		}
	})
}

// waitClosedByServer reads c until the server closes it (EOF or reset),
// failing when the generous deadline passes first.
func waitClosedByServer(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server kept the connection open")
	}
}

func TestMuxClosesClientsItCannotRoute(t *testing.T) {
	m, _ := newTestMux(t, 300*time.Millisecond)
	// TURN over TCP is not served here: its conns must be closed, not held.
	_ = m.Listener(RouteTURN).Close()
	dial := func(t *testing.T) net.Conn {
		c, err := net.Dial("tcp4", m.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"silent", nil},
		{"one byte then stall", []byte{'G'}},
		{"tls record then stall", []byte{0x16, 0x03, 0x01}},
		{"garbage tls handshake", append([]byte{0x16, 0x03, 0x01, 0x00, 0x05}, []byte("hello world")...)},
		{"route nobody serves", stunBinding()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t)
			if _, err := c.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			waitClosedByServer(t, c)
		})
	}
	// A TLS client that completes the handshake and then says nothing.
	t.Run("silent inside tls", func(t *testing.T) {
		c, err := tls.Dial("tcp4", m.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		waitClosedByServer(t, c)
	})
}

func TestMuxCloseStopsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := New(ln, Config{PeekTimeout: time.Minute})
	accepted := make(chan error, 1)
	go func() {
		_, err := m.Listener(RouteHTTP).Accept()
		accepted <- err
	}()
	// One client stalls in classification, one waits for a child nobody
	// accepts from.
	stalled, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	waiting, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer waiting.Close()
	if _, err := waiting.Write(framed(stunBinding())); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "both connections accepted", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.pending) == 1 // the framed one left classification
	})

	if err := m.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case err := <-accepted:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Accept still waits after Close")
	}
	waitClosedByServer(t, stalled)
	waitClosedByServer(t, waiting)
	if _, err := net.Dial("tcp4", ln.Addr().String()); err == nil {
		t.Error("the shared port still accepts after Close")
	}
	if err := m.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	testenv.WaitFor(t, 20*time.Second, "the mux's goroutines gone", func() bool { return runtime.NumGoroutine() <= before })
}

// TestReplayConnReadsHeadFirst: the peeked bytes come back before the
// rest, also to a reader with a small buffer.
func TestReplayConnReadsHeadFirst(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	go func() { _, _ = b.Write([]byte("rest")); b.Close() }()
	c := &replayConn{Conn: a, head: []byte("head-")}
	var got bytes.Buffer
	buf := make([]byte, 3)
	for {
		n, err := c.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if got.String() != "head-rest" {
		t.Errorf("read %q, want head-rest", got.String())
	}
}
