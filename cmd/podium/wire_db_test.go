package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"podium/replaydb"
	"podium/signaling/auth"
)

// TestRevocationsOutliveTheirTokensOnly: a revocation is applied while its
// token could still be accepted, and dropped from the database once the
// token has expired anyway.
func TestRevocationsOutliveTheirTokensOnly(t *testing.T) {
	ctx := context.Background()
	db, err := replaydb.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "podium.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store := revocationStore{db}
	now := time.Now()
	for id, exp := range map[string]time.Time{"long-gone": now.Add(-2 * time.Minute), "just-expired": now.Add(-time.Second), "alive": now.Add(time.Hour)} {
		if err := store.Revoke(ctx, auth.Revocation{ID: id, ExpiresAt: exp, By: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := store.RevokedIDs(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, id := range ids {
		got[id] = true
	}
	if len(ids) != 2 || !got["alive"] || !got["just-expired"] {
		t.Fatalf("revoked ids = %v, want alive and just-expired (still within the clock leeway's reach)", ids)
	}
	left, err := db.ListRevocations(ctx)
	if err != nil || len(left) != 2 {
		t.Fatalf("revocations kept = %+v, %v; want the long-gone one pruned", left, err)
	}
}
