package transcode

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"podium/internal/testenv"
	"podium/storage"
	"podium/storage/local"
	"podium/storage/s3/s3test"
	"podium/transcode/transcodetest"
	"podium/vod"
)

func localStore(t testing.TB) storage.Store {
	t.Helper()
	s, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func minioStore(t testing.TB) storage.Store {
	t.Helper()
	_, s := s3test.Start(t, "podium")
	return s
}

// download copies every object under prefix into a directory, keeping the
// relative layout, so ffprobe can read playlists as a player would.
func download(t testing.TB, store storage.Store, prefix string) string {
	return transcodetest.Download(t, store, prefix)
}

// checkAsset verifies, with ffprobe, what a player would get from an asset:
// a valid master playlist naming every rendition, each with the announced
// resolution and codecs and the expected duration; a poster, sprites and a
// playable MP4.
func checkAsset(t *testing.T, store storage.Store, base string, wantDur float64, wantHeights []int) vod.Assets {
	t.Helper()
	ctx := context.Background()
	var a vod.Assets
	if err := getJSON(ctx, store, base+vod.AssetsFile, &a); err != nil {
		t.Fatalf("assets record: %v", err)
	}
	dir := download(t, store, base)
	ffprobe := testenv.RequireBinary(t, "ffprobe")
	variants := validateMaster(t, filepath.Join(dir, filepath.FromSlash(a.Master)))
	var heights []int
	for _, v := range variants {
		pl := filepath.Join(dir, "hls", filepath.FromSlash(v.uri))
		validateMedia(t, pl)
		p, err := runFFprobe(ctx, ffprobe, pl)
		if err != nil {
			t.Fatalf("probe %s: %v", v.uri, err)
		}
		if math.Abs(p.Duration-wantDur) > 1 {
			t.Errorf("%s: duration %.2f s, want %.2f±1", v.uri, p.Duration, wantDur)
		}
		if p.Audio != "aac" {
			t.Errorf("%s: audio codec %q, want aac", v.uri, p.Audio)
		}
		if v.resolution == "" {
			if p.Video != "" {
				t.Errorf("%s: audio-only rendition has video %q", v.uri, p.Video)
			}
			continue
		}
		if p.Video != "h264" {
			t.Errorf("%s: video codec %q, want h264", v.uri, p.Video)
		}
		if got := strconv.Itoa(p.Width) + "x" + strconv.Itoa(p.Height); got != v.resolution {
			t.Errorf("%s: resolution %s, master says %s", v.uri, got, v.resolution)
		}
		heights = append(heights, p.Height)
	}
	if len(variants) != len(wantHeights)+1 || !equalInts(heights, wantHeights) {
		t.Errorf("renditions %v (+audio), want %v (+audio): %+v", heights, wantHeights, variants)
	}
	p, err := runFFprobe(ctx, ffprobe, filepath.Join(dir, a.Download))
	if err != nil || p.Video != "h264" || p.Audio != "aac" || math.Abs(p.Duration-wantDur) > 1 {
		t.Errorf("mp4 download: %+v, %v", p, err)
	}
	if p, err := runFFprobe(ctx, ffprobe, filepath.Join(dir, a.Poster)); err != nil || p.Width == 0 {
		t.Errorf("poster: %+v, %v", p, err)
	}
	if len(a.Sprites) == 0 {
		t.Errorf("no thumbnail sprites")
	}
	for _, s := range a.Sprites {
		if p, err := runFFprobe(ctx, ffprobe, filepath.Join(dir, s)); err != nil || p.Width != thumbW*tilesX {
			t.Errorf("sprite %s: %+v, %v", s, p, err)
		}
	}
	vtt, err := os.ReadFile(filepath.Join(dir, a.Thumbnails))
	if err != nil || !strings.HasPrefix(string(vtt), "WEBVTT") || !strings.Contains(string(vtt), "#xywh=") {
		t.Errorf("thumbnails vtt: %v %q", err, vtt)
	}
	return a
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

type variant struct{ uri, resolution, codecs string }

// validateMaster checks an HLS master playlist (RFC 8216 §4.3.4.2: every
// EXT-X-STREAM-INF has BANDWIDTH and is followed by a URI) and returns its
// variants.
func validateMaster(t *testing.T, path string) []variant {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("master playlist: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if lines[0] != "#EXTM3U" {
		t.Fatalf("master playlist does not start with #EXTM3U: %q", b)
	}
	var out []variant
	for i := 0; i < len(lines); i++ {
		attrs, ok := strings.CutPrefix(lines[i], "#EXT-X-STREAM-INF:")
		if !ok {
			continue
		}
		if i+1 >= len(lines) || strings.HasPrefix(lines[i+1], "#") || lines[i+1] == "" {
			t.Fatalf("EXT-X-STREAM-INF without URI: %q", b)
		}
		v := variant{uri: lines[i+1]}
		bw := 0
		for _, kv := range splitAttrs(attrs) {
			k, val, _ := strings.Cut(kv, "=")
			switch k {
			case "BANDWIDTH":
				bw, _ = strconv.Atoi(val)
			case "RESOLUTION":
				v.resolution = val
			case "CODECS":
				v.codecs = strings.Trim(val, `"`)
			}
		}
		if bw <= 0 || v.codecs == "" {
			t.Errorf("variant %s lacks BANDWIDTH or CODECS: %s", v.uri, attrs)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		t.Fatalf("master playlist has no variants: %q", b)
	}
	return out
}

// validateMedia checks a VOD media playlist: target duration covers every
// segment, an init map, and an end marker.
func validateMedia(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("media playlist: %v", err)
	}
	s := string(b)
	target := 0.0
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(line, "#EXT-X-TARGETDURATION:"); ok {
			target, _ = strconv.ParseFloat(v, 64)
		}
		if v, ok := strings.CutPrefix(line, "#EXTINF:"); ok {
			d, _ := strconv.ParseFloat(strings.TrimSuffix(v, ","), 64)
			if math.Round(d) > target {
				t.Errorf("%s: segment of %.3f s exceeds target duration %.0f", path, d, target)
			}
		}
	}
	if target == 0 || !strings.Contains(s, "#EXT-X-MAP:URI=") || !strings.Contains(s, "#EXT-X-ENDLIST") {
		t.Errorf("%s is not a complete fMP4 VOD playlist:\n%s", path, s)
	}
}

func splitAttrs(s string) []string {
	var out []string
	inQuote, start := false, 0
	for i, c := range s {
		switch {
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// TestLessonTranscodeAndClip is the whole flow on real MinIO and ffmpeg: a
// recording completes, the poller queues its job, the ladder is built; then
// a clip is cut and has the asked length.
func TestLessonTranscodeAndClip(t *testing.T) {
	store := minioStore(t)
	q := startQueue(t, store, QueueConfig{PollInterval: 200 * time.Millisecond, Workers: 1})
	writeRecording(t, store, "math-101", 8, true)

	j := waitLesson(t, q, "math-101", 150*time.Second)
	if j.State != StateDone {
		t.Fatalf("lesson job: %+v", j)
	}
	a := checkAsset(t, store, vod.LessonBase("math-101"), 8, []int{720, 360})
	if a.Layout != "composite" || a.Title != "Fractions math-101" {
		t.Errorf("assets: layout %q title %q", a.Layout, a.Title)
	}

	id, err := q.SubmitClip(context.Background(), "math-101", vod.ClipRequest{ID: "intro", Title: "Intro", Start: 2, End: 5})
	if err != nil {
		t.Fatal(err)
	}
	j = waitJob(t, q, id, 120*time.Second)
	if j.State != StateDone {
		t.Fatalf("clip job: %+v", j)
	}
	c := checkAsset(t, store, vod.ClipBase("math-101", "intro"), 3, []int{720, 360})
	if c.Clip != "intro" || c.Title != "Intro" {
		t.Errorf("clip assets: %+v", c)
	}
}
