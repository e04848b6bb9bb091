package replaydb

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Revocation is one revoked token. It is kept until the token would have
// expired anyway (PruneRevocations).
type Revocation struct {
	JTI       string    // the token's id (its jti claim)
	ExpiresAt time.Time // the token's expiry
	RevokedAt time.Time
	RevokedBy string // who revoked it: a token subject, or "cli"
	Reason    string
}

// RevokeToken records a revocation. Revoking a token again changes nothing:
// the first revocation is kept.
func (d *DB) RevokeToken(ctx context.Context, r Revocation) error {
	if r.JTI == "" || r.ExpiresAt.IsZero() {
		return errors.New("replaydb: revoke token: a token id and its expiry are required")
	}
	if r.RevokedAt.IsZero() {
		r.RevokedAt = d.now()
	}
	_, err := d.db.ExecContext(ctx, `INSERT INTO revocations (jti, expires_at, revoked_at, revoked_by, reason)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (jti) DO NOTHING`,
		r.JTI, ms(r.ExpiresAt), ms(r.RevokedAt), r.RevokedBy, r.Reason)
	if err != nil {
		return fmt.Errorf("replaydb: revoke token %s: %w", r.JTI, err)
	}
	return nil
}

// IsRevoked reports whether the token with this id was revoked.
func (d *DB) IsRevoked(ctx context.Context, jti string) (bool, error) {
	var n int
	if err := d.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM revocations WHERE jti = $1", jti).Scan(&n); err != nil {
		return false, fmt.Errorf("replaydb: is token %s revoked: %w", jti, err)
	}
	return n > 0, nil
}

// ListRevocations lists every kept revocation, newest first.
func (d *DB) ListRevocations(ctx context.Context) ([]Revocation, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT jti, expires_at, revoked_at, revoked_by, reason
FROM revocations ORDER BY revoked_at DESC, jti`)
	if err != nil {
		return nil, fmt.Errorf("replaydb: list revocations: %w", err)
	}
	defer rows.Close()
	var out []Revocation
	for rows.Next() {
		var r Revocation
		var exp, at int64
		if err := rows.Scan(&r.JTI, &exp, &at, &r.RevokedBy, &r.Reason); err != nil {
			return nil, fmt.Errorf("replaydb: list revocations: %w", err)
		}
		r.ExpiresAt, r.RevokedAt = fromMS(exp), fromMS(at)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("replaydb: list revocations: %w", err)
	}
	return out, nil
}

// PruneRevocations drops the revocations of tokens expired at now (they are
// refused anyway) and returns how many it dropped.
func (d *DB) PruneRevocations(ctx context.Context, now time.Time) (int64, error) {
	res, err := d.db.ExecContext(ctx, "DELETE FROM revocations WHERE expires_at <= $1", ms(now))
	if err != nil {
		return 0, fmt.Errorf("replaydb: prune revocations: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("replaydb: prune revocations: %w", err)
	}
	return n, nil
}
