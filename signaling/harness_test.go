package signaling

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"podium/clients/goclient"
	"podium/sfu"
	"podium/signaling/auth"
)

const testSecret = "signaling-test-secret-0123456789"

// testServer is a real sfu (media on 127.0.0.1) behind a real signaling
// server on an httptest listener.
type testServer struct {
	URL    string
	SFU    *sfu.SFU
	Sig    *Server
	Issuer *auth.Issuer
	Reg    *prometheus.Registry
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := sfu.New(sfu.Config{ICEUDPPort: 0, ICETCPPort: -1, BindIP: "127.0.0.1"}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := auth.NewIssuer(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := New(Config{SFU: s, Issuer: iss, Registerer: reg, QualityInterval: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	sig.Mount(auth.NewRouter(mux, iss, sig.AuthFailure))
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = sig.Shutdown(ctx)
		hs.Close()
		_ = s.Close()
	})
	return &testServer{URL: hs.URL, SFU: s, Sig: sig, Issuer: iss, Reg: reg}
}

func (ts *testServer) token(t *testing.T, room string, role sfu.Role, name string) string {
	t.Helper()
	tok, _, err := ts.Issuer.Issue(auth.Request{Room: room, Role: role, Name: name, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (ts *testServer) dial(t *testing.T, room string, role sfu.Role, name string, opts goclient.Options) *goclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := goclient.Dial(ctx, ts.URL, ts.token(t, room, role, name), opts)
	if err != nil {
		t.Fatalf("dial as %s %s: %v", role, name, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func (ts *testServer) join(t *testing.T, room string, role sfu.Role, name string, opts goclient.Options) (*goclient.Client, *goclient.Joined) {
	t.Helper()
	c := ts.dial(t, room, role, name, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	j, err := c.Join(ctx, true)
	if err != nil {
		t.Fatalf("join as %s %s: %v", role, name, err)
	}
	return c, j
}

// testCtx bounds a whole test's requests: a deadline for a hung test, not
// a measure of speed (a loaded machine takes well over 20 s for a lesson's
// worth of joins and negotiations).
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// waitEvent reads c's events until one of type typ satisfies match.
func waitEvent(t *testing.T, c *goclient.Client, typ string, match func(json.RawMessage) bool) json.RawMessage {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case m, ok := <-c.Events():
			if !ok {
				t.Fatalf("connection closed while waiting for %s", typ)
			}
			if m.Type == typ && (match == nil || match(m.Data)) {
				return m.Data
			}
		case <-deadline:
			t.Fatalf("no %s event within 20 s", typ)
		}
	}
}
