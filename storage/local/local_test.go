package local

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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

// Stored recordings are private to the server's user: objects are 0600 in
// 0700 directories, and a tree an older version left open (0755
// directories, 0644 files) is tightened when the store opens.
func TestLocalFilesArePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	old := filepath.Join(dir, "lessons", "old", "manifest.json")
	if err := os.MkdirAll(filepath.Dir(old), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(old, []byte(`{"lesson":"old"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Join(dir, "lessons"), filepath.Dir(old)} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(old, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	body := "a segment of a lesson"
	if err := s.Put(t.Context(), "lessons/new/tracks/cam/000000.m4s", strings.NewReader(body), int64(len(body)), "video/iso.segment"); err != nil {
		t.Fatal(err)
	}
	want := map[string]fs.FileMode{
		dir:                                      0o700,
		filepath.Join(dir, "lessons"):            0o700,
		filepath.Dir(old):                        0o700,
		old:                                      0o600,
		filepath.Join(dir, "lessons/new"):        0o700,
		filepath.Join(dir, "lessons/new/tracks"): 0o700,
		filepath.Join(dir, "lessons/new/tracks/cam"):            0o700,
		filepath.Join(dir, "lessons/new/tracks/cam/000000.m4s"): 0o600,
	}
	seen := 0
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		w, ok := want[p]
		if !ok {
			t.Errorf("unexpected %s", p)
			return nil
		}
		seen++
		if got := st.Mode().Perm(); got != w {
			t.Errorf("%s is %o, want %o", p, got, w)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != len(want) {
		t.Fatalf("saw %d of %d paths", seen, len(want))
	}
	rc, _, err := s.Get(t.Context(), "lessons/old/manifest.json")
	if err != nil {
		t.Fatalf("the tightened object no longer reads: %v", err)
	}
	rc.Close()
}
