package recorder

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"podium/sfu"
)

// Spooled recordings are private to the server's user: a spool an older
// version left world-readable (0755 directories, 0644 files) is tightened
// when the recorder starts, and every segment and state file written while
// storage is down is 0600 in 0700 directories.
func TestSpoolFilesArePrivate(t *testing.T) {
	t.Parallel()
	minio, store := minioStore(t)
	minio.Stop() // segments stay in the spool

	dir := filepath.Join(t.TempDir(), "spool")
	old := filepath.Join(dir, "lessons", "old", "tracks", "cam", "000001.m4s")
	if err := os.MkdirAll(filepath.Dir(old), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(old, []byte("an older version's segment"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Join(dir, "lessons"), filepath.Dir(old)} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(old, 0o644); err != nil { // whatever the umask made of it
		t.Fatal(err)
	}

	rec := newRecorder(t, store, dir)
	f := startLesson(t, rec, "private")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	_, _, wait := f.publish(t, ctx, "mic", sfu.SourceMicrophone, codecOpus)
	wait()
	f.room.End("lesson over")

	var files, dirs int
	var newSegments, states int
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		perm := st.Mode().Perm()
		if d.IsDir() {
			dirs++
			if perm != 0o700 {
				t.Errorf("directory %s is %o, want 700", p, perm)
			}
			return nil
		}
		files++
		if perm != 0o600 {
			t.Errorf("file %s is %o, want 600", p, perm)
		}
		rel, _ := filepath.Rel(dir, p)
		if strings.HasPrefix(filepath.ToSlash(rel), "lessons/private/") {
			if d.Name() == stateFile {
				states++
			} else {
				newSegments++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); err != nil {
		t.Fatalf("the old segment is gone (storage is down): %v", err)
	}
	if newSegments == 0 || states == 0 {
		t.Fatalf("nothing of the new lesson spooled (%d segments, %d state files); the test proves nothing", newSegments, states)
	}
	t.Logf("%d files, %d directories checked", files, dirs)
}
