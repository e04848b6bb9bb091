// Package cluster lets several Podium nodes serve one address: nodes
// register in Redis with their load and a heartbeat, each lesson is placed
// on one node (the least loaded, preferring the client's region), any node
// finds a lesson's owner and relays signaling to it, and a node that stops
// heartbeating is declared dead so its lessons are placed again elsewhere.
//
// It owns the Redis keys under its prefix and the HTTP relay to owners. It
// knows nothing of WebRTC, rooms or tokens: the node it runs in tells it its
// load and its live lessons (LocalNode), and the wiring tells it which
// lesson a request is for (LessonFunc).
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// NodeInfo is what a node publishes about itself.
type NodeInfo struct {
	ID string `json:"id"`
	// URL is the base URL other nodes relay signaling to
	// (http://10.0.0.11:8080): reachable between nodes, not necessarily by
	// clients.
	URL string `json:"url"`
	// Region is a free label ("north", "county-7"); lessons are placed in
	// the region their first client names when a node there has room.
	Region string `json:"region,omitempty"`
	// Load is the node's participants now; Capacity what it should carry.
	Load     int `json:"load"`
	Capacity int `json:"capacity"`
	// Draining nodes take no new lessons.
	Draining bool      `json:"draining,omitempty"`
	Seen     time.Time `json:"seen"`
}

// utilization is load per capacity, the placement score (lower is better).
func (n NodeInfo) utilization() float64 {
	if n.Capacity <= 0 {
		return float64(n.Load)
	}
	return float64(n.Load) / float64(n.Capacity)
}

// LocalNode is what the registry asks of the node it runs in at every
// heartbeat.
type LocalNode interface {
	// Load is the number of participants the node serves now.
	Load() int
	// Lessons are the ids of the lessons live on the node.
	Lessons() []string
}

// Config configures a node's registry.
type Config struct {
	// Redis is the server's host:port; Password and DB as Redis has them.
	Redis    string
	Password string
	DB       int
	// Prefix starts every key (default "podium"); nodes sharing a prefix
	// form one cluster.
	Prefix string
	// Node is this node's identity: ID (unique in the cluster) and URL are
	// required; Region and Capacity optional.
	Node NodeInfo
	// Heartbeat is how often the node refreshes its entry (default 2 s); a
	// node is dead after DeadAfter without one (default 3 heartbeats).
	Heartbeat time.Duration
	DeadAfter time.Duration
	// PlacementGrace is how long a placement holds before the owner reports
	// the lesson live (default 30 s): a lesson placed but never started
	// is forgotten after it.
	PlacementGrace time.Duration
}

func (c *Config) setDefaults() error {
	if c.Redis == "" {
		return errors.New("cluster: redis address is required")
	}
	if c.Node.ID == "" || c.Node.URL == "" {
		return errors.New("cluster: node id and url are required")
	}
	if c.Prefix == "" {
		c.Prefix = "podium"
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 2 * time.Second
	}
	if c.DeadAfter <= 0 {
		c.DeadAfter = 3 * c.Heartbeat
	}
	if c.DeadAfter < 2*c.Heartbeat {
		return fmt.Errorf("cluster: dead-after %v must be at least two heartbeats (%v)", c.DeadAfter, 2*c.Heartbeat)
	}
	if c.PlacementGrace <= 0 {
		c.PlacementGrace = 30 * time.Second
	}
	return nil
}

// ErrNoNodes is returned by Place when no live node can take a lesson.
var ErrNoNodes = errors.New("cluster: no live node to place the lesson on")

// Registry is one node's view of the cluster. Run keeps it registered.
type Registry struct {
	cfg   Config
	rdb   *redis.Client
	local LocalNode
	log   *slog.Logger
	m     *Metrics

	mu       sync.Mutex
	draining bool
	onDown   []func(dead NodeInfo, lessons []string)
}

// New connects to Redis and checks it answers. The node is not registered
// until Run's first heartbeat.
func New(ctx context.Context, cfg Config, local LocalNode, log *slog.Logger, m *Metrics) (*Registry, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	rdb := redis.NewClient(&redis.Options{Addr: cfg.Redis, Password: cfg.Password, DB: cfg.DB})
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("cluster: redis %s: %w", cfg.Redis, err)
	}
	return &Registry{cfg: cfg, rdb: rdb, local: local, log: log.With("node", cfg.Node.ID), m: m}, nil
}

// Self returns this node's identity.
func (r *Registry) Self() NodeInfo { return r.cfg.Node }

// OnNodeDown registers fn to run when this node finds another node dead;
// lessons are the ones it owned (already released for re-placement).
func (r *Registry) OnNodeDown(fn func(dead NodeInfo, lessons []string)) {
	r.mu.Lock()
	r.onDown = append(r.onDown, fn)
	r.mu.Unlock()
}

// Drain stops new lessons from being placed on this node (shutdown).
func (r *Registry) Drain(ctx context.Context) error {
	r.mu.Lock()
	r.draining = true
	r.mu.Unlock()
	return r.heartbeat(ctx)
}

func (r *Registry) nodesKey() string             { return r.cfg.Prefix + ":nodes" }
func (r *Registry) nodeKey(id string) string     { return r.cfg.Prefix + ":node:" + id }
func (r *Registry) lessonKey(id string) string   { return r.cfg.Prefix + ":lesson:" + id }
func (r *Registry) ownedKey(node string) string  { return r.cfg.Prefix + ":owned:" + node }
func (r *Registry) reapLockKey(id string) string { return r.cfg.Prefix + ":reaping:" + id }

// Run heartbeats until ctx ends, then removes the node and releases its
// lessons (a graceful stop; a crashed node is found dead by the others).
func (r *Registry) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Heartbeat)
	defer t.Stop()
	for {
		if err := r.heartbeat(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("cluster heartbeat failed", "err", err)
		}
		if err := r.reapDead(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("cluster dead-node check failed", "err", err)
		}
		select {
		case <-ctx.Done():
			stop, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := r.leave(stop)
			cancel()
			return err
		case <-t.C:
		}
	}
}

// Close releases the Redis connection (after Run has returned).
func (r *Registry) Close() error { return r.rdb.Close() }

// heartbeat publishes this node's entry and refreshes the claims on the
// lessons it hosts, claiming any it hosts without a claim (a lesson created
// here directly, or re-created after its node died).
func (r *Registry) heartbeat(ctx context.Context) error {
	info := r.cfg.Node
	r.mu.Lock()
	info.Draining = r.draining
	r.mu.Unlock()
	var lessons []string
	if r.local != nil {
		info.Load = r.local.Load()
		lessons = r.local.Lessons()
	}
	info.Seen = time.Now().UTC()
	data, err := json.Marshal(info)
	if err != nil {
		return err
	}
	pipe := r.rdb.TxPipeline()
	pipe.Set(ctx, r.nodeKey(info.ID), data, r.cfg.DeadAfter)
	pipe.SAdd(ctx, r.nodesKey(), info.ID)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("register node: %w", err)
	}
	for _, l := range lessons {
		owner, err := r.claim(ctx, l, info.ID, "", r.cfg.PlacementGrace)
		if err != nil {
			return err
		}
		if owner != info.ID {
			// Two nodes host the lesson (a split placement during a
			// failure); the claim stays with the other, whose clients
			// will win as they reconnect through the relay.
			r.log.Warn("lesson hosted here is owned by another node", "lesson", l, "owner", owner)
		}
	}
	return nil
}

// claimScript sets the lesson's owner to ARGV[1] if the lesson has no
// owner, is already owned by ARGV[1], or is owned by ARGV[2] (a node found
// dead); it returns the owner after the call. KEYS: lesson, owned set of
// the new owner.
var claimScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] or (ARGV[2] ~= '' and cur == ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  redis.call('SADD', KEYS[2], ARGV[4])
  return ARGV[1]
end
return cur
`)

func (r *Registry) claim(ctx context.Context, lesson, owner, replacing string, ttl time.Duration) (string, error) {
	res, err := claimScript.Run(ctx, r.rdb, []string{r.lessonKey(lesson), r.ownedKey(owner)},
		owner, replacing, ttl.Milliseconds(), lesson).Text()
	if err != nil {
		return "", fmt.Errorf("claim lesson %s: %w", lesson, err)
	}
	return res, nil
}

// releaseScript deletes the lesson's claim if ARGV[1] owns it. KEYS:
// lesson, owned set of ARGV[1].
var releaseScript = redis.NewScript(`
redis.call('SREM', KEYS[2], ARGV[2])
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)

// Release gives up this node's claim on a lesson (the lesson ended).
func (r *Registry) Release(ctx context.Context, lesson string) error {
	return r.release(ctx, lesson, r.cfg.Node.ID)
}

func (r *Registry) release(ctx context.Context, lesson, owner string) error {
	if err := releaseScript.Run(ctx, r.rdb, []string{r.lessonKey(lesson), r.ownedKey(owner)}, owner, lesson).Err(); err != nil {
		return fmt.Errorf("release lesson %s: %w", lesson, err)
	}
	return nil
}

// leave removes this node and its claims.
func (r *Registry) leave(ctx context.Context) error {
	id := r.cfg.Node.ID
	lessons, err := r.rdb.SMembers(ctx, r.ownedKey(id)).Result()
	if err != nil {
		return fmt.Errorf("cluster leave: %w", err)
	}
	var errs []error
	for _, l := range lessons {
		errs = append(errs, r.release(ctx, l, id))
	}
	pipe := r.rdb.TxPipeline()
	pipe.Del(ctx, r.nodeKey(id), r.ownedKey(id))
	pipe.SRem(ctx, r.nodesKey(), id)
	_, err = pipe.Exec(ctx)
	errs = append(errs, err)
	return errors.Join(errs...)
}

// Nodes returns the live nodes, ordered by id.
func (r *Registry) Nodes(ctx context.Context) ([]NodeInfo, error) {
	live, _, err := r.scan(ctx)
	return live, err
}

// scan reads every registered node: the live ones, and the ids of those
// whose entry expired (dead).
func (r *Registry) scan(ctx context.Context) (live []NodeInfo, dead []string, err error) {
	ids, err := r.rdb.SMembers(ctx, r.nodesKey()).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("list nodes: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil, nil
	}
	sort.Strings(ids)
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = r.nodeKey(id)
	}
	vals, err := r.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("read nodes: %w", err)
	}
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			dead = append(dead, ids[i])
			continue
		}
		var n NodeInfo
		if err := json.Unmarshal([]byte(s), &n); err != nil {
			r.log.Warn("unreadable node entry, ignoring it", "id", ids[i], "err", err)
			continue
		}
		live = append(live, n)
	}
	if r.m != nil {
		r.m.nodes.Set(float64(len(live)))
	}
	return live, dead, nil
}

// node reads one live node.
func (r *Registry) node(ctx context.Context, id string) (NodeInfo, bool, error) {
	s, err := r.rdb.Get(ctx, r.nodeKey(id)).Result()
	if errors.Is(err, redis.Nil) {
		return NodeInfo{}, false, nil
	}
	if err != nil {
		return NodeInfo{}, false, fmt.Errorf("read node %s: %w", id, err)
	}
	var n NodeInfo
	if err := json.Unmarshal([]byte(s), &n); err != nil {
		return NodeInfo{}, false, fmt.Errorf("node %s entry: %w", id, err)
	}
	return n, true, nil
}

// reapDead removes nodes whose heartbeat expired and releases their
// lessons, so the next client of each lesson places it on a live node.
// Every node runs it; a short lock makes one node report each death.
func (r *Registry) reapDead(ctx context.Context) error {
	_, dead, err := r.scan(ctx)
	if err != nil {
		return err
	}
	for _, id := range dead {
		won, err := r.rdb.SetNX(ctx, r.reapLockKey(id), r.cfg.Node.ID, r.cfg.DeadAfter).Result()
		if err != nil {
			return fmt.Errorf("reap %s: %w", id, err)
		}
		if !won {
			continue
		}
		lessons, err := r.rdb.SMembers(ctx, r.ownedKey(id)).Result()
		if err != nil {
			return fmt.Errorf("reap %s: %w", id, err)
		}
		sort.Strings(lessons)
		for _, l := range lessons {
			if err := r.release(ctx, l, id); err != nil {
				return err
			}
		}
		pipe := r.rdb.TxPipeline()
		pipe.Del(ctx, r.ownedKey(id))
		pipe.SRem(ctx, r.nodesKey(), id)
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("reap %s: %w", id, err)
		}
		r.log.Warn("cluster node dead; its lessons will be placed again", "dead", id, "lessons", lessons)
		if r.m != nil {
			r.m.nodesDown.Inc()
		}
		r.mu.Lock()
		hooks := append([]func(NodeInfo, []string){}, r.onDown...)
		r.mu.Unlock()
		for _, fn := range hooks {
			fn(NodeInfo{ID: id}, lessons)
		}
	}
	return nil
}

// Owner returns the live node that owns a lesson; ok is false when the
// lesson is not placed or its owner is dead.
func (r *Registry) Owner(ctx context.Context, lesson string) (owner NodeInfo, ok bool, err error) {
	id, err := r.rdb.Get(ctx, r.lessonKey(lesson)).Result()
	if errors.Is(err, redis.Nil) {
		return NodeInfo{}, false, nil
	}
	if err != nil {
		return NodeInfo{}, false, fmt.Errorf("lesson %s owner: %w", lesson, err)
	}
	return r.node(ctx, id)
}

// Place returns the node that serves a lesson: its live owner, or else a
// live node chosen now and claimed atomically (when several nodes place
// the same lesson at once, all get the same answer). The choice is the
// least utilized node not draining, in region when one there has room.
func (r *Registry) Place(ctx context.Context, lesson, region string) (NodeInfo, error) {
	for attempt := 0; attempt < 5; attempt++ {
		cur, err := r.rdb.Get(ctx, r.lessonKey(lesson)).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return NodeInfo{}, fmt.Errorf("lesson %s owner: %w", lesson, err)
		}
		replacing := ""
		if cur != "" {
			n, alive, err := r.node(ctx, cur)
			if err != nil {
				return NodeInfo{}, err
			}
			if alive {
				return n, nil
			}
			replacing = cur // its owner died: place it again
		}
		live, _, err := r.scan(ctx)
		if err != nil {
			return NodeInfo{}, err
		}
		choice, ok := choose(live, region)
		if !ok {
			return NodeInfo{}, ErrNoNodes
		}
		owner, err := r.claim(ctx, lesson, choice.ID, replacing, r.cfg.PlacementGrace)
		if err != nil {
			return NodeInfo{}, err
		}
		if owner == choice.ID {
			if replacing != "" {
				r.log.Info("lesson placed again after its node died", "lesson", lesson, "dead", replacing, "owner", owner)
			}
			return choice, nil
		}
		// Someone else placed it between our read and claim; read theirs.
	}
	return NodeInfo{}, fmt.Errorf("cluster: placing lesson %s: too much contention", lesson)
}

// choose picks the least utilized node that is not draining and not full,
// preferring the region; ties go to the lowest id so that concurrent
// placers agree.
func choose(nodes []NodeInfo, region string) (NodeInfo, bool) {
	best := func(filter func(NodeInfo) bool) (NodeInfo, bool) {
		var out NodeInfo
		score := math.Inf(1)
		for _, n := range nodes {
			if n.Draining || !filter(n) {
				continue
			}
			if u := n.utilization(); u < score || (u == score && n.ID < out.ID) {
				out, score = n, u
			}
		}
		return out, !math.IsInf(score, 1)
	}
	hasRoom := func(n NodeInfo) bool { return n.Capacity <= 0 || n.Load < n.Capacity }
	if region != "" {
		if n, ok := best(func(n NodeInfo) bool { return n.Region == region && hasRoom(n) }); ok {
			return n, true
		}
	}
	if n, ok := best(hasRoom); ok {
		return n, true
	}
	// Everyone is full: the least utilized still beats refusing the class.
	return best(func(NodeInfo) bool { return true })
}

// PlaceEdge returns the node that should serve a classroom (or viewer) of
// a lesson: the lesson's owner, unless the owner is outside the client's
// region or full and another live node fits better, which then serves as
// an edge (package cascade relays the lesson's tracks to it). Classrooms
// of a region thus gather on that region's node, and a lesson outgrows its
// owner by spilling onto the least utilized nodes.
func (r *Registry) PlaceEdge(ctx context.Context, lesson, region string) (NodeInfo, error) {
	owner, err := r.Place(ctx, lesson, region)
	if err != nil {
		return NodeInfo{}, err
	}
	full := owner.Capacity > 0 && owner.Load >= owner.Capacity
	if !full && (region == "" || owner.Region == region) {
		return owner, nil
	}
	live, _, err := r.scan(ctx)
	if err != nil {
		return NodeInfo{}, err
	}
	others := live[:0]
	for _, n := range live {
		if n.ID != owner.ID {
			others = append(others, n)
		}
	}
	fits := func(n NodeInfo) bool { return !n.Draining && (n.Capacity <= 0 || n.Load < n.Capacity) }
	best, ok := choose(others, region)
	if !ok || !fits(best) {
		return owner, nil
	}
	// A node of the client's region beats an owner elsewhere; any node
	// with room beats a full owner.
	if (region != "" && owner.Region != region && best.Region == region) || full {
		return best, nil
	}
	return owner, nil
}

// placeEdgeHere is PlaceEdge for a client that reached this node: when the
// lesson needs an edge for it and this node fits (room left, not
// draining, in the client's region or none named), this node serves it
// rather than sending it one hop further.
func (r *Registry) placeEdgeHere(ctx context.Context, lesson, region string) (NodeInfo, error) {
	choice, err := r.PlaceEdge(ctx, lesson, region)
	if err != nil {
		return NodeInfo{}, err
	}
	owner, ok, err := r.Owner(ctx, lesson)
	if err != nil || !ok || choice.ID == owner.ID || choice.ID == r.cfg.Node.ID {
		return choice, err
	}
	self, ok, err := r.node(ctx, r.cfg.Node.ID)
	if err != nil || !ok {
		return choice, err
	}
	fits := !self.Draining && (self.Capacity <= 0 || self.Load < self.Capacity)
	if fits && (region == "" || self.Region == region) {
		return self, nil
	}
	return choice, nil
}
