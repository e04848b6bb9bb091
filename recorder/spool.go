package recorder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"podium/internal/privfs"
	"podium/storage"
)

// ErrSpoolFull is returned when a closed segment does not fit under the
// spool's byte limit; the segment is dropped and the drop reported.
var ErrSpoolFull = errors.New("recording spool is full")

// spool is the bounded local directory every closed segment is written to
// before it is uploaded, so that a storage outage or a crash of this process
// does not lose it. Files are named by their storage key.
type spool struct {
	dir string
	max int64

	mu    sync.Mutex
	bytes int64
}

const stateFile = "state.json" // full manifest, pending segments included

// Spooled segments are recordings of children: readable by this server's
// user only.
const (
	spoolDirMode  fs.FileMode = 0o700
	spoolFileMode fs.FileMode = 0o600
)

func openSpool(dir string, max int64) (*spool, error) {
	if err := os.MkdirAll(dir, spoolDirMode); err != nil {
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	// Walk the real directory, not a symlink to it.
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	s := &spool{dir: dir, max: max}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		// What an older version (0644 files, 0755 directories) or another
		// tool left is made private too.
		if err := privfs.Restrict(p, d); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if filepath.Ext(p) == ".tmp" {
			_ = os.Remove(p) // a write that never finished
			return nil
		}
		if d.Name() != stateFile {
			if st, err := d.Info(); err == nil {
				s.bytes += st.Size()
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	return s, nil
}

func (s *spool) path(key string) (string, error) {
	if err := storage.ValidateKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.dir, filepath.FromSlash(key)), nil
}

// put writes a segment durably (temp file, fsync, rename).
func (s *spool) put(key string, data []byte) error {
	s.mu.Lock()
	if s.max > 0 && s.bytes+int64(len(data)) > s.max {
		s.mu.Unlock()
		return fmt.Errorf("%w: %d bytes spooled, limit %d", ErrSpoolFull, s.bytes, s.max)
	}
	s.bytes += int64(len(data))
	s.mu.Unlock()
	if err := s.write(key, data); err != nil {
		s.mu.Lock()
		s.bytes -= int64(len(data))
		s.mu.Unlock()
		return err
	}
	return nil
}

func (s *spool) write(key string, data []byte) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), spoolDirMode); err != nil {
		return fmt.Errorf("spool %s: %w", key, err)
	}
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, spoolFileMode)
	if err != nil {
		return fmt.Errorf("spool %s: %w", key, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("spool %s: %w", key, err)
	}
	return nil
}

func (s *spool) read(key string) ([]byte, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(p)
}

func (s *spool) has(key string) bool {
	p, err := s.path(key)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

func (s *spool) remove(key string) {
	p, err := s.path(key)
	if err != nil {
		return
	}
	st, err := os.Stat(p)
	if err != nil {
		return
	}
	if os.Remove(p) == nil {
		s.mu.Lock()
		s.bytes -= st.Size()
		s.mu.Unlock()
	}
}

func (s *spool) stateKey(lesson string) string { return "lessons/" + lesson + "/" + stateFile }

func (s *spool) writeState(lesson string, data []byte) error {
	return s.write(s.stateKey(lesson), data)
}

// removeLesson deletes what is left of a lesson once everything is uploaded.
func (s *spool) removeLesson(lesson string) {
	dir := filepath.Join(s.dir, "lessons", lesson)
	var size int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != stateFile {
			if st, err := d.Info(); err == nil {
				size += st.Size()
			}
		}
		return nil
	})
	if os.RemoveAll(dir) == nil {
		s.mu.Lock()
		s.bytes -= size
		s.mu.Unlock()
	}
}

// lessons returns the ids of lessons with something spooled.
func (s *spool) lessons() []string {
	ents, _ := os.ReadDir(filepath.Join(s.dir, "lessons"))
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// files returns the spooled object keys of a lesson, ordered.
func (s *spool) files(lesson string) []string {
	var out []string
	root := filepath.Join(s.dir, "lessons", lesson)
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == stateFile || filepath.Ext(p) == ".tmp" {
			return nil
		}
		rel, err := filepath.Rel(s.dir, p)
		if err == nil {
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out
}

func (s *spool) size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}
