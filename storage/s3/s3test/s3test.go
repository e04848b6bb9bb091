// Package s3test gives tests a storage.Store on a real MinIO server started
// for the test (testenv.StartMinIO), so every package tests against the same
// thing production runs on.
package s3test

import (
	"context"
	"testing"
	"time"

	"podium/internal/testenv"
	"podium/storage"
	"podium/storage/s3"
)

// Start runs a fresh MinIO for the test and returns it with a store on the
// given bucket (created when missing). The server stops in t.Cleanup.
func Start(t testing.TB, bucket string) (*testenv.MinIO, storage.Store) {
	t.Helper()
	m := testenv.StartMinIO(t)
	// A fresh MinIO may answer "server not initialized" for a moment after
	// its readiness probe passes.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := s3.New(ctx, s3.Config{Endpoint: m.Endpoint, Bucket: bucket, AccessKey: m.AccessKey, SecretKey: m.SecretKey})
		cancel()
		if err == nil {
			return m, s
		}
		if time.Now().After(deadline) {
			t.Fatalf("s3 store on MinIO %s: %v", m.Endpoint, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
