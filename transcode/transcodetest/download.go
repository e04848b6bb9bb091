package transcodetest

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"podium/storage"
)

// Download copies every object under prefix into a new directory, keeping
// the relative layout, so ffmpeg and ffprobe read playlists as a player
// would, and returns the directory.
func Download(t testing.TB, store storage.Store, prefix string) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	objs, err := store.List(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		rc, _, err := store.Get(ctx, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("read %s: %v", o.Key, err)
		}
		p := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(o.Key, prefix)))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
