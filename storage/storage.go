// Package storage is where recordings and VOD assets live: one small
// interface with two backends, a local directory (the embedded default, zero
// setup) and MinIO or any S3 (production). It knows nothing of media.
//
// CONTRACT: Store, ObjectInfo, ErrNotFound and the key layout below are used
// by recorder, transcode and vod.
//
// Key layout (documented in docs/ARCHITECTURE.md):
//
//	lessons/{lesson}/manifest.json             recording manifest (recorder.Manifest)
//	lessons/{lesson}/rec/{track}/init.mp4      fMP4 init segment of one recorded track
//	lessons/{lesson}/rec/{track}/{seq}.m4s     fMP4 media segments, seq zero-padded to 6 digits
//	lessons/{lesson}/vod/...                   transcode outputs (HLS ladder, mp4, posters)
//	catalog/...                                vod catalog records
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// ErrNotFound is returned (wrapped) when a key does not exist.
var ErrNotFound = errors.New("object not found")

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key          string    `json:"key"`
	Size         int64     `json:"size"`
	LastModified time.Time `json:"lastModified"`
	ContentType  string    `json:"contentType,omitempty"`
	// Version changes whenever the object is written (S3: its ETag; a
	// file: its modification time in nanoseconds and size). S3 keeps
	// LastModified to the second, so two writes within one second have
	// the same LastModified, not the same Version.
	Version string `json:"version,omitempty"`
}

// Store is an object store. Keys are slash-separated relative paths without
// "..". Implementations are safe for concurrent use.
type Store interface {
	// Put stores size bytes from r under key (size -1 when unknown),
	// replacing any object there. A Put either stores the whole object or
	// returns an error and leaves no partial object visible.
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error
	// Get opens an object for reading.
	Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error)
	// Stat describes an object without reading it.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// List returns every object whose key starts with prefix, ordered by key.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// ListDirs returns the names one level below prefix (which ends in
	// "/", e.g. "lessons/" lists lesson ids), ordered, without listing
	// what is inside them: its cost grows with the names, not the objects.
	ListDirs(ctx context.Context, prefix string) ([]string, error)
	// Delete removes an object; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// URLSigner is implemented by stores that can hand out short-lived URLs a
// browser may fetch directly (MinIO presigned GET).
type URLSigner interface {
	SignedURL(ctx context.Context, key string, ttl time.Duration) (string, error)
}

// ErrInvalidKey is returned (wrapped) for a key a Store refuses: empty,
// absolute, with "..", "." or empty path elements, or with a backslash or
// NUL byte.
var ErrInvalidKey = errors.New("invalid storage key")

// ValidateKey checks that key is a clean relative slash-separated path, the
// only keys a Store accepts. Both backends call it, so a key that works with
// one works with the other.
func ValidateKey(key string) error {
	if key == "" || len(key) > 1024 {
		return fmt.Errorf("%w: %q", ErrInvalidKey, key)
	}
	if strings.ContainsAny(key, "\\\x00") || strings.HasPrefix(key, "/") {
		return fmt.Errorf("%w: %q", ErrInvalidKey, key)
	}
	for _, el := range strings.Split(key, "/") {
		if el == "" || el == "." || el == ".." {
			return fmt.Errorf("%w: %q", ErrInvalidKey, key)
		}
	}
	return nil
}

// ValidatePrefix checks a List prefix: "" (everything) or a key-like string
// that may end in "/".
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return ValidateKey(strings.TrimSuffix(prefix, "/"))
}

// SafeName turns any string into one path element usable in a key: letters,
// digits, '-' and '_' are kept, anything else becomes '_'; an empty result
// becomes "_". It is how track and participant ids enter keys.
func SafeName(s string) string {
	if len(s) > 128 {
		s = s[:128]
	}
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

// ManifestKey is the key of a lesson's recording manifest.
func ManifestKey(lesson string) string { return "lessons/" + lesson + "/manifest.json" }

// RecInitKey is the key of a recorded track's fMP4 init segment.
func RecInitKey(lesson, track string) string {
	return "lessons/" + lesson + "/rec/" + track + "/init.mp4"
}

// RecSegmentKey is the key of a recorded track's media segment.
func RecSegmentKey(lesson, track string, seq int) string {
	return fmt.Sprintf("lessons/%s/rec/%s/%06d.m4s", lesson, track, seq)
}
