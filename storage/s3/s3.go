// Package s3 is the production storage backend: MinIO or any S3-compatible
// service through minio-go/v7. It knows nothing of media.
package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/encrypt"

	"podium/storage"
)

// Server-side encryption modes (Config.SSE).
const (
	SSENone = ""       // objects stored as the bucket's default says
	SSES3   = "sse-s3" // the server encrypts with keys its KMS manages
	SSEC    = "sse-c"  // the server encrypts with Config.SSEKey, sent with every request
)

// Config says where the bucket is.
type Config struct {
	Endpoint  string // host:port, no scheme
	Bucket    string
	AccessKey string
	SecretKey string
	Region    string
	Secure    bool // https
	// RootCAs, when set, are the CAs trusted for https (a MinIO with a
	// private CA); nil trusts the system's.
	RootCAs *x509.CertPool

	// SSE is the server-side encryption of every object written: SSENone,
	// SSES3 (MinIO needs a KMS, e.g. MINIO_KMS_SECRET_KEY) or SSEC (needs
	// Secure; SSEKey is then required, and an object cannot be read
	// without it: losing the key loses the recordings).
	SSE    string
	SSEKey []byte // 32 bytes, SSEC only
}

// Store is a bucket.
type Store struct {
	client *minio.Client
	bucket string
	// put encrypts what is written; read is sent with reads (SSE-C only:
	// SSE-S3 objects read without it).
	put, read encrypt.ServerSide
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
	put, read, err := sseOptions(cfg)
	if err != nil {
		return nil, fmt.Errorf("s3 storage: %w", err)
	}
	opts := &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: cfg.Secure,
		Region: cfg.Region,
	}
	if cfg.RootCAs != nil {
		tr, err := minio.DefaultTransport(cfg.Secure)
		if err != nil {
			return nil, fmt.Errorf("s3 storage %s: transport: %w", cfg.Endpoint, err)
		}
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		tr.TLSClientConfig.RootCAs = cfg.RootCAs
		opts.Transport = tr
	}
	client, err := minio.New(cfg.Endpoint, opts)
	if err != nil {
		return nil, fmt.Errorf("s3 storage %s: %w", cfg.Endpoint, err)
	}
	s := &Store{client: client, bucket: cfg.Bucket, put: put, read: read}
	// A server starting beside us (compose, tests) is retried until ctx
	// ends; a refusal (credentials, policy) is final.
	for {
		err := s.ensureBucket(ctx, cfg.Region)
		if err == nil {
			if err := s.checkEncryption(ctx, cfg.SSE); err != nil {
				return nil, err
			}
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

// sseOptions checks the encryption settings and returns what to send with
// writes and with reads.
func sseOptions(cfg Config) (put, read encrypt.ServerSide, err error) {
	switch cfg.SSE {
	case SSENone:
		if len(cfg.SSEKey) > 0 {
			return nil, nil, errors.New("an SSE key is given but SSE is off (set sse-c)")
		}
		return nil, nil, nil
	case SSES3:
		if len(cfg.SSEKey) > 0 {
			return nil, nil, errors.New("sse-s3 takes no key (the server's KMS holds it); the key is for sse-c")
		}
		return encrypt.NewSSE(), nil, nil
	case SSEC:
		if !cfg.Secure {
			return nil, nil, errors.New("sse-c sends the key with every request: it needs https (secure)")
		}
		if len(cfg.SSEKey) != 32 {
			return nil, nil, fmt.Errorf("sse-c key must be 32 bytes, got %d", len(cfg.SSEKey))
		}
		k, err := encrypt.NewSSEC(cfg.SSEKey)
		if err != nil {
			return nil, nil, fmt.Errorf("sse-c key: %w", err)
		}
		return k, k, nil
	}
	return nil, nil, fmt.Errorf("sse must be %q, %q or %q, not %q", SSENone, SSES3, SSEC, cfg.SSE)
}

// sseCheckKey is the object written once at start to prove the server
// encrypts; it is deleted at once and is outside lessons/.
const sseCheckKey = "podium-sse-check"

// checkEncryption writes, inspects and deletes one small object when
// encryption is asked for, so a server that cannot encrypt (no KMS) or that
// ignores the request fails the start instead of every later upload, or,
// worse, stores recordings in the clear.
func (s *Store) checkEncryption(ctx context.Context, mode string) error {
	if s.put == nil {
		return nil
	}
	_, err := s.client.PutObject(ctx, s.bucket, sseCheckKey, strings.NewReader("podium"), 6,
		minio.PutObjectOptions{ContentType: "text/plain", ServerSideEncryption: s.put})
	if err != nil {
		resp := minio.ToErrorResponse(err)
		return fmt.Errorf("s3 storage: %s: the server refused an encrypted write (code %q): %w", mode, resp.Code, err)
	}
	defer func() { _ = s.client.RemoveObject(ctx, s.bucket, sseCheckKey, minio.RemoveObjectOptions{}) }()
	st, err := s.client.StatObject(ctx, s.bucket, sseCheckKey, minio.StatObjectOptions{ServerSideEncryption: s.read})
	if err != nil {
		return fmt.Errorf("s3 storage: %s: stat of the check object: %w", mode, err)
	}
	if !Encrypted(st) {
		return fmt.Errorf("s3 storage: %s: the server stored the check object unencrypted (it ignores the request)", mode)
	}
	return nil
}

// Encrypted reports whether an object's metadata says the server encrypted
// it (SSE-S3, SSE-KMS or SSE-C).
func Encrypted(st minio.ObjectInfo) bool {
	return st.Metadata.Get("X-Amz-Server-Side-Encryption") != "" ||
		st.Metadata.Get("X-Amz-Server-Side-Encryption-Customer-Algorithm") != ""
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
	_, err := s.client.PutObject(ctx, s.bucket, key, r, size, minio.PutObjectOptions{ContentType: contentType, ServerSideEncryption: s.put})
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
	obj, st, err := s.get(ctx, key, s.read)
	if err != nil && storedInClear(s.read, err) {
		if o2, st2, err2 := s.get(ctx, key, nil); err2 == nil {
			return o2, info(st2), nil
		}
	}
	if err != nil {
		return nil, storage.ObjectInfo{}, fmt.Errorf("get %s: %w", key, wrap(err))
	}
	return obj, info(st), nil
}

func (s *Store) get(ctx context.Context, key string, sse encrypt.ServerSide) (*minio.Object, minio.ObjectInfo, error) {
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{ServerSideEncryption: sse})
	if err != nil {
		return nil, minio.ObjectInfo{}, err
	}
	// GetObject is lazy: Stat makes the request and reports a missing key.
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, minio.ObjectInfo{}, err
	}
	return obj, st, nil
}

// storedInClear reports whether a read sent with the SSE-C key failed
// because the object was stored without it (written before encryption was
// turned on): such objects are read again without the key.
func storedInClear(sse encrypt.ServerSide, err error) bool {
	if sse == nil || sse.Type() != encrypt.SSEC {
		return false
	}
	resp := minio.ToErrorResponse(err)
	return resp.StatusCode == 400 && resp.Code == "InvalidRequest"
}

// Stat describes an object.
func (s *Store) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if err := storage.ValidateKey(key); err != nil {
		return storage.ObjectInfo{}, err
	}
	st, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{ServerSideEncryption: s.read})
	if err != nil && storedInClear(s.read, err) {
		if st2, err2 := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{}); err2 == nil {
			return info(st2), nil
		}
	}
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

// ListDirs returns the common prefixes one level below prefix (a
// delimiter listing: the objects inside are not listed).
func (s *Store) ListDirs(ctx context.Context, prefix string) ([]string, error) {
	if err := storage.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		return nil, fmt.Errorf("list dirs %q: %w: the prefix must end in /", prefix, storage.ErrInvalidKey)
	}
	var out []string
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: false}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("list dirs %s: %w", prefix, wrap(obj.Err))
		}
		if name, ok := strings.CutSuffix(strings.TrimPrefix(obj.Key, prefix), "/"); ok && name != "" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
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

// ErrNoPresignWithSSEC is returned by SignedURL when objects are encrypted
// with SSE-C: reading one needs the key in request headers, which a
// presigned URL a browser follows cannot carry.
var ErrNoPresignWithSSEC = errors.New("sse-c objects cannot be read through presigned URLs; serve media through podium")

// CanPresign reports whether SignedURL URLs can be read (not with SSE-C).
func (s *Store) CanPresign() bool { return s.read == nil }

// SignedURL returns a presigned GET URL valid for ttl.
func (s *Store) SignedURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := storage.ValidateKey(key); err != nil {
		return "", err
	}
	if !s.CanPresign() {
		return "", fmt.Errorf("sign %s: %w", key, ErrNoPresignWithSSEC)
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
	return storage.ObjectInfo{Key: o.Key, Size: o.Size, LastModified: o.LastModified, ContentType: o.ContentType, Version: o.ETag}
}
