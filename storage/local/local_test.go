package local

import (
	"os"
	"path/filepath"
	"testing"

	"podium/storage/storetest"
)

func TestLocalStore(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	storetest.Run(t, s)
}

func TestLocalRemovesCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	left := filepath.Join(dir, "lessons", "x", tmpPrefix+"123")
	if err := os.MkdirAll(filepath.Dir(left), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(left, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Fatalf("leftover temp file still there: %v", err)
	}
	if list, _ := s.List(t.Context(), ""); len(list) != 0 {
		t.Fatalf("list = %v, want empty", list)
	}
}
