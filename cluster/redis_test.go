package cluster

import (
	"testing"
	"time"

	"podium/internal/testenv"
)

// startRedis runs a real redis-server for the test and returns its address.
func startRedis(t testing.TB) string { return testenv.StartRedis(t) }

// waitFor polls cond until it holds or 20 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func startRedisB(b *testing.B) string { return startRedis(b) }

func startNodeB(b *testing.B, addr string) *Registry { return startNodeWith(b, addr, "bench") }

func startNodeWith(tb testing.TB, addr, id string) *Registry {
	return startNode(tb, addr, NodeInfo{ID: id, URL: "http://" + id, Capacity: 100}, &fakeLoad{})
}
