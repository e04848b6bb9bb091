package s3

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"podium/internal/testenv"
	"podium/storage/storetest"
)

func TestS3StoreAgainstMinIO(t *testing.T) {
	m := testenv.StartMinIO(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := New(ctx, Config{Endpoint: m.Endpoint, Bucket: "podium-test", AccessKey: m.AccessKey, SecretKey: m.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	// A second New finds the bucket already there.
	if _, err := New(ctx, Config{Endpoint: m.Endpoint, Bucket: "podium-test", AccessKey: m.AccessKey, SecretKey: m.SecretKey}); err != nil {
		t.Fatalf("second New: %v", err)
	}
	storetest.Run(t, s)

	if err := s.Put(ctx, "lessons/x/manifest.json", strings.NewReader(`{"v":1}`), 7, "application/json"); err != nil {
		t.Fatal(err)
	}
	u, err := s.SignedURL(ctx, "lessons/x/manifest.json", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != `{"v":1}` {
		t.Fatalf("signed GET = %d %q", resp.StatusCode, body)
	}
}

func TestS3WrongCredentials(t *testing.T) {
	m := testenv.StartMinIO(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := New(ctx, Config{Endpoint: m.Endpoint, Bucket: "bucket-x", AccessKey: "nope", SecretKey: "wrongwrong"})
	if err == nil {
		t.Fatal("New with wrong credentials succeeded")
	}
	t.Log(err)
}
