package cluster

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"podium/internal/testenv"
)

// startRedis runs a real redis-server on a free loopback port for the test
// and returns its address.
func startRedis(t testing.TB) string {
	t.Helper()
	bin := testenv.RequireBinary(t, "redis-server")
	port := testenv.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	logPath := filepath.Join(dir, "redis.log")
	cmd := exec.CommandContext(ctx, bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", logPath)
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		pctx, pcancel := context.WithTimeout(context.Background(), time.Second)
		err := rdb.Ping(pctx).Err()
		pcancel()
		if err == nil {
			return addr
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("redis-server on %s did not answer: %v\n%s", addr, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

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
