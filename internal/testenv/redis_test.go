package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The server answers once StartRedis returns, keeps nothing on disk, and
// is gone when the test that started it ends.
func TestStartRedis(t *testing.T) {
	var addr string
	t.Run("running", func(t *testing.T) {
		addr = StartRedis(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		defer rdb.Close()
		if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
			t.Fatalf("SET right after start: %v", err)
		}
		if got, err := rdb.Get(ctx, "k").Result(); err != nil || got != "v" {
			t.Fatalf("GET = %q, %v; want v", got, err)
		}
		cfg, err := rdb.ConfigGet(ctx, "*").Result()
		if err != nil {
			t.Fatalf("CONFIG GET: %v", err)
		}
		if cfg["save"] != "" || cfg["appendonly"] != "no" {
			t.Fatalf("save %q appendonly %q, want no persistence", cfg["save"], cfg["appendonly"])
		}
	})
	if err := redisPing(addr); err == nil {
		t.Fatalf("redis-server on %s still answers after its test ended", addr)
	}
}
