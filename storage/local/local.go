// Package local is the embedded storage backend: objects are files under one
// directory, written atomically (temporary file, fsync, rename) so a reader
// never sees half an object. It knows nothing of media or of S3.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"podium/internal/privfs"
	"podium/storage"
)

// tmpPrefix marks files being written; List skips them and New removes
// leftovers of a crash.
const tmpPrefix = ".tmp-"

// Store keeps objects as files under Root.
type Store struct {
	root string
}

var _ storage.Store = (*Store)(nil)

// New opens (creating it when missing) a store rooted at dir.
func New(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("local storage %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, dirMode); err != nil {
		return nil, fmt.Errorf("local storage %s: %w", dir, err)
	}
	// Walk the real directory, not a symlink to it.
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	s := &Store{root: abs}
	err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		// A crash mid-Put leaves a temporary file behind; it was never visible.
		if !d.IsDir() && strings.HasPrefix(d.Name(), tmpPrefix) {
			_ = os.Remove(p)
			return nil
		}
		// What an older version (0755 directories) or another tool left is
		// made private too.
		return privfs.Restrict(p, d)
	})
	if err != nil {
		return nil, fmt.Errorf("local storage %s: %w", dir, err)
	}
	return s, nil
}

// Objects are recordings of children: readable by this server's user only.
// Files get 0600 from os.CreateTemp.
const dirMode fs.FileMode = 0o700

// Root returns the directory objects are stored under.
func (s *Store) Root() string { return s.root }

func (s *Store) path(key string) (string, error) {
	if err := storage.ValidateKey(key); err != nil {
		return "", err
	}
	for _, el := range strings.Split(key, "/") {
		if strings.HasPrefix(el, tmpPrefix) {
			return "", fmt.Errorf("%w: %q", storage.ErrInvalidKey, key)
		}
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// Put writes the object to a temporary file next to its final place and
// renames it there, so the object appears whole or not at all. A short body
// (fewer than size bytes) is an error. Disk-full errors are returned wrapped
// (errors.Is(err, syscall.ENOSPC)).
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), dirMode); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	f, err := os.CreateTemp(filepath.Dir(p), tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("put %s: %w", key, err)
	}
	var n int64
	if size >= 0 {
		n, err = io.Copy(f, io.LimitReader(ctxReader{ctx, r}, size))
		if err == nil && n != size {
			err = fmt.Errorf("short body: %d of %d bytes", n, size)
		}
	} else {
		_, err = io.Copy(f, ctxReader{ctx, r})
	}
	if err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Get opens an object.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, storage.ObjectInfo{}, notFound(key, err)
	}
	st, err := f.Stat()
	if err != nil || st.IsDir() {
		f.Close()
		return nil, storage.ObjectInfo{}, fmt.Errorf("get %s: %w", key, storage.ErrNotFound)
	}
	return f, info(key, st), nil
}

// Stat describes an object.
func (s *Store) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	st, err := os.Stat(p)
	if err != nil {
		return storage.ObjectInfo{}, notFound(key, err)
	}
	if st.IsDir() {
		return storage.ObjectInfo{}, fmt.Errorf("stat %s: %w", key, storage.ErrNotFound)
	}
	return info(key, st), nil
}

// List returns the objects whose key starts with prefix, ordered by key.
func (s *Store) List(ctx context.Context, prefix string) ([]storage.ObjectInfo, error) {
	if err := storage.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	// Walk from the deepest directory the prefix names, then filter.
	dir := s.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		dir = filepath.Join(s.root, filepath.FromSlash(prefix[:i]))
	}
	var out []storage.ObjectInfo
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		st, err := d.Info()
		if err != nil {
			return nil // removed while listing
		}
		out = append(out, info(key, st))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// ListDirs returns the directory names directly under prefix.
func (s *Store) ListDirs(ctx context.Context, prefix string) ([]string, error) {
	if err := storage.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		return nil, fmt.Errorf("list dirs %q: %w: the prefix must end in /", prefix, storage.ErrInvalidKey)
	}
	entries, err := os.ReadDir(filepath.Join(s.root, filepath.FromSlash(prefix)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list dirs %s: %w", prefix, err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), tmpPrefix) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Delete removes an object and the directories it leaves empty.
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	for dir := filepath.Dir(p); dir != s.root && strings.HasPrefix(dir, s.root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	return nil
}

func notFound(key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: %w", key, storage.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", key, err)
}

func info(key string, st fs.FileInfo) storage.ObjectInfo {
	return storage.ObjectInfo{
		Key:          key,
		Size:         st.Size(),
		LastModified: st.ModTime(),
		ContentType:  contentType(key),
		Version:      strconv.FormatInt(st.ModTime().UnixNano(), 10) + "-" + strconv.FormatInt(st.Size(), 10),
	}
}

// contentType guesses from the extension: a directory keeps no metadata.
func contentType(key string) string {
	switch path.Ext(key) {
	case ".m4s":
		return "video/iso.segment"
	case ".mp4":
		return "video/mp4"
	case ".m3u8":
		return "application/vnd.apple.mpegurl"
	case ".json":
		return "application/json"
	}
	return mime.TypeByExtension(path.Ext(key))
}
