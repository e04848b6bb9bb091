package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"podium/internal/testenv"
	"podium/storage"
	"podium/storage/storetest"
)

// testKMSKey is a MinIO built-in KMS key: "name:base64 of 32 bytes".
func testKMSKey(t *testing.T) string {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return "podium-test-key:" + base64.StdEncoding.EncodeToString(k)
}

// segment returns recognisable bytes larger than MinIO's inline limit, so
// they land in a part file on disk as well as being findable there when
// stored in the clear.
func segment() []byte {
	var b bytes.Buffer
	for b.Len() < 300<<10 {
		b.WriteString("PODIUM-PLAINTEXT-CHILD-RECORDING ")
	}
	return b.Bytes()
}

// onDisk reports whether needle appears in any file under MinIO's data
// directory.
func onDisk(t *testing.T, dir string, needle []byte) bool {
	t.Helper()
	found := false
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || found {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		found = bytes.Contains(b, needle)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func readAll(t *testing.T, s storage.Store, key string) []byte {
	t.Helper()
	rc, _, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

// SSE-S3 on a MinIO with a KMS key: objects are stored encrypted (the
// server's stat says so, MinIO's disk does not hold the plaintext) and read
// back identical; the store's own start check passes.
func TestSSES3AgainstMinIO(t *testing.T) {
	m := testenv.StartMinIOWith(t, testenv.MinIOOptions{KMSSecretKey: testKMSKey(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := New(ctx, Config{Endpoint: m.Endpoint, Bucket: "recordings", AccessKey: m.AccessKey, SecretKey: m.SecretKey, SSE: SSES3})
	if err != nil {
		t.Fatal(err)
	}
	data := segment()
	key := "lessons/enc/tracks/cam/000000.m4s"
	if err := s.Put(ctx, key, bytes.NewReader(data), int64(len(data)), "video/iso.segment"); err != nil {
		t.Fatal(err)
	}
	st, err := s.client.StatObject(ctx, "recordings", key, minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Metadata.Get("X-Amz-Server-Side-Encryption"); got != "AES256" || !Encrypted(st) {
		t.Fatalf("stat says encryption %q, metadata %v", got, st.Metadata)
	}
	if got := readAll(t, s, key); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes differing from the %d written", len(got), len(data))
	}
	if onDisk(t, m.Dir, []byte("PODIUM-PLAINTEXT-CHILD-RECORDING")) {
		t.Fatal("the plaintext is on MinIO's disk")
	}
	if list, err := s.List(ctx, ""); err != nil || len(list) != 1 || list[0].Key != key {
		t.Fatalf("list = %v, %v (the start check object must be gone)", list, err)
	}
	// The whole Store contract holds with encryption on.
	enc, err := New(ctx, Config{Endpoint: m.Endpoint, Bucket: "contract", AccessKey: m.AccessKey, SecretKey: m.SecretKey, SSE: SSES3})
	if err != nil {
		t.Fatal(err)
	}
	storetest.Run(t, enc)

	// The control: without SSE the same bytes are on disk in the clear, so
	// the check above can see plaintext.
	plain, err := New(ctx, Config{Endpoint: m.Endpoint, Bucket: "plain", AccessKey: m.AccessKey, SecretKey: m.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.Put(ctx, "x.m4s", bytes.NewReader(data), int64(len(data)), ""); err != nil {
		t.Fatal(err)
	}
	if !onDisk(t, m.Dir, []byte("PODIUM-PLAINTEXT-CHILD-RECORDING")) {
		t.Fatal("control: unencrypted object not found on disk; the disk check proves nothing")
	}
}

// A MinIO without a KMS cannot do SSE-S3: the store refuses to start
// rather than fail every upload later.
func TestSSES3WithoutKMSFailsAtStart(t *testing.T) {
	m := testenv.StartMinIO(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := New(ctx, Config{Endpoint: m.Endpoint, Bucket: "recordings", AccessKey: m.AccessKey, SecretKey: m.SecretKey, SSE: SSES3})
	if err == nil || !strings.Contains(err.Error(), "sse-s3") {
		t.Fatalf("New = %v, want a refusal naming sse-s3", err)
	}
}

// SSE-C over TLS: objects are encrypted with podium's key (stat says so;
// the disk holds no plaintext); they read back identical through the store,
// cannot be read without the key or with another, presigned URLs are
// refused, and objects written before encryption was turned on still read.
func TestSSECAgainstMinIO(t *testing.T) {
	m := testenv.StartMinIOWith(t, testenv.MinIOOptions{TLS: true})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := Config{Endpoint: m.Endpoint, Bucket: "recordings", AccessKey: m.AccessKey, SecretKey: m.SecretKey, Secure: true, RootCAs: m.RootCAs}

	// Written before encryption was turned on.
	old, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Put(ctx, "lessons/old/manifest.json", strings.NewReader(`{"v":1}`), 7, "application/json"); err != nil {
		t.Fatal(err)
	}

	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	enc := cfg
	enc.SSE, enc.SSEKey = SSEC, key
	s, err := New(ctx, enc)
	if err != nil {
		t.Fatal(err)
	}
	data := segment()
	k := "lessons/enc/tracks/cam/000000.m4s"
	if err := s.Put(ctx, k, bytes.NewReader(data), int64(len(data)), "video/iso.segment"); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, k); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes differing from the %d written", len(got), len(data))
	}
	info, err := s.Stat(ctx, k)
	if err != nil || info.Size != int64(len(data)) {
		t.Fatalf("stat = %+v, %v", info, err)
	}
	st, err := s.client.StatObject(ctx, "recordings", k, minio.StatObjectOptions{ServerSideEncryption: s.read})
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Metadata.Get("X-Amz-Server-Side-Encryption-Customer-Algorithm"); got != "AES256" || !Encrypted(st) {
		t.Fatalf("stat says customer algorithm %q, metadata %v", got, st.Metadata)
	}
	if onDisk(t, m.Dir, []byte("PODIUM-PLAINTEXT-CHILD-RECORDING")) {
		t.Fatal("the plaintext is on MinIO's disk")
	}

	// Without the key (a store without SSE) and with another key: refused.
	if _, _, err := old.Get(ctx, k); err == nil {
		t.Fatal("an SSE-C object was read without the key")
	}
	other := enc
	other.SSEKey = bytes.Repeat([]byte{7}, 32)
	wrong, err := New(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := wrong.Get(ctx, k); err == nil {
		t.Fatal("an SSE-C object was read with another key")
	}

	// Presigned URLs cannot carry the key.
	if _, err := s.SignedURL(ctx, k, time.Minute); !errors.Is(err, ErrNoPresignWithSSEC) {
		t.Fatalf("SignedURL = %v, want ErrNoPresignWithSSEC", err)
	}
	u, err := old.SignedURL(ctx, k, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: m.RootCAs}}}
	if resp, err := hc.Get(u); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("a presigned GET read an SSE-C object")
		}
	}

	// The whole Store contract holds with SSE-C.
	contract := enc
	contract.Bucket = "contract"
	cs, err := New(ctx, contract)
	if err != nil {
		t.Fatal(err)
	}
	storetest.Run(t, cs)

	// What was stored before encryption still reads.
	if got := readAll(t, s, "lessons/old/manifest.json"); string(got) != `{"v":1}` {
		t.Fatalf("old object = %q", got)
	}
	if _, err := s.Stat(ctx, "lessons/old/manifest.json"); err != nil {
		t.Fatalf("stat of an object stored before encryption: %v", err)
	}
	if _, err := s.Stat(ctx, "lessons/none.json"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("stat of a missing key = %v, want ErrNotFound", err)
	}
}

// Bad settings are refused before anything is sent.
func TestSSEConfigRefused(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	for _, c := range []Config{
		{SSE: "aes"},
		{SSE: SSEC, SSEKey: key},                    // not https
		{SSE: SSEC, Secure: true},                   // no key
		{SSE: SSEC, Secure: true, SSEKey: key[:16]}, // short key
		{SSE: SSES3, SSEKey: key},                   // key without sse-c
		{SSEKey: key},                               // key with sse off
	} {
		c.Endpoint, c.Bucket = "127.0.0.1:1", "b"
		if _, err := New(t.Context(), c); err == nil {
			t.Errorf("%+v accepted", c)
		} else if strings.Contains(err.Error(), string(key)) {
			t.Errorf("error quotes the key: %v", err)
		}
	}
}
