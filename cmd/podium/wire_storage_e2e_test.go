package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"podium/internal/testenv"
	"podium/internal/testmedia"
	"podium/storage/s3"
)

// A lesson recorded by `podium serve --s3-sse sse-s3` into a MinIO with a
// KMS key: every object of the recording (manifest, init segments,
// segments) is stored encrypted, says MinIO, and the recording reads back
// and decodes.
func TestStorageSSES3E2E(t *testing.T) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	mio := testenv.StartMinIOWith(t, testenv.MinIOOptions{KMSSecretKey: "podium-e2e:" + base64.StdEncoding.EncodeToString(k)})
	files := testmedia.ForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	p := testenv.StartPodium(t, "--storage", "s3", "--s3-endpoint", mio.Endpoint, "--s3-bucket", "recordings",
		"--s3-access-key", mio.AccessKey, "--s3-secret-key", mio.SecretKey, "--s3-sse", "sse-s3",
		"--record-segment-duration", "2s")
	stop := recTeacher(t, ctx, p.URL, p.Token("sse-e2e", "teacher", "Ms Teacher"), files)
	time.Sleep(5 * time.Second)
	recEndLesson(t, ctx, p.URL, p.Token("sse-e2e", "teacher", "Ms Teacher (tablet)"))
	stop()

	store, err := s3.New(ctx, s3.Config{Endpoint: mio.Endpoint, Bucket: "recordings", AccessKey: mio.AccessKey, SecretKey: mio.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	m := recWaitComplete(t, ctx, store, "sse-e2e")
	if len(m.Tracks) != 2 {
		t.Fatalf("tracks %+v", m.Tracks)
	}
	client, err := minio.New(mio.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(mio.AccessKey, mio.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for obj := range client.ListObjects(ctx, "recordings", minio.ListObjectsOptions{Prefix: "lessons/sse-e2e/", Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		st, err := client.StatObject(ctx, "recordings", obj.Key, minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Metadata.Get("X-Amz-Server-Side-Encryption"); got != "AES256" {
			t.Errorf("%s stored with encryption %q, want AES256", obj.Key, got)
		}
		n++
	}
	if n < 5 {
		t.Fatalf("only %d objects in the recording", n)
	}
	for _, tr := range m.Tracks {
		if codec, frames, _ := recProbeTrack(t, ctx, store, tr); frames == 0 {
			t.Fatalf("track %s (%s) has no frames", tr.ID, codec)
		}
	}
	t.Logf("%d objects of the recording, all SSE-S3", n)
}

// podium serve refuses to start when the encryption asked for cannot be
// had: SSE-S3 on a MinIO without a KMS, any --s3-sse on the local
// directory, SSE-C without https or with a bad key. The error says why and
// never quotes the key.
func TestStorageSSERefusedAtStart(t *testing.T) {
	mio := testenv.StartMinIO(t)
	bin := testenv.PodiumBinary(t)
	s3args := []string{"--storage", "s3", "--s3-endpoint", mio.Endpoint, "--s3-bucket", "recordings",
		"--s3-access-key", mio.AccessKey, "--s3-secret-key", mio.SecretKey}
	secretKey := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"sse-s3 without a KMS", append(s3args, "--s3-sse", "sse-s3"), "sse-s3"},
		{"sse on local storage", []string{"--storage", "local", "--s3-sse", "sse-s3"}, "--s3-sse applies to --storage s3"},
		{"sse-c over http", append(s3args, "--s3-sse", "sse-c", "--s3-sse-key", secretKey), "https"},
		{"sse-c short key", append(s3args, "--s3-sse", "sse-c", "--s3-secure", "--s3-sse-key", base64.StdEncoding.EncodeToString([]byte("short"))), "want 32"},
		{"sse-c with signed playback", append(s3args, "--s3-sse", "sse-c", "--s3-secure", "--s3-sse-key", secretKey, "--vod-playback", "signed"), "--vod-playback podium"},
		{"unknown mode", append(s3args, "--s3-sse", "aes"), "sse must be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			dir := t.TempDir()
			args := append([]string{"serve", "--http-addr", testenv.FreeAddr(t), "--data-dir", dir, "--bind-ip", "127.0.0.1",
				"--ice-udp-port", "0", "--ice-tcp-port", "0", "--turn-udp-port", "0", "--turn-tcp-port", "0"}, tc.args...)
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Dir = dir
			cmd.Env = append(cmd.Environ(), "PODIUM_SECRET=storage-e2e-secret-0123456789")
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("podium did not exit: it started although %s\n%s", tc.name, out)
			}
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("exit %v, output lacks %q:\n%s", err, tc.want, out)
			}
			if strings.Contains(string(out), secretKey) {
				t.Fatalf("the key is in the output:\n%s", out)
			}
		})
	}
}
