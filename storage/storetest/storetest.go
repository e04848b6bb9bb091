// Package storetest is the behaviour every storage.Store backend must have,
// run by each backend's tests against the real thing (a directory, a real
// MinIO server).
package storetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"podium/storage"
)

// Run checks a fresh, empty store.
func Run(t *testing.T, s storage.Store) {
	ctx := context.Background()
	put := func(key, body string) {
		t.Helper()
		if err := s.Put(ctx, key, strings.NewReader(body), int64(len(body)), "application/octet-stream"); err != nil {
			t.Fatalf("Put(%q): %v", key, err)
		}
	}
	get := func(key string) string {
		t.Helper()
		rc, info, err := s.Get(ctx, key)
		if err != nil {
			t.Fatalf("Get(%q): %v", key, err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatalf("read %q: %v", key, err)
		}
		if info.Size != int64(len(b)) || info.Key != key {
			t.Fatalf("Get(%q) info = %+v, read %d bytes", key, info, len(b))
		}
		return string(b)
	}

	put("lessons/a/rec/cam/init.mp4", "init")
	put("lessons/a/rec/cam/000000.m4s", "seg0")
	put("lessons/a/rec/cam/000001.m4s", "seg1")
	put("lessons/ab/manifest.json", "{}")
	dirs, err := s.ListDirs(ctx, "lessons/")
	if err != nil || strings.Join(dirs, ",") != "a,ab" {
		t.Fatalf(`ListDirs("lessons/") = %v, %v; want [a ab]`, dirs, err)
	}
	if dirs, err := s.ListDirs(ctx, "lessons/a/rec/"); err != nil || strings.Join(dirs, ",") != "cam" {
		t.Fatalf(`ListDirs("lessons/a/rec/") = %v, %v; want [cam]`, dirs, err)
	}
	if dirs, err := s.ListDirs(ctx, "nothing/"); err != nil || len(dirs) != 0 {
		t.Fatalf(`ListDirs("nothing/") = %v, %v; want none`, dirs, err)
	}
	if _, err := s.ListDirs(ctx, "lessons"); !errors.Is(err, storage.ErrInvalidKey) {
		t.Fatalf(`ListDirs without a trailing slash = %v, want ErrInvalidKey`, err)
	}
	if got := get("lessons/a/rec/cam/000001.m4s"); got != "seg1" {
		t.Fatalf("got %q, want seg1", got)
	}
	put("lessons/a/rec/cam/000001.m4s", "seg1-replaced")
	if got := get("lessons/a/rec/cam/000001.m4s"); got != "seg1-replaced" {
		t.Fatalf("replace: got %q", got)
	}

	// Unknown size.
	big := bytes.Repeat([]byte("x"), 3<<20)
	if err := s.Put(ctx, "lessons/a/big.bin", bytes.NewReader(big), -1, ""); err != nil {
		t.Fatalf("Put unknown size: %v", err)
	}
	if st, err := s.Stat(ctx, "lessons/a/big.bin"); err != nil || st.Size != int64(len(big)) {
		t.Fatalf("Stat big = %+v, %v", st, err)
	}

	list, err := s.List(ctx, "lessons/a/")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var keys []string
	for _, o := range list {
		keys = append(keys, o.Key)
	}
	want := "lessons/a/big.bin lessons/a/rec/cam/000000.m4s lessons/a/rec/cam/000001.m4s lessons/a/rec/cam/init.mp4"
	if strings.Join(keys, " ") != want {
		t.Fatalf("List(lessons/a/) = %v, want %s", keys, want)
	}
	list, err = s.List(ctx, "lessons/a")
	if err != nil || len(list) != 5 {
		t.Fatalf("List(lessons/a) = %d objects, %v; want 5 (prefix, not directory)", len(list), err)
	}
	if list, err := s.List(ctx, "nothing/here/"); err != nil || len(list) != 0 {
		t.Fatalf("List(missing) = %v, %v", list, err)
	}

	for _, key := range []string{"lessons/none", "lessons/a/rec/cam/999.m4s"} {
		if _, err := s.Stat(ctx, key); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Stat(%q) err = %v, want ErrNotFound", key, err)
		}
		if _, _, err := s.Get(ctx, key); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Get(%q) err = %v, want ErrNotFound", key, err)
		}
	}

	if err := s.Delete(ctx, "lessons/a/rec/cam/000000.m4s"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Delete(ctx, "lessons/a/rec/cam/000000.m4s"); err != nil {
		t.Fatalf("Delete missing: %v", err)
	}
	if _, err := s.Stat(ctx, "lessons/a/rec/cam/000000.m4s"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("deleted object still there: %v", err)
	}

	for _, bad := range []string{"", "/abs", "a/../b", "../x", "a//b", "a/./b", "a\\b", "a/"} {
		err := s.Put(ctx, bad, strings.NewReader("x"), 1, "")
		if !errors.Is(err, storage.ErrInvalidKey) {
			t.Fatalf("Put(%q) err = %v, want ErrInvalidKey", bad, err)
		}
	}
	// A refused key changed nothing.
	if list, _ := s.List(ctx, ""); len(list) != 4 {
		t.Fatalf("after refused puts: %d objects, want 4", len(list))
	}

	// A short body fails and leaves no object.
	if err := s.Put(ctx, "lessons/a/short", strings.NewReader("abc"), 10, ""); err == nil {
		t.Fatal("Put with short body succeeded")
	}
	if _, err := s.Stat(ctx, "lessons/a/short"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("short Put left an object: %v", err)
	}
}
