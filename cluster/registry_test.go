package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"podium/internal/testenv"
)

// fakeLoad is the LocalNode of a test node: a fixed load and the lessons it
// pretends to host. (The registry only reads two numbers from the node; the
// real sfu is exercised by the multi-node test in cmd/podium.)
type fakeLoad struct {
	mu      sync.Mutex
	load    int
	lessons []string
}

func (f *fakeLoad) Load() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.load
}

func (f *fakeLoad) Lessons() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.lessons)
}

func (f *fakeLoad) set(load int, lessons ...string) {
	f.mu.Lock()
	f.load, f.lessons = load, lessons
	f.mu.Unlock()
}

const testHeartbeat = 100 * time.Millisecond

// startNode registers a node and runs its heartbeat until the test ends.
func startNode(t testing.TB, redisAddr string, info NodeInfo, local LocalNode) *Registry {
	t.Helper()
	ctx := context.Background()
	m, err := NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(ctx, Config{Redis: redisAddr, Node: info, Heartbeat: testHeartbeat, PlacementGrace: 2 * time.Second}, local, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node %s leave: %v", info.ID, err)
		}
		r.Close()
	})
	testenv.WaitFor(t, 20*time.Second, info.ID+" registered", func() bool {
		_, ok, err := r.node(ctx, info.ID)
		return err == nil && ok
	})
	return r
}

func TestPlacementPrefersRegionThenLeastUtilized(t *testing.T) {
	addr := startRedis(t)
	ctx := context.Background()
	a := startNode(t, addr, NodeInfo{ID: "a", URL: "http://a", Region: "north", Capacity: 100}, &fakeLoad{load: 80})
	startNode(t, addr, NodeInfo{ID: "b", URL: "http://b", Region: "south", Capacity: 100}, &fakeLoad{load: 50})
	startNode(t, addr, NodeInfo{ID: "c", URL: "http://c", Region: "south", Capacity: 10}, &fakeLoad{load: 2})
	startNode(t, addr, NodeInfo{ID: "d", URL: "http://d", Region: "east", Capacity: 10}, &fakeLoad{load: 10})

	nodes, err := a.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 4 {
		t.Fatalf("want 4 live nodes, got %+v", nodes)
	}
	for _, tc := range []struct{ lesson, region, want string }{
		{"l-north", "north", "a"},  // in region, even though busier
		{"l-south", "south", "c"},  // least utilized of the region (20% < 50%)
		{"l-any", "", "c"},         // least utilized overall
		{"l-east", "east", "c"},    // the east node is full: elsewhere
		{"l-nowhere", "west", "c"}, // unknown region: anywhere
		{"l-north", "south", "a"},  // already placed: stays
		{"l-south", "north", "c"},  // already placed: stays
	} {
		got, err := a.Place(ctx, tc.lesson, tc.region)
		if err != nil {
			t.Fatalf("place %s: %v", tc.lesson, err)
		}
		if got.ID != tc.want {
			t.Errorf("place %s in %q: got node %s, want %s", tc.lesson, tc.region, got.ID, tc.want)
		}
		owner, ok, err := a.Owner(ctx, tc.lesson)
		if err != nil || !ok || owner.ID != got.ID {
			t.Errorf("owner of %s: %+v %v %v, want %s", tc.lesson, owner, ok, err, got.ID)
		}
	}
}

func TestConcurrentPlacementAgrees(t *testing.T) {
	addr := startRedis(t)
	ctx := context.Background()
	var regs []*Registry
	for i := range 3 {
		id := fmt.Sprintf("n%d", i)
		// Equal loads: every placer would pick a node by its own read, the
		// claim makes them agree.
		regs = append(regs, startNode(t, addr, NodeInfo{ID: id, URL: "http://" + id}, &fakeLoad{}))
	}
	for round := range 20 {
		lesson := fmt.Sprintf("race-%d", round)
		got := make([]string, 12)
		var wg sync.WaitGroup
		for i := range got {
			wg.Go(func() {
				n, err := regs[i%3].Place(ctx, lesson, "")
				if err != nil {
					t.Errorf("place: %v", err)
					return
				}
				got[i] = n.ID
			})
		}
		wg.Wait()
		for _, g := range got {
			if g != got[0] {
				t.Fatalf("lesson %s placed on different nodes: %v", lesson, got)
			}
		}
	}
}

func TestHostedLessonIsClaimedAndReleasedOnLeave(t *testing.T) {
	addr := startRedis(t)
	ctx := context.Background()
	obs := startNode(t, addr, NodeInfo{ID: "observer", URL: "http://o", Capacity: 1}, &fakeLoad{load: 1})

	// A node hosting a lesson nobody placed (created by the REST API or an
	// RTSP source) claims it at its first heartbeat.
	host := &fakeLoad{load: 1}
	host.set(1, "math-7")
	m, _ := NewMetrics(nil)
	r, err := New(ctx, Config{Redis: addr, Node: NodeInfo{ID: "host", URL: "http://h"}, Heartbeat: testHeartbeat}, host, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	testenv.WaitFor(t, 20*time.Second, "math-7 owned by host", func() bool {
		o, ok, err := obs.Owner(ctx, "math-7")
		return err == nil && ok && o.ID == "host"
	})
	if got, err := obs.Place(ctx, "math-7", ""); err != nil || got.ID != "host" {
		t.Fatalf("place hosted lesson: %+v %v", got, err)
	}

	// A graceful stop removes the node and frees its lesson at once.
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("leave: %v", err)
	}
	if _, ok, err := obs.Owner(ctx, "math-7"); err != nil || ok {
		t.Fatalf("after leave, math-7 still owned (%v, %v)", ok, err)
	}
	nodes, err := obs.Nodes(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].ID != "observer" {
		t.Fatalf("after leave, nodes = %+v (%v)", nodes, err)
	}
	if got, err := obs.Place(ctx, "math-7", ""); err != nil || got.ID != "observer" {
		t.Fatalf("re-place: %+v %v", got, err)
	}
}

func TestDrainingNodeGetsNoNewLessons(t *testing.T) {
	addr := startRedis(t)
	ctx := context.Background()
	idle := startNode(t, addr, NodeInfo{ID: "idle", URL: "http://i", Capacity: 10}, &fakeLoad{})
	startNode(t, addr, NodeInfo{ID: "busy", URL: "http://b", Capacity: 10}, &fakeLoad{load: 9})
	if err := idle.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := idle.Place(ctx, "late-lesson", "")
	if err != nil || got.ID != "busy" {
		t.Fatalf("with idle draining, placed on %+v (%v), want busy", got, err)
	}
}

func TestNoLiveNodes(t *testing.T) {
	addr := startRedis(t)
	r, err := New(context.Background(), Config{Redis: addr, Node: NodeInfo{ID: "x", URL: "http://x"}}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Place(context.Background(), "l", ""); !errors.Is(err, ErrNoNodes) {
		t.Fatalf("place with no nodes: %v, want ErrNoNodes", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Node: NodeInfo{ID: "a", URL: "http://a"}},
		{Redis: "127.0.0.1:1", Node: NodeInfo{URL: "http://a"}},
		{Redis: "127.0.0.1:1", Node: NodeInfo{ID: "a"}},
		{Redis: "127.0.0.1:1", Node: NodeInfo{ID: "a", URL: "http://a"}, Heartbeat: time.Second, DeadAfter: time.Second},
	} {
		if _, err := New(context.Background(), cfg, nil, nil, nil); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
	// A Redis that is not there is an error at start, with its address.
	_, err := New(context.Background(), Config{Redis: "127.0.0.1:1", Node: NodeInfo{ID: "a", URL: "http://a"}}, nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("unreachable redis: %v", err)
	}
}

// childNodeEnv makes the test binary run as a cluster node process (see
// TestMain), so a test can kill a node the hard way.
const childNodeEnv = "PODIUM_CLUSTER_TEST_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childNodeEnv); spec != "" {
		os.Exit(runChildNode(spec))
	}
	os.Exit(m.Run())
}

// runChildNode runs a node "redis,id,lesson" hosting one lesson until it
// is killed or stopped by SIGTERM.
func runChildNode(spec string) int {
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		fmt.Fprintln(os.Stderr, "bad child spec", spec)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	local := &fakeLoad{}
	local.set(1, parts[2])
	r, err := New(ctx, Config{Redis: parts[0], Node: NodeInfo{ID: parts[1], URL: "http://" + parts[1]}, Heartbeat: testHeartbeat}, local, nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer r.Close()
	if err := r.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestKilledNodeIsDetectedAndItsLessonPlacedElsewhere runs a node as its
// own process, kills it with SIGKILL (no goodbye), and checks that the
// survivors find it dead, report its lesson, and place the lesson again.
func TestKilledNodeIsDetectedAndItsLessonPlacedElsewhere(t *testing.T) {
	addr := startRedis(t)
	ctx := context.Background()
	survivor := startNode(t, addr, NodeInfo{ID: "survivor", URL: "http://s", Capacity: 10}, &fakeLoad{load: 5})
	other := startNode(t, addr, NodeInfo{ID: "other", URL: "http://o", Capacity: 10}, &fakeLoad{load: 7})
	// Whichever survivor notices first reports the death, once.
	downs := make(chan string, 4)
	for _, r := range []*Registry{survivor, other} {
		r.OnNodeDown(func(dead NodeInfo, lessons []string) {
			downs <- dead.ID + ":" + strings.Join(lessons, ",")
		})
	}

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(exe, "-test.run=^$")
	child.Env = append(os.Environ(), childNodeEnv+"="+addr+",victim,physics-9")
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = child.Process.Kill()
		}
		_ = child.Wait()
	})
	testenv.WaitFor(t, 20*time.Second, "victim to own physics-9", func() bool {
		o, ok, err := survivor.Owner(ctx, "physics-9")
		return err == nil && ok && o.ID == "victim"
	})
	if got, err := survivor.Place(ctx, "physics-9", ""); err != nil || got.ID != "victim" {
		t.Fatalf("while victim lives, physics-9 placed on %+v (%v)", got, err)
	}

	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed = true
	select {
	case d := <-downs:
		if d != "victim:physics-9" {
			t.Fatalf("node down report %q, want victim:physics-9", d)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("victim's death was not detected")
	}
	select {
	case d := <-downs:
		t.Fatalf("death reported twice: %q", d)
	case <-time.After(3 * testHeartbeat):
	}
	got, err := survivor.Place(ctx, "physics-9", "")
	if err != nil || got.ID != "survivor" {
		t.Fatalf("after the kill, physics-9 placed on %+v (%v), want survivor (least loaded)", got, err)
	}
	nodes, err := survivor.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.ID == "victim" {
			t.Fatalf("dead node still listed: %+v", nodes)
		}
	}
}

func TestEdgePlacementByRegionAndLoad(t *testing.T) {
	addr := startRedis(t)
	ctx := context.Background()
	origin := &fakeLoad{load: 10}
	r := startNode(t, addr, NodeInfo{ID: "origin", URL: "http://o", Region: "city", Capacity: 100}, origin)
	startNode(t, addr, NodeInfo{ID: "north-1", URL: "http://n1", Region: "north", Capacity: 100}, &fakeLoad{load: 30})
	startNode(t, addr, NodeInfo{ID: "north-2", URL: "http://n2", Region: "north", Capacity: 100}, &fakeLoad{load: 20})
	startNode(t, addr, NodeInfo{ID: "south-1", URL: "http://s1", Region: "south", Capacity: 100}, &fakeLoad{load: 100})

	if got, err := r.Place(ctx, "lesson", "city"); err != nil || got.ID != "origin" {
		t.Fatalf("teacher placement: %+v %v", got, err)
	}
	for _, tc := range []struct{ region, want string }{
		{"city", "origin"},     // same region as the owner
		{"", "origin"},         // no region named: the owner
		{"north", "north-2"},   // the region's least utilized node
		{"south", "origin"},    // the region's node is full: the owner serves
		{"far-west", "origin"}, // no such region: the owner
	} {
		got, err := r.PlaceEdge(ctx, "lesson", tc.region)
		if err != nil || got.ID != tc.want {
			t.Errorf("classroom in %q: got %+v (%v), want %s", tc.region, got.ID, err, tc.want)
		}
	}

	// The owner fills up: classrooms of its own region spill onto the
	// least utilized node with room.
	origin.set(100)
	testenv.WaitFor(t, 20*time.Second, "the owner's full load to be published", func() bool {
		n, ok, err := r.node(ctx, "origin")
		return err == nil && ok && n.Load == 100
	})
	if got, err := r.PlaceEdge(ctx, "lesson", "city"); err != nil || got.ID != "north-2" {
		t.Fatalf("classroom of a full owner: %+v (%v), want north-2", got.ID, err)
	}
}

func TestEdgeClientStaysOnTheNodeItReached(t *testing.T) {
	addr := startRedis(t)
	ctx := context.Background()
	ownerLoad := &fakeLoad{}
	owner := startNode(t, addr, NodeInfo{ID: "owner", URL: "http://o", Capacity: 1}, ownerLoad)
	if got, err := owner.Place(ctx, "l", ""); err != nil || got.ID != "owner" {
		t.Fatalf("owner placement: %+v %v", got, err)
	}
	idle := startNode(t, addr, NodeInfo{ID: "idle", URL: "http://i"}, &fakeLoad{})
	busy := startNode(t, addr, NodeInfo{ID: "busy", URL: "http://b", Region: "south"}, &fakeLoad{load: 50})
	ownerLoad.set(1) // the teacher joined: the owner is full
	testenv.WaitFor(t, 20*time.Second, "the owner's load", func() bool {
		n, ok, err := owner.node(ctx, "owner")
		return err == nil && ok && n.Load == 1
	})
	// The owner is full: a classroom reaching the busy node stays there
	// (one hop less) rather than going to the idle one.
	if got, err := busy.placeEdgeHere(ctx, "l", ""); err != nil || got.ID != "busy" {
		t.Fatalf("classroom at busy: %+v %v, want busy", got.ID, err)
	}
	// ...unless it names a region the busy node is not in.
	if got, err := busy.placeEdgeHere(ctx, "l", "north"); err != nil || got.ID != "idle" {
		t.Fatalf("classroom of north at busy: %+v %v, want idle", got.ID, err)
	}
	// The owner itself is never bypassed when it has room.
	if got, err := idle.placeEdgeHere(ctx, "other", ""); err != nil {
		t.Fatal(err)
	} else if o, _, _ := idle.Owner(ctx, "other"); got.ID != o.ID {
		t.Fatalf("lesson with room on its owner served by %s, owner %s", got.ID, o.ID)
	}
}
