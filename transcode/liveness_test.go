package transcode

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"

	"podium/internal/testenv"
	"podium/replaydb"
)

// TestDeadNodesJobIsRescuedPostgres: a job left running by a node that
// stopped heartbeating is run again by a live node, as a failed attempt;
// a job left running by a node without heartbeats (an older version) is
// left to River's own rescuer.
func TestDeadNodesJobIsRescuedPostgres(t *testing.T) {
	testDeadNodesJob(t, openDB(t, testenv.StartPostgres(t)))
}

// TestDeadNodesJobIsRescuedSQLite: the same on the embedded database.
func TestDeadNodesJobIsRescuedSQLite(t *testing.T) {
	testDeadNodesJob(t, openDB(t, "sqlite:"+filepath.Join(t.TempDir(), "podium.db")))
}

func testDeadNodesJob(t *testing.T, db *replaydb.DB) {
	ctx := context.Background()
	store := localStore(t)
	writeRecording(t, store, "orphan", 4, true)
	writeRecording(t, store, "legacy", 4, true)
	// A node that only queues, and two nodes that took a job each and
	// died an hour ago: one wrote heartbeats, one never did.
	q := startNode(t, db, store, QueueConfig{Config: tiny, Workers: -1}).Queue
	orphan, err := q.EnqueueLesson(ctx, "orphan")
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := q.EnqueueLesson(ctx, "legacy")
	if err != nil {
		t.Fatal(err)
	}
	ago := time.Now().Add(-time.Hour)
	claimAsDeadNode(t, q, orphan.ID, "dead-node", ago, true)
	claimAsDeadNode(t, q, legacy.ID, "old-node", ago, false)

	n := startNode(t, db, store, QueueConfig{Config: tiny, Workers: 1, RescueAfter: time.Second,
		RetryBackoff: 100 * time.Millisecond, NodeID: "survivor"})
	j := waitJob(t, n.Queue, orphan.ID, 2*time.Minute)
	if j.State != StateDone || j.Attempts != 2 || j.Node != "survivor" || !strings.Contains(j.Error, "node dead-node stopped: no heartbeat") {
		t.Fatalf("the dead node's job: %+v", j)
	}
	l, err := n.Job(ctx, legacy.ID)
	if err != nil || l.State != StateRunning || l.Attempts != 1 || l.Node != "old-node" {
		t.Fatalf("the job of a node without heartbeats was touched: %+v, %v", l, err)
	}
}

// claimAsDeadNode makes a queued job look taken by node at, as River's
// fetch leaves it, with a last heartbeat at that time if beat.
func claimAsDeadNode(t *testing.T, q *Queue, id, node string, at time.Time, beat bool) {
	t.Helper()
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	md := []byte("{}")
	if beat {
		hb, _ := json.Marshal(heartbeat{Attempt: 1, At: at, Node: node})
		md, _ = json.Marshal(map[string]json.RawMessage{heartbeatKey: hb})
	}
	_, err = q.jobs.exec.JobUpdateFull(context.Background(), &riverdriver.JobUpdateFullParams{
		ID:                  n,
		AttemptDoUpdate:     true,
		Attempt:             1,
		AttemptedAtDoUpdate: true,
		AttemptedAt:         &at,
		AttemptedByDoUpdate: true,
		AttemptedBy:         []string{node},
		MetadataDoUpdate:    true,
		Metadata:            md,
		StateDoUpdate:       true,
		State:               rivertype.JobStateRunning,
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestJobTakenFromLiveNodeStops: when a node's job is taken from it (as
// the rescue does to a node cut off from the database for longer than
// RescueAfter), its next heartbeat is refused and it stops the job at
// once; the job runs again and the lesson is published once.
func TestJobTakenFromLiveNodeStops(t *testing.T) {
	ctx := context.Background()
	store := newCountingStore(localStore(t))
	writeRecording(t, store, "taken", 16, true)
	n := startNode(t, sqliteDB(t), store, QueueConfig{Config: tiny, Workers: 1, RescueAfter: time.Second,
		RetryBackoff: 100 * time.Millisecond, NodeID: "cut-off"})
	j, err := n.EnqueueLesson(ctx, "taken")
	if err != nil {
		t.Fatal(err)
	}
	id, _ := strconv.ParseInt(j.ID, 10, 64)
	testenv.WaitFor(t, time.Minute, "the node to encode the lesson", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		r := n.running[id]
		return r != nil && r.phase == "encode"
	})
	// Another node's rescue of it, as if this node's heartbeats had not
	// reached the database for a while.
	e, _ := json.Marshal(rivertype.AttemptError{At: time.Now(), Attempt: 1, Error: "rescued by the test"})
	if err := n.jobs.rescue(ctx, &riverdriver.JobRescueManyParams{
		ID: []int64{id}, Error: [][]byte{e}, FinalizedAt: []*time.Time{nil},
		ScheduledAt: []time.Time{time.Now()}, State: []string{string(rivertype.JobStateRetryable)},
		StuckHorizon: time.Now().Add(time.Minute),
	}); err != nil {
		t.Fatal(err)
	}
	taken := time.Now()
	testenv.WaitFor(t, 30*time.Second, "the node to stop the job taken from it", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		r := n.running[id]
		return r == nil || r.phase == "starting" || r.phase == "fetch" // stopped, or running its next attempt
	})
	t.Logf("the node stopped its taken job %.2fs after the rescue", time.Since(taken).Seconds())
	j = waitJob(t, n.Queue, j.ID, 2*time.Minute)
	if j.State != StateDone || j.Attempts != 2 {
		t.Fatalf("the taken job: %+v", j)
	}
	if _, published := store.snapshot(); published["taken"] != 1 {
		t.Fatalf("lesson published %d times, want once", published["taken"])
	}
}
