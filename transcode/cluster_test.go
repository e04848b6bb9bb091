package transcode

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"podium/internal/testenv"
	"podium/replaydb"
	"podium/storage"
	"podium/storage/s3/s3test"
	"podium/vod"
)

// countingStore is a store that counts its calls by method and the assets
// records published per lesson (each is one whole transcode's output).
type countingStore struct {
	storage.Store
	mu        sync.Mutex
	calls     map[string]int
	published map[string]int
}

func newCountingStore(s storage.Store) *countingStore {
	return &countingStore{Store: s, calls: map[string]int{}, published: map[string]int{}}
}

func (c *countingStore) count(method string) {
	c.mu.Lock()
	c.calls[method]++
	c.mu.Unlock()
}

func (c *countingStore) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	c.count("Put")
	err := c.Store.Put(ctx, key, r, size, contentType)
	if rest, ok := strings.CutPrefix(key, "lessons/"); ok && err == nil {
		if lesson, file, _ := strings.Cut(rest, "/"); file == "vod/"+vod.AssetsFile {
			c.mu.Lock()
			c.published[lesson]++
			c.mu.Unlock()
		}
	}
	return err
}

func (c *countingStore) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	c.count("Get")
	return c.Store.Get(ctx, key)
}

func (c *countingStore) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	c.count("Stat")
	return c.Store.Stat(ctx, key)
}

func (c *countingStore) List(ctx context.Context, prefix string) ([]storage.ObjectInfo, error) {
	c.count("List")
	return c.Store.List(ctx, prefix)
}

func (c *countingStore) ListDirs(ctx context.Context, prefix string) ([]string, error) {
	c.count("ListDirs")
	return c.Store.ListDirs(ctx, prefix)
}

func (c *countingStore) snapshot() (calls, published map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	calls, published = map[string]int{}, map[string]int{}
	for k, v := range c.calls {
		calls[k] = v
	}
	for k, v := range c.published {
		published[k] = v
	}
	return calls, published
}

// cloneRecording copies the recording of lesson src in from to lesson dst
// in to (objects and a manifest naming them), so tests make each kind of
// recording with ffmpeg once.
func cloneRecording(t testing.TB, from storage.Store, src string, to storage.Store, dst string) {
	t.Helper()
	ctx := context.Background()
	objs, err := from.List(ctx, "lessons/"+src+"/")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		b, err := readAll(ctx, from, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		key := "lessons/" + dst + strings.TrimPrefix(o.Key, "lessons/"+src)
		if key == vod.ManifestKey(dst) {
			b = bytes.ReplaceAll(b, []byte(`"lessons/`+src+`/`), []byte(`"lessons/`+dst+`/`))
			b = bytes.Replace(b, []byte(`"lesson":"`+src+`"`), []byte(`"lesson":"`+dst+`"`), 1)
			defer func() { // the manifest last, as the recorder does
				if err := to.Put(ctx, key, bytes.NewReader(b), int64(len(b)), "application/json"); err != nil {
					t.Fatal(err)
				}
			}()
			continue
		}
		if err := to.Put(ctx, key, bytes.NewReader(b), int64(len(b)), ""); err != nil {
			t.Fatal(err)
		}
	}
}

// TestThreeNodesPostgres: three nodes (three River clients) sharing one
// PostgreSQL and one MinIO transcode each of 10 lessons exactly once, with
// one node stopped hard in the middle of a job, which another finishes;
// a job canceled through one node stops on the node running it.
func TestThreeNodesPostgres(t *testing.T) {
	dsn := testenv.StartPostgres(t)
	testThreeNodes(t, func(t testing.TB) *replaydb.DB { return openDB(t, dsn) })
}

// TestThreeNodesSQLite: the same on the embedded SQLite database, three
// River clients on one file as three processes of one machine would.
func TestThreeNodesSQLite(t *testing.T) {
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "podium.db")
	testThreeNodes(t, func(t testing.TB) *replaydb.DB { return openDB(t, dsn) })
}

func openDB(t testing.TB, dsn string) *replaydb.DB {
	t.Helper()
	db, err := replaydb.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func testThreeNodes(t *testing.T, open func(testing.TB) *replaydb.DB) {
	src := localStore(t)
	writeRecording(t, src, "long", 16, true)
	writeRecording(t, src, "short", 4, true)
	_, s3 := s3test.Start(t, "podium")
	store := newCountingStore(s3)
	var lessons []string
	for i := range 10 {
		lesson := fmt.Sprintf("lesson-%02d", i)
		from := "short"
		if i == 0 {
			from = "long" // first in the scan: the job the killed node holds
		}
		cloneRecording(t, src, from, store, lesson)
		lessons = append(lessons, lesson)
	}

	cfg := QueueConfig{Config: tiny, Workers: 1, PollInterval: 200 * time.Millisecond}
	cfg.NodeID = "node-0"
	n0 := startNode(t, open(t), store, cfg)
	// Node 0 alone scans, queues every lesson and starts the first.
	var held int64
	testenv.WaitFor(t, 60*time.Second, "node 0 to encode a lesson", func() bool {
		n0.mu.Lock()
		defer n0.mu.Unlock()
		for id, r := range n0.running {
			if r.phase == "encode" {
				held = id
				return true
			}
		}
		return false
	})
	cfg.NodeID = "node-1"
	n1 := startNode(t, open(t), store, cfg)
	cfg.NodeID = "node-2"
	n2 := startNode(t, open(t), store, cfg)
	n0.stop() // killed mid-job: its ffmpeg dies, the job goes back

	var jobs []Job
	testenv.WaitFor(t, 180*time.Second, "every lesson transcoded", func() bool {
		var err error
		jobs, err = n1.Jobs(context.Background(), 100)
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, j := range jobs {
			if j.State == StateDone {
				done++
			}
		}
		return done >= len(lessons)
	})
	// One job per lesson, done; one output per lesson.
	seen := map[string]Job{}
	byNode := map[string]int{}
	for _, j := range jobs {
		if _, dup := seen[j.Lesson]; dup || j.Kind != KindLesson {
			t.Fatalf("more than one job for %s, or a stray one: %+v", j.Lesson, jobs)
		}
		seen[j.Lesson] = j
		byNode[j.Node]++
		if j.State != StateDone || j.Attempts != 1 {
			t.Errorf("job %+v", j)
		}
	}
	_, published := store.snapshot()
	for _, l := range lessons {
		if _, ok := seen[l]; !ok {
			t.Errorf("lesson %s has no job", l)
		}
		if published[l] != 1 {
			t.Errorf("lesson %s transcoded %d times, want once", l, published[l])
		}
	}
	h, err := n1.Job(context.Background(), fmt.Sprint(held))
	if err != nil || h.State != StateDone || h.Node == "node-0" {
		t.Fatalf("the killed node's job: %+v, %v", h, err)
	}
	t.Logf("jobs by node: %v; the killed node's job %s (%s) finished on %s", byNode, h.ID, h.Lesson, h.Node)

	// A cancel asked of one node stops the job where it runs.
	cloneRecording(t, src, "long", store, "to-cancel")
	var c Job
	testenv.WaitFor(t, 60*time.Second, "the new recording's job to run", func() bool {
		var ok bool
		c, ok = lessonJob(t, n1.Queue, "to-cancel")
		return ok && c.State == StateRunning
	})
	other := n1
	if c.Node == "node-1" {
		other = n2
	}
	if _, err := other.Cancel(context.Background(), c.ID); err != nil {
		t.Fatal(err)
	}
	if c = waitJob(t, other.Queue, c.ID, 30*time.Second); c.State != StateCanceled {
		t.Fatalf("job canceled from the other node: %+v", c)
	}
	if _, published := store.snapshot(); published["to-cancel"] != 0 {
		t.Errorf("a canceled job published its lesson")
	}
}
