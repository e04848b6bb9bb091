package cluster

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkPlaceExisting is the cost a join pays on a node that does not
// own the lesson: finding the live owner (two Redis reads on loopback).
func BenchmarkPlaceExisting(b *testing.B) {
	addr := startRedisB(b)
	r := startNodeB(b, addr)
	ctx := context.Background()
	if _, err := r.Place(ctx, "bench-lesson", ""); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := r.Place(ctx, "bench-lesson", ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlaceNew places a new lesson each time among 10 nodes.
func BenchmarkPlaceNew(b *testing.B) {
	addr := startRedisB(b)
	r := startNodeB(b, addr)
	for i := range 9 {
		startNodeWith(b, addr, fmt.Sprintf("peer-%d", i))
	}
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		if _, err := r.Place(ctx, fmt.Sprintf("lesson-%d", i), ""); err != nil {
			b.Fatal(err)
		}
	}
}
