package cluster

import (
	"testing"

	"podium/internal/testenv"
)

// startRedis runs a real redis-server for the test and returns its address.
func startRedis(t testing.TB) string { return testenv.StartRedis(t) }

func startRedisB(b *testing.B) string { return startRedis(b) }

func startNodeB(b *testing.B, addr string) *Registry { return startNodeWith(b, addr, "bench") }

func startNodeWith(tb testing.TB, addr, id string) *Registry {
	return startNode(tb, addr, NodeInfo{ID: id, URL: "http://" + id, Capacity: 100}, &fakeLoad{})
}
