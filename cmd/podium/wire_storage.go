package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"time"

	"podium/storage/local"
	"podium/storage/s3"
)

// storageFlags is the storage part's configuration, filled by registerStorageFlags.
var storageFlags struct {
	backend   string
	localDir  string
	endpoint  string
	bucket    string
	accessKey string
	secretKey string
	region    string
	secure    bool
	fs        *flag.FlagSet // to find serve's --data-dir
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
}

// wireStorage builds the object store every other part uses (a.store).
func wireStorage(a *app) error {
	switch storageFlags.backend {
	case "local":
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
		// MinIO started beside podium (compose) may need a moment.
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s, err := s3.New(ctx, s3.Config{
			Endpoint: storageFlags.endpoint, Bucket: storageFlags.bucket,
			AccessKey: storageFlags.accessKey, SecretKey: storageFlags.secretKey,
			Region: storageFlags.region, Secure: storageFlags.secure,
		})
		if err != nil {
			return fmt.Errorf("storage: %w", err)
		}
		a.store = s
		a.log.Info("storage: s3", "endpoint", storageFlags.endpoint, "bucket", storageFlags.bucket)
	default:
		return fmt.Errorf("storage: --storage must be local or s3, not %q", storageFlags.backend)
	}
	return nil
}
