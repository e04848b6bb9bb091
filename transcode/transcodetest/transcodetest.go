// Package transcodetest makes test recordings the way the recorder stores
// them (fMP4 init + segments per track and a manifest), with real ffmpeg, so
// transcode and vod tests need not wait for a live lesson.
package transcodetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"podium/internal/testenv"
	"podium/storage"
	"podium/vod"
)

// fixtureTrack is one track of a synthetic recording.
type fixtureTrack struct {
	id, role, kind, source, codec string
	offset                        time.Duration // after the lesson start
	seconds                       int
	lavfi                         string // ffmpeg lavfi source
	enc                           []string
}

// WriteRecording stores a recording the way the recorder does: per track an
// fMP4 init.mp4 plus 2-second .m4s segments, and lessons/{id}/manifest.json.
// It returns the manifest it wrote.
func WriteRecording(t testing.TB, store storage.Store, lesson string, seconds int, complete bool) vod.Manifest {
	t.Helper()
	ffmpeg := testenv.RequireBinary(t, "ffmpeg")
	start := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	tracks := []fixtureTrack{
		{id: "teacher-cam", role: "teacher", kind: "video", source: "camera", codec: "h264", seconds: seconds,
			lavfi: fmt.Sprintf("testsrc2=s=640x360:r=30:d=%d", seconds),
			enc:   []string{"-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p"}},
		{id: "teacher-screen", role: "teacher", kind: "video", source: "screen", codec: "h264", offset: 2 * time.Second, seconds: max(2, seconds-4),
			lavfi: fmt.Sprintf("smptehdbars=s=1280x720:r=15:d=%d", max(2, seconds-4)),
			enc:   []string{"-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-pix_fmt", "yuv420p"}},
		{id: "teacher-mic", role: "teacher", kind: "audio", source: "microphone", codec: "opus", seconds: seconds,
			lavfi: fmt.Sprintf("sine=f=440:r=48000:d=%d", seconds),
			enc:   []string{"-c:a", "libopus", "-b:a", "48k"}},
	}
	m := vod.Manifest{
		Version: vod.ManifestVersion, Lesson: lesson, Title: "Fractions " + lesson, Teacher: "Ms. Okafor",
		StartedAt: start, Complete: complete,
		Events: []vod.ManifestEvent{
			{Time: start.Add(2 * time.Second), Type: "screenStart", Participant: "Ms. Okafor"},
			{Time: start.Add(time.Duration(seconds-2) * time.Second), Type: "screenStop", Participant: "Ms. Okafor"},
		},
	}
	if complete {
		m.EndedAt = start.Add(time.Duration(seconds) * time.Second)
	}
	for _, tr := range tracks {
		dir := t.TempDir()
		args := []string{"-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", tr.lavfi}
		args = append(args, tr.enc...)
		args = append(args, "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod", "-hls_segment_type", "fmp4",
			"-hls_fmp4_init_filename", "init.mp4", "-hls_segment_filename", filepath.Join(dir, "%06d.m4s"), filepath.Join(dir, "index.m3u8"))
		if out, err := exec.Command(ffmpeg, args...).CombinedOutput(); err != nil {
			t.Fatalf("make %s: %v\n%s", tr.id, err, out)
		}
		pl, err := os.ReadFile(filepath.Join(dir, "index.m3u8"))
		if err != nil {
			t.Fatal(err)
		}
		base := "lessons/" + lesson + "/rec/" + tr.id + "/"
		mt := vod.ManifestTrack{ID: tr.id, ParticipantID: "p-teacher", Participant: "Ms. Okafor", Role: tr.role,
			Kind: tr.kind, Source: tr.source, Codec: tr.codec, Init: base + "init.mp4"}
		PutFile(t, store, mt.Init, filepath.Join(dir, "init.mp4"))
		at := start.Add(tr.offset)
		var dur time.Duration
		for _, line := range strings.Split(string(pl), "\n") {
			if v, ok := strings.CutPrefix(line, "#EXTINF:"); ok {
				f, _ := strconv.ParseFloat(strings.TrimSuffix(v, ","), 64)
				dur = time.Duration(f * float64(time.Second))
				continue
			}
			if !strings.HasSuffix(line, ".m4s") {
				continue
			}
			seq, _ := strconv.Atoi(strings.TrimSuffix(line, ".m4s"))
			key := fmt.Sprintf("%s%06d.m4s", base, seq)
			n := PutFile(t, store, key, filepath.Join(dir, line))
			mt.Segments = append(mt.Segments, vod.ManifestSegment{Seq: seq, Key: key, Start: at, Duration: dur, Bytes: n})
			at = at.Add(dur)
		}
		m.Tracks = append(m.Tracks, mt)
	}
	PutJSON(t, store, vod.ManifestKey(lesson), m)
	return m
}

func PutFile(t testing.TB, store storage.Store, key, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put(context.Background(), key, bytes.NewReader(b), int64(len(b)), ""); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return int64(len(b))
}

func PutJSON(t testing.TB, store storage.Store, key string, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	if err := store.Put(context.Background(), key, bytes.NewReader(b), int64(len(b)), "application/json"); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}
