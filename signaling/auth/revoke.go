package auth

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Revocation is one revoked token.
type Revocation struct {
	ID        string    // the token's jti
	ExpiresAt time.Time // after it, the token is refused anyway and the entry can go
	By        string    // who revoked it (a token subject, or "cli")
	Reason    string
}

// RevocationStore keeps revoked token ids where every node and every
// restart sees them (the replay database).
type RevocationStore interface {
	// RevokedIDs lists the ids of revoked tokens not yet expired at now.
	RevokedIDs(ctx context.Context, now time.Time) ([]string, error)
	Revoke(ctx context.Context, r Revocation) error
}

// Revocations is the set of revoked token ids, held in memory so that
// checking one costs a map lookup, and reloaded from the store every
// interval (another node's revocation reaches this one within it).
type Revocations struct {
	store RevocationStore
	log   *slog.Logger

	mu  sync.RWMutex
	ids map[string]struct{}
}

// NewRevocations loads the current set; it fails when the store cannot be
// read, since serving revoked tokens is worse than not starting.
func NewRevocations(ctx context.Context, store RevocationStore, log *slog.Logger) (*Revocations, error) {
	r := &Revocations{store: store, log: log}
	if err := r.Reload(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Revoked reports whether the token id is revoked.
func (r *Revocations) Revoked(jti string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.ids[jti]
	return ok
}

// Revoke stores the revocation and applies it on this node at once.
func (r *Revocations) Revoke(ctx context.Context, rev Revocation) error {
	if rev.ID == "" || rev.ExpiresAt.IsZero() {
		return fmt.Errorf("revoke: a token id and its expiry are required")
	}
	if err := r.store.Revoke(ctx, rev); err != nil {
		return fmt.Errorf("revoke token %s: %w", rev.ID, err)
	}
	r.mu.Lock()
	r.ids[rev.ID] = struct{}{}
	r.mu.Unlock()
	return nil
}

// Reload reads the set from the store.
func (r *Revocations) Reload(ctx context.Context) error {
	ids, err := r.store.RevokedIDs(ctx, time.Now())
	if err != nil {
		return fmt.Errorf("load revoked tokens: %w", err)
	}
	set := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		set[id] = struct{}{}
	}
	r.mu.Lock()
	r.ids = set
	r.mu.Unlock()
	return nil
}

// Run reloads every interval until ctx ends. A failed reload keeps the last
// set (and is logged): a database blip must not un-revoke anything.
func (r *Revocations) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.Reload(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("auth: revocation list not refreshed", "err", err)
			}
		}
	}
}
