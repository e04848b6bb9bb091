// Package s3 is the production storage backend: MinIO or any S3-compatible
// service through minio-go/v7. It knows nothing of media.
package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"podium/storage"
)

// Config says where the bucket is.
type Config struct {
	Endpoint  string // host:port, no scheme
	Bucket    string
	AccessKey string
	SecretKey string
	Region    string
	Secure    bool // https
}

// Store is a bucket.
type Store struct {
	client *minio.Client
	bucket string
}

var (
	_ storage.Store     = (*Store)(nil)
	_ storage.URLSigner = (*Store)(nil)
)

// New connects to the service and creates the bucket when it is missing.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("s3 storage: endpoint and bucket are required")
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: cfg.Secure,
		Region: cfg.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 storage %s: %w", cfg.Endpoint, err)
	}
	s := &Store{client: client, bucket: cfg.Bucket}
	// A server starting beside us (compose, tests) is retried until ctx
	// ends; a refusal (credentials, policy) is final.
	for {
		err := s.ensureBucket(ctx, cfg.Region)
		if err == nil {
			return s, nil
		}
		resp := minio.ToErrorResponse(errors.Unwrap(err))
		var netErr net.Error
		transient := errors.As(err, &netErr) || resp.StatusCode == 503 || resp.Code == "XMinioServerNotInitialized"
		if !transient {
			return nil, fmt.Errorf("%w (code %q, status %d)", err, resp.Code, resp.StatusCode)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (code %q, status %d)", err, resp.Code, resp.StatusCode)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (s *Store) ensureBucket(ctx context.Context, region string) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("s3 storage: bucket %s: %w", s.bucket, err)
	}
	if ok {
		return nil
	}
	err = s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: region})
	if err != nil {
		code := minio.ToErrorResponse(err).Code
		if code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
			return nil
		}
		return fmt.Errorf("s3 storage: create bucket %s: %w", s.bucket, err)
	}
	return nil
}

// Bucket returns the bucket name.
func (s *Store) Bucket() string { return s.bucket }

// Put uploads an object. S3 makes an object visible only once its upload
// completed, so a failed Put leaves nothing behind. Quota and size limits
// come back as errors naming the S3 error code.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	if err := storage.ValidateKey(key); err != nil {
		return err
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	_, err := s.client.PutObject(ctx, s.bucket, key, r, size, minio.PutObjectOptions{ContentType: contentType})
	if err != nil {
		return fmt.Errorf("put %s: %w", key, wrap(err))
	}
	return nil
}

// Get opens an object for reading.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	if err := storage.ValidateKey(key); err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, storage.ObjectInfo{}, fmt.Errorf("get %s: %w", key, wrap(err))
	}
	// GetObject is lazy: Stat makes the request and reports a missing key.
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, storage.ObjectInfo{}, fmt.Errorf("get %s: %w", key, wrap(err))
	}
	return obj, info(st), nil
}

// Stat describes an object.
func (s *Store) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if err := storage.ValidateKey(key); err != nil {
		return storage.ObjectInfo{}, err
	}
	st, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("stat %s: %w", key, wrap(err))
	}
	return info(st), nil
}

// List returns the objects under prefix, ordered by key.
func (s *Store) List(ctx context.Context, prefix string) ([]storage.ObjectInfo, error) {
	if err := storage.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	var out []storage.ObjectInfo
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, wrap(obj.Err))
		}
		out = append(out, info(obj))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete removes an object; S3 does not report a missing key.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := storage.ValidateKey(key); err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("delete %s: %w", key, wrap(err))
	}
	return nil
}

// SignedURL returns a presigned GET URL valid for ttl.
func (s *Store) SignedURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := storage.ValidateKey(key); err != nil {
		return "", err
	}
	u, err := s.client.PresignedGetObject(ctx, s.bucket, key, ttl, url.Values{})
	if err != nil {
		return "", fmt.Errorf("sign %s: %w", key, err)
	}
	return u.String(), nil
}

func wrap(err error) error {
	switch minio.ToErrorResponse(err).Code {
	case "NoSuchKey", "NotFound":
		return fmt.Errorf("%w: %v", storage.ErrNotFound, err)
	}
	return err
}

func info(o minio.ObjectInfo) storage.ObjectInfo {
	return storage.ObjectInfo{Key: o.Key, Size: o.Size, LastModified: o.LastModified, ContentType: o.ContentType}
}
