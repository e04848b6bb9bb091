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
//	jobs/{job}.json                            transcode job state
//	catalog/...                                vod catalog records
package storage

import (
	"context"
	"errors"
	"io"
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
	// Delete removes an object; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// URLSigner is implemented by stores that can hand out short-lived URLs a
// browser may fetch directly (MinIO presigned GET).
type URLSigner interface {
	SignedURL(ctx context.Context, key string, ttl time.Duration) (string, error)
}
