package cluster

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"podium/internal/testenv"
)

// testNode is one node of the relay test: a real HTTP server on loopback
// whose own handler answers as the lesson's owner would, wrapped by the
// cluster relay.
type testNode struct {
	id      string
	url     string
	reg     *Registry
	metrics *Metrics
	served  chan string // lesson requests this node served itself
}

// ownerHandler stands in for signaling on one node: a websocket that
// answers every message with "<node>:<message>", and a WHIP-like resource
// (POST creates, DELETE removes) that says which node handled it.
func ownerHandler(n *testNode) http.Handler {
	up := websocket.Upgrader{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		n.served <- "ws"
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			_, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(websocket.TextMessage, []byte(n.id+":"+string(msg))); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("POST /whip/{lesson}", func(w http.ResponseWriter, r *http.Request) {
		n.served <- "whip " + r.PathValue("lesson")
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Location", "/whip/"+r.PathValue("lesson")+"/res-"+n.id)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "answer to "+string(body)+" from "+n.id)
	})
	mux.HandleFunc("DELETE /whip/{lesson}/{res}", func(w http.ResponseWriter, r *http.Request) {
		n.served <- "delete " + r.PathValue("res")
		io.WriteString(w, "deleted "+r.PathValue("res")+" on "+n.id)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, n.id) })
	return mux
}

// lessonFromQuery is the test's LessonFunc for /ws (production reads the
// token's room claim in cmd/podium).
func lessonFromQuery(r *http.Request) (string, bool) {
	if r.URL.Path != "/ws" {
		return "", false
	}
	l := r.URL.Query().Get("lesson")
	return l, l != ""
}

func startRelayNode(t *testing.T, redisAddr, id string, load int) *testNode {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{id: id, url: "http://" + l.Addr().String(), served: make(chan string, 16)}
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	n.metrics = m
	r, err := New(context.Background(), Config{Redis: redisAddr, Node: NodeInfo{ID: id, URL: n.url, Capacity: 100}, Heartbeat: testHeartbeat}, &fakeLoad{load: load}, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	n.reg = r
	srv := httptest.NewUnstartedServer(r.Relay(ownerHandler(n), FirstLesson(PathLesson("/whip/"), lessonFromQuery)))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		r.Close()
	})
	testenv.WaitFor(t, 20*time.Second, id+" registered", func() bool {
		_, ok, err := r.node(context.Background(), id)
		return err == nil && ok
	})
	return n
}

func served(t *testing.T, n *testNode) string {
	t.Helper()
	select {
	case s := <-n.served:
		return s
	case <-time.After(20 * time.Second):
		t.Fatalf("node %s served nothing", n.id)
		return ""
	}
}

func assertIdle(t *testing.T, nodes ...*testNode) {
	t.Helper()
	for _, n := range nodes {
		select {
		case s := <-n.served:
			t.Errorf("node %s served %q itself, want it relayed", n.id, s)
		default:
		}
	}
}

// TestSignalingThroughNonOwnerReachesOwner: a client that reaches any node
// talks to the lesson's owner — a websocket session and a WHIP-style
// create/delete pair, each entered through a different non-owner node.
func TestSignalingThroughNonOwnerReachesOwner(t *testing.T) {
	addr := startRedis(t)
	owner := startRelayNode(t, addr, "node-1", 0) // least loaded: lessons land here
	n2 := startRelayNode(t, addr, "node-2", 40)
	n3 := startRelayNode(t, addr, "node-3", 60)

	// Websocket entered through node 2.
	wsURL := "ws" + strings.TrimPrefix(n2.url, "http") + "/ws?lesson=history-3"
	c, resp, err := websocket.DefaultDialer.Dial(wsURL, nil)
	if err != nil {
		t.Fatalf("dial through node-2: %v (%v)", err, resp)
	}
	defer c.Close()
	for _, msg := range []string{`{"type":"join"}`, `{"type":"ping"}`} {
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, got, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if want := "node-1:" + msg; string(got) != want {
			t.Fatalf("websocket reply %q, want %q", got, want)
		}
	}
	if s := served(t, owner); s != "ws" {
		t.Fatalf("owner served %q", s)
	}

	// WHIP-style POST through node 3, DELETE of its Location through node 2.
	res, err := http.Post(n3.url+"/whip/history-3", "application/sdp", strings.NewReader("offer"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated || string(body) != "answer to offer from node-1" {
		t.Fatalf("POST through node-3: %d %q", res.StatusCode, body)
	}
	loc := res.Header.Get("Location")
	if loc != "/whip/history-3/res-node-1" {
		t.Fatalf("Location %q", loc)
	}
	if s := served(t, owner); s != "whip history-3" {
		t.Fatalf("owner served %q", s)
	}
	req, _ := http.NewRequest(http.MethodDelete, n2.url+loc, nil)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || string(body) != "deleted res-node-1 on node-1" {
		t.Fatalf("DELETE through node-2: %d %q", res.StatusCode, body)
	}
	if s := served(t, owner); s != "delete res-node-1" {
		t.Fatalf("owner served %q", s)
	}
	assertIdle(t, n2, n3)

	// Requests that are not about a lesson are served where they land.
	res, err = http.Get(n3.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "node-3" {
		t.Fatalf("healthz on node-3 answered by %q", body)
	}
	if got := testutil.ToFloat64(n2.metrics.forwarded.WithLabelValues("relayed")); got != 2 {
		t.Errorf("node-2 relayed %v requests, want 2", got)
	}
}

// TestRelayToDeadOwnerAnswersJSONThenRecovers: when the owner stops
// answering but has not yet been found dead, clients get a clear JSON 502;
// once its heartbeat expires the lesson is placed on a live node and the
// same request succeeds.
func TestRelayToDeadOwnerAnswersJSONThenRecovers(t *testing.T) {
	addr := startRedis(t)
	n1 := startRelayNode(t, addr, "node-1", 50)
	n2 := startRelayNode(t, addr, "node-2", 60)

	// A node that registered and then went silent: its URL refuses
	// connections.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + l.Addr().String()
	l.Close()
	ghost, err := New(context.Background(), Config{Redis: addr, Node: NodeInfo{ID: "ghost", URL: deadURL, Capacity: 100}, Heartbeat: testHeartbeat}, &fakeLoad{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ghost.Close()
	// The ghost heartbeats like a live node until the test stops it the way
	// a crash would: no goodbye, its entry simply expires.
	crash := make(chan struct{})
	beating := make(chan struct{})
	go func() {
		defer close(beating)
		for {
			ghost.heartbeat(context.Background())
			select {
			case <-crash:
				return
			case <-time.After(testHeartbeat):
			}
		}
	}()
	defer func() {
		select {
		case <-crash:
		default:
			close(crash)
		}
		<-beating
	}()
	testenv.WaitFor(t, 20*time.Second, "ghost registered", func() bool {
		_, ok, err := n1.reg.node(context.Background(), "ghost")
		return err == nil && ok
	})
	if o, err := n1.reg.Place(context.Background(), "art-1", ""); err != nil || o.ID != "ghost" {
		t.Fatalf("placed on %+v (%v), want ghost", o, err)
	}
	res, err := http.Post(n1.url+"/whip/art-1", "application/sdp", strings.NewReader("offer"))
	if err != nil {
		t.Fatal(err)
	}
	var e struct{ Error, Code string }
	json.NewDecoder(res.Body).Decode(&e)
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway || e.Code != "owner_unreachable" || e.Error == "" {
		t.Fatalf("relay to a silent owner: %d %+v", res.StatusCode, e)
	}

	close(crash)
	<-beating
	testenv.WaitFor(t, 20*time.Second, "art-1 placed on a live node", func() bool {
		res, err := http.Post(n2.url+"/whip/art-1", "application/sdp", strings.NewReader("offer"))
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res.StatusCode == http.StatusCreated && string(body) == "answer to offer from node-1"
	})
}

func TestLessonFromPath(t *testing.T) {
	for _, tc := range []struct {
		path   string
		lesson string
		ok     bool
	}{
		{"/whip/math", "math", true},
		{"/whip/math/res-1", "math", true},
		{"/whep/bio.2/", "bio.2", true},
		{"/whip/", "", false},
		{"/whip//x", "", false},
		{"/whipx/math", "", false},
		{"/ws", "", false},
		{"/whip/" + strings.Repeat("a", 129), "", false},
	} {
		l, ok := LessonFromPath(tc.path, "/whip/", "/whep/")
		if l != tc.lesson || ok != tc.ok {
			t.Errorf("LessonFromPath(%q) = %q, %v; want %q, %v", tc.path, l, ok, tc.lesson, tc.ok)
		}
	}
}

func FuzzLessonFromPath(f *testing.F) {
	for _, s := range []string{"/whip/math", "/whep/a/b/c", "/whip/", "/", "", "/whip/%2F", "/whep/\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		l, ok := LessonFromPath(path, "/whip/", "/whep/")
		if !ok {
			if l != "" {
				t.Fatalf("not ok but lesson %q", l)
			}
			return
		}
		if l == "" || len(l) > maxLessonLen || strings.Contains(l, "/") {
			t.Fatalf("bad lesson %q from %q", l, path)
		}
		if !strings.HasPrefix(path, "/whip/"+l) && !strings.HasPrefix(path, "/whep/"+l) {
			t.Fatalf("lesson %q is not the segment of %q", l, path)
		}
	})
}
