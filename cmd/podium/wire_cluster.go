package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"podium/cluster"
	"podium/cluster/cascade"
	"podium/sfu"
	"podium/signaling/auth"
)

// clusterConfig is the cluster part's configuration (flags cluster-*).
var clusterConfig struct {
	redis         string
	redisPassword string
	nodeID        string
	advertiseURL  string
	region        string
	capacity      int
	heartbeat     time.Duration
	key           string
}

// clusterFront wraps the server's whole HTTP handler: with --cluster-redis
// set, requests about a lesson another node owns are relayed to it. serve
// applies it after every part is wired: handler = clusterFront(handler).
var clusterFront = func(h http.Handler) http.Handler { return h }

// registerClusterFlags adds the cluster part's flags.
func registerClusterFlags(fs *flag.FlagSet) {
	fs.StringVar(&clusterConfig.redis, "cluster-redis", "", "Redis host:port shared by the nodes of a cluster (empty: this node runs alone)")
	fs.StringVar(&clusterConfig.redisPassword, "cluster-redis-password", "", "Redis password")
	fs.StringVar(&clusterConfig.nodeID, "cluster-node-id", "", "this node's unique id in the cluster (default: the host name)")
	fs.StringVar(&clusterConfig.advertiseURL, "cluster-advertise-url", "", "base URL other nodes relay signaling to, e.g. http://10.0.0.11:8080 (required with --cluster-redis)")
	fs.StringVar(&clusterConfig.region, "cluster-region", "", "region label; a lesson is placed on a node of the region its first client names (?region= or X-Podium-Region)")
	fs.IntVar(&clusterConfig.capacity, "cluster-capacity", 0, "participants this node should carry before lessons go elsewhere (0: no limit, placement by load only)")
	fs.DurationVar(&clusterConfig.heartbeat, "cluster-heartbeat", 2*time.Second, "how often this node refreshes its entry; it is dead after three missed")
	fs.StringVar(&clusterConfig.key, "cluster-key", "", "secret shared by the nodes for relaying lessons between them (cascading); empty: no cascading, every client of a lesson goes to its owner")
}

// wireCluster joins the cluster when --cluster-redis is set: it starts the
// heartbeat (load = participants, lessons = live rooms) and installs the
// relay in clusterFront.
func wireCluster(a *app) error {
	c := clusterConfig
	if c.redis == "" {
		return nil
	}
	if a.sfu == nil {
		return errors.New("cluster: the sfu must be wired first")
	}
	if c.advertiseURL == "" {
		return errors.New("--cluster-advertise-url is required with --cluster-redis")
	}
	if u, err := url.Parse(c.advertiseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--cluster-advertise-url: %q is not an http(s) URL", c.advertiseURL)
	}
	if c.capacity < 0 {
		return fmt.Errorf("--cluster-capacity: %d is negative", c.capacity)
	}
	if c.nodeID == "" {
		host, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("--cluster-node-id not set and no host name: %w", err)
		}
		c.nodeID = host
	}
	m, err := cluster.NewMetrics(a.reg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mirrors := &mirrorRooms{ids: map[string]bool{}}
	isClusterMirror = mirrors.has
	reg, err := cluster.New(ctx, cluster.Config{
		Redis:     c.redis,
		Password:  c.redisPassword,
		Heartbeat: c.heartbeat,
		Node:      cluster.NodeInfo{ID: c.nodeID, URL: strings.TrimRight(c.advertiseURL, "/"), Region: c.region, Capacity: c.capacity},
	}, roomsLoad{a.sfu.Rooms, mirrors}, a.log.With("part", "cluster"), m)
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(context.Background())
	var (
		workers   sync.WaitGroup
		workersMu sync.Mutex // no new worker once shutdown waits for them
	)
	spawn := func(fn func()) bool {
		workersMu.Lock()
		defer workersMu.Unlock()
		if runCtx.Err() != nil {
			return false
		}
		workers.Go(fn)
		return true
	}
	spawn(func() {
		if err := reg.Run(runCtx); err != nil {
			a.log.Warn("cluster leave", "err", err)
		}
	})
	var origin *cascade.Origin
	a.onClose(func(ctx context.Context) error {
		// Leave first, so new clients are placed elsewhere while this node
		// drains its lessons.
		workersMu.Lock()
		stop()
		workersMu.Unlock()
		waited := make(chan struct{})
		go func() { workers.Wait(); close(waited) }()
		var err error
		select {
		case <-waited:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if origin != nil {
			origin.Close()
		}
		return errors.Join(err, reg.Close())
	})

	lessonOf := cluster.FirstLesson(cluster.PathLesson("/whip/", "/whep/"), websocketLesson)
	if c.key == "" {
		clusterFront = func(h http.Handler) http.Handler { return reg.Relay(h, lessonOf) }
		a.log.Info("cluster joined (no cascading: --cluster-key unset)", "node", c.nodeID, "redis", c.redis, "region", c.region, "url", c.advertiseURL)
		return nil
	}

	// Cascading: this node serves its lessons' tracks to edges, and mirrors
	// a lesson owned elsewhere when a classroom is placed here.
	var edge *cascade.Edge
	cascadeCfg := cascade.Config{Key: c.key, SelfURL: strings.TrimRight(c.advertiseURL, "/")}
	// Nodes reach each other at their advertised address: when it is an
	// IP, the media between nodes uses that address only.
	if u, err := url.Parse(c.advertiseURL); err == nil {
		if ip := net.ParseIP(u.Hostname()); ip != nil {
			cascadeCfg.IPFilter = func(candidate net.IP) bool { return candidate.Equal(ip) }
			cascadeCfg.IncludeLoopback = ip.IsLoopback()
		}
	}
	if cascadeCfg.Metrics, err = cascade.NewMetrics(a.reg); err != nil {
		return err
	}
	origin, edge, err = cascade.New(a.sfu.Rooms, cascadeCfg, a.log.With("part", "cascade"))
	if err != nil {
		return err
	}
	mirrors.setParticipants(edge.IsMirror)
	// Edges authenticate with the cluster key, which the cascade checks.
	a.routes.Handle(cascade.PathPrefix, auth.PublicScope(), origin.Handler())
	a.sfu.Rooms.OnRoomCreated(func(room *sfu.Room) {
		octx, ocancel := context.WithTimeout(runCtx, 2*time.Second)
		owner, ok, err := reg.Owner(octx, room.ID())
		ocancel()
		if err != nil || !ok || owner.ID == c.nodeID {
			mirrors.remove(room.ID())
			return // this node owns it (or Redis is down: serve alone)
		}
		mirrors.add(room.ID())
		started := spawn(func() {
			defer mirrors.remove(room.ID())
			err := edge.Mirror(runCtx, owner.URL, room)
			var ended *cascade.EndedError
			switch {
			case errors.As(err, &ended):
				// The same lessonEnded the origin's classrooms got.
				room.End(ended.Reason)
			case errors.Is(err, cascade.ErrLessonEnded):
				room.End("the lesson has ended")
			case errors.Is(err, cascade.ErrIdle):
				room.End("no classroom left on this node")
			}
		})
		if !started {
			mirrors.remove(room.ID())
			return
		}
		a.log.Info("mirroring lesson from its owner", "lesson", room.ID(), "owner", owner.ID)
	})
	// A classroom placed here as an edge finds the lesson already here:
	// creating the room starts the mirror (OnRoomCreated above).
	prepare := func(ctx context.Context, lesson string, owner cluster.NodeInfo) error {
		if _, ok := a.sfu.Rooms.Room(lesson); ok {
			return nil
		}
		// Marked before the room exists, so every OnRoomCreated hook (the
		// recorder's) already sees it as a mirror.
		mirrors.add(lesson)
		if _, _, err := a.sfu.Rooms.GetOrCreateRoom(lesson); err != nil {
			mirrors.remove(lesson)
			return err
		}
		return nil
	}
	clusterFront = func(h http.Handler) http.Handler {
		return reg.RelayWithEdges(h, lessonOf, cluster.Edges{Allowed: edgeAllowed, Prepare: prepare})
	}
	a.log.Info("cluster joined with cascading", "node", c.nodeID, "redis", c.redis, "region", c.region, "url", c.advertiseURL)
	return nil
}

// isClusterMirror reports whether a room on this node mirrors a lesson
// owned by another node (set when cascading). The recorder must skip such
// rooms: only the origin records a lesson.
var isClusterMirror = func(lessonID string) bool { return false }

// mirrorRooms are the rooms this node mirrors from other nodes, and (with
// cascading) which participants of a room are mirrors of another node's.
type mirrorRooms struct {
	mu           sync.Mutex
	ids          map[string]bool
	participants func(room, participant string) bool
}

func (m *mirrorRooms) setParticipants(fn func(room, participant string) bool) {
	m.mu.Lock()
	m.participants = fn
	m.mu.Unlock()
}

// mirroredParticipant: counted on the node it is mirrored from.
func (m *mirrorRooms) mirroredParticipant(room, participant string) bool {
	m.mu.Lock()
	fn := m.participants
	m.mu.Unlock()
	return fn != nil && fn(room, participant)
}

func (m *mirrorRooms) add(id string) {
	m.mu.Lock()
	m.ids[id] = true
	m.mu.Unlock()
}

func (m *mirrorRooms) remove(id string) {
	m.mu.Lock()
	delete(m.ids, id)
	m.mu.Unlock()
}

func (m *mirrorRooms) has(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ids[id]
}

// edgeAllowed: classrooms and viewers may be served by an edge; teachers
// and publishers (WHIP) go to the lesson's owner.
func edgeAllowed(r *http.Request) bool {
	if strings.HasPrefix(r.URL.Path, "/whep/") {
		return true
	}
	role, ok := tokenClaims(r)
	return ok && (role.Role == string(sfu.RoleClassroom) || role.Role == string(sfu.RoleViewer))
}

// websocketLesson reads the lesson of a websocket request from its token's
// room claim. The token is not verified here: routing on a forged claim
// only sends the request to a node that refuses it, and the owner checks
// the signature.
func websocketLesson(r *http.Request) (string, bool) {
	c, ok := tokenClaims(r)
	if !ok || !sfu.ValidRoomID(c.Room) {
		return "", false // no token, admin "*" tokens and junk: served here
	}
	return c.Room, true
}

// routingClaims are the parts of a websocket token routing looks at.
type routingClaims struct {
	Room string `json:"room"`
	Role string `json:"role"`
	jwt.RegisteredClaims
}

// tokenClaims reads, without verifying, the token of a /ws request.
func tokenClaims(r *http.Request) (routingClaims, bool) {
	var claims routingClaims
	if r.URL.Path != "/ws" {
		return claims, false
	}
	tok := r.URL.Query().Get("token")
	if tok == "" {
		tok, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	if tok == "" {
		return claims, false
	}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &claims); err != nil {
		return claims, false
	}
	return claims, true
}

// roomsLoad is what the cluster reads from this node at each heartbeat:
// every participant of its own counts as load (a mirror of another node's
// counts there); only the lessons it owns (not the ones it mirrors) are
// claimed.
type roomsLoad struct {
	rooms   *sfu.Rooms
	mirrors *mirrorRooms
}

func (l roomsLoad) Load() int {
	n := 0
	for _, r := range l.rooms.List() {
		for _, p := range r.Participants() {
			if !l.mirrors.mirroredParticipant(r.ID(), p.ID) {
				n++
			}
		}
	}
	return n
}

func (l roomsLoad) Lessons() []string {
	var ids []string
	for _, r := range l.rooms.List() {
		if !l.mirrors.has(r.ID()) {
			ids = append(ids, r.ID())
		}
	}
	return ids
}
