package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"podium/storage/local"
	"podium/storage/s3"
)

// storageFlags is the storage part's configuration, filled by registerStorageFlags.
var storageFlags struct {
	backend    string
	localDir   string
	endpoint   string
	bucket     string
	accessKey  string
	secretKey  string
	region     string
	secure     bool
	sse        string
	sseKey     string
	sseKeyFile string
	fs         *flag.FlagSet // to find serve's --data-dir
}

// dataDirPath joins name to serve's --data-dir ("./data" when the command
// has no such flag).
func dataDirPath(fs *flag.FlagSet, name string) string {
	dir := "data"
	if fs != nil {
		if f := fs.Lookup("data-dir"); f != nil && f.Value.String() != "" {
			dir = f.Value.String()
		}
	}
	return filepath.Join(dir, name)
}

// registerStorageFlags adds the storage part's flags.
func registerStorageFlags(fs *flag.FlagSet) {
	fs.StringVar(&storageFlags.backend, "storage", "local", "object storage for recordings and VOD: local (a directory, zero setup) or s3 (MinIO or any S3)")
	fs.StringVar(&storageFlags.localDir, "storage-dir", "", "directory of the local storage backend (default <data-dir>/storage)")
	storageFlags.fs = fs
	fs.StringVar(&storageFlags.endpoint, "s3-endpoint", "127.0.0.1:9000", "S3/MinIO endpoint host:port (no scheme)")
	fs.StringVar(&storageFlags.bucket, "s3-bucket", "podium", "S3 bucket; created when missing")
	fs.StringVar(&storageFlags.accessKey, "s3-access-key", "", "S3 access key")
	fs.StringVar(&storageFlags.secretKey, "s3-secret-key", "", "S3 secret key")
	fs.StringVar(&storageFlags.region, "s3-region", "", "S3 region (empty for MinIO's default)")
	fs.BoolVar(&storageFlags.secure, "s3-secure", false, "use https to reach S3")
	fs.StringVar(&storageFlags.sse, "s3-sse", "", `server-side encryption of every object written: "" (off), sse-s3 (keys held by the server's KMS; MinIO needs one, e.g. MINIO_KMS_SECRET_KEY) or sse-c (podium's key, --s3-sse-key; needs --s3-secure and --vod-playback podium; objects cannot be read without the key)`)
	fs.StringVar(&storageFlags.sseKey, "s3-sse-key", "", "sse-c key: 32 bytes, base64 (prefer PODIUM_S3_SSE_KEY or --s3-sse-key-file over the command line)")
	fs.StringVar(&storageFlags.sseKeyFile, "s3-sse-key-file", "", "file holding the sse-c key (32 bytes, base64)")
}

// sseKey returns the sse-c key from --s3-sse-key or --s3-sse-key-file.
func sseKey() ([]byte, error) {
	text := storageFlags.sseKey
	if storageFlags.sseKeyFile != "" {
		if text != "" {
			return nil, errors.New("--s3-sse-key and --s3-sse-key-file both given")
		}
		b, err := os.ReadFile(storageFlags.sseKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--s3-sse-key-file: %w", err)
		}
		text = string(b)
	}
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, nil
	}
	key, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		// The message must not quote the key.
		return nil, errors.New("--s3-sse-key: not base64")
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("--s3-sse-key: %d bytes, want 32 (e.g. head -c32 /dev/urandom | base64)", len(key))
	}
	return key, nil
}

// wireStorage builds the object store every other part uses (a.store).
func wireStorage(a *app) error {
	switch storageFlags.backend {
	case "local":
		if storageFlags.sse != "" {
			// Not silently: an operator asking for encryption gets it or an error.
			return errors.New("storage: --s3-sse applies to --storage s3; the local directory is not encrypted (use disk encryption)")
		}
		dir := storageFlags.localDir
		if dir == "" {
			dir = dataDirPath(storageFlags.fs, "storage")
		}
		s, err := local.New(dir)
		if err != nil {
			return fmt.Errorf("storage: %w", err)
		}
		a.store = s
		a.log.Info("storage: local directory", "dir", s.Root())
	case "s3":
		key, err := sseKey()
		if err != nil {
			return fmt.Errorf("storage: %w", err)
		}
		if storageFlags.sse == s3.SSEC && storageFlags.fs != nil {
			if f := storageFlags.fs.Lookup("vod-playback"); f != nil && f.Value.String() == "signed" {
				return errors.New("storage: --s3-sse sse-c needs --vod-playback podium: a presigned URL cannot carry the key")
			}
		}
		// MinIO started beside podium (compose) may need a moment.
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s, err := s3.New(ctx, s3.Config{
			Endpoint: storageFlags.endpoint, Bucket: storageFlags.bucket,
			AccessKey: storageFlags.accessKey, SecretKey: storageFlags.secretKey,
			Region: storageFlags.region, Secure: storageFlags.secure,
			SSE: storageFlags.sse, SSEKey: key,
		})
		if err != nil {
			return fmt.Errorf("storage: %w", err)
		}
		a.store = s
		a.log.Info("storage: s3", "endpoint", storageFlags.endpoint, "bucket", storageFlags.bucket, "sse", storageFlags.sse)
	default:
		return fmt.Errorf("storage: --storage must be local or s3, not %q", storageFlags.backend)
	}
	return nil
}
