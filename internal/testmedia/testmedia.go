// Package testmedia makes real encoded media for tests and the loadtest:
// ffmpeg encodes a moving test pattern and a tone once into a cache
// directory, and the Play functions send those files through pion tracks at
// their natural pace, like a browser's encoder would.
package testmedia

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"

	"podium/internal/testenv"
)

// cacheVersion is bumped whenever the encoding settings below change, so a
// stale cache is never reused.
const cacheVersion = "v2"

// Files are the generated media files.
type Files struct {
	// VP8 holds three simulcast layers as IVF: q=320x180, h=640x360,
	// f=1280x720, 30 fps, a keyframe every second.
	VP8 [3]string
	// H264 is Annex-B constrained baseline 640x360, 30 fps, a keyframe every
	// second, no B-frames.
	H264 string
	// Opus is an Ogg Opus file, 48 kHz stereo, 20 ms per page.
	Opus string
	// Voice is Opus as a browser sends speech: mono at 32 kbit/s.
	Voice string
	// Seconds is the length of every file.
	Seconds int
}

// FPS is the frame rate of the video files.
const FPS = 30

// DefaultSeconds is the length of the cached files; Play loops them.
const DefaultSeconds = 10

// CacheDir is where Cached keeps the files between runs.
func CacheDir() string {
	return filepath.Join(os.TempDir(), "podium-testmedia-"+cacheVersion)
}

func files(dir string, seconds int) Files {
	return Files{
		VP8: [3]string{
			filepath.Join(dir, "vp8-q.ivf"),
			filepath.Join(dir, "vp8-h.ivf"),
			filepath.Join(dir, "vp8-f.ivf"),
		},
		H264:    filepath.Join(dir, "h264.h264"),
		Opus:    filepath.Join(dir, "opus.ogg"),
		Voice:   filepath.Join(dir, "voice.ogg"),
		Seconds: seconds,
	}
}

// Cached returns the files in CacheDir, generating them with ffmpeg when
// missing. Several processes may call it at once: each generates into its
// own directory and the first rename wins.
func Cached(ffmpeg string) (Files, error) {
	dir := CacheDir()
	want := files(dir, DefaultSeconds)
	if complete(want) {
		return want, nil
	}
	tmp, err := os.MkdirTemp(os.TempDir(), "podium-testmedia-gen-")
	if err != nil {
		return Files{}, fmt.Errorf("testmedia: %w", err)
	}
	defer os.RemoveAll(tmp)
	if _, err := Generate(ffmpeg, tmp, DefaultSeconds); err != nil {
		return Files{}, err
	}
	if err := os.Rename(tmp, dir); err != nil && !complete(want) {
		return Files{}, fmt.Errorf("testmedia: move into cache: %w", err)
	}
	return want, nil
}

func complete(f Files) bool {
	for _, p := range []string{f.VP8[0], f.VP8[1], f.VP8[2], f.H264, f.Opus, f.Voice} {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			return false
		}
	}
	return true
}

// Generate encodes every file into dir with the given ffmpeg binary.
func Generate(ffmpeg, dir string, seconds int) (Files, error) {
	f := files(dir, seconds)
	dur := fmt.Sprint(seconds)
	src := func(size string) []string {
		return []string{"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%s:rate=%d", size, FPS), "-t", dur}
	}
	vp8 := func(size, bitrate, out string) []string {
		args := src(size)
		return append(args, "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8",
			"-b:v", bitrate, "-g", fmt.Sprint(FPS), "-keyint_min", fmt.Sprint(FPS), "-auto-alt-ref", "0", "-f", "ivf", out)
	}
	jobs := [][]string{
		vp8("320x180", "150k", f.VP8[0]),
		vp8("640x360", "500k", f.VP8[1]),
		vp8("1280x720", "1500k", f.VP8[2]),
		append(src("640x360"), "-c:v", "libx264", "-profile:v", "baseline", "-preset", "veryfast",
			"-pix_fmt", "yuv420p", "-bf", "0", "-g", fmt.Sprint(FPS), "-keyint_min", fmt.Sprint(FPS),
			"-x264-params", "slices=1:repeat-headers=1", "-b:v", "600k", "-f", "h264", f.H264),
		{"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", dur, "-ac", "2",
			"-c:a", "libopus", "-b:a", "48k", "-frame_duration", "20", "-page_duration", "20000", f.Opus},
		{"-f", "lavfi", "-i", "sine=frequency=220:sample_rate=48000", "-t", dur, "-ac", "1",
			"-c:a", "libopus", "-b:a", "32k", "-application", "voip", "-frame_duration", "20", "-page_duration", "20000", f.Voice},
	}
	for _, args := range jobs {
		full := append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...)
		out, err := exec.Command(ffmpeg, full...).CombinedOutput()
		if err != nil {
			return Files{}, fmt.Errorf("testmedia: ffmpeg %v: %w: %s", args, err, out)
		}
	}
	return f, nil
}

// ForTest returns the cached files for a test, skipping it outside CI when
// ffmpeg is missing (failing it in CI).
func ForTest(t testing.TB) Files {
	t.Helper()
	ffmpeg := testenv.RequireBinary(t, "ffmpeg")
	f, err := Cached(ffmpeg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// SampleWriter is what the Play functions write to; a
// *webrtc.TrackLocalStaticSample is one.
type SampleWriter interface {
	WriteSample(s media.Sample) error
}

var _ SampleWriter = (*webrtc.TrackLocalStaticSample)(nil)

// PlayIVF sends an IVF file's frames at their pace until ctx ends (looping
// when loop is set) or the file ends. It returns nil when ctx ends.
func PlayIVF(ctx context.Context, path string, track SampleWriter, loop bool) error {
	for {
		if err := playIVFOnce(ctx, path, track); err != nil {
			return err
		}
		if !loop || ctx.Err() != nil {
			return nil
		}
	}
}

func playIVFOnce(ctx context.Context, path string, track SampleWriter) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("testmedia: %w", err)
	}
	r, hdr, err := ivfreader.NewWith(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("testmedia: %s: %w", path, err)
	}
	frameDur := time.Second * time.Duration(hdr.TimebaseNumerator) / time.Duration(hdr.TimebaseDenominator)
	if frameDur <= 0 || frameDur > time.Second {
		frameDur = time.Second / FPS
	}
	tick := time.NewTicker(frameDur)
	defer tick.Stop()
	for {
		frame, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("testmedia: %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if err := track.WriteSample(media.Sample{Data: frame, Duration: frameDur}); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			return fmt.Errorf("testmedia: write: %w", err)
		}
	}
}

// PlayOgg sends an Ogg Opus file's packets at their pace until ctx ends
// (looping when loop is set) or the file ends.
func PlayOgg(ctx context.Context, path string, track SampleWriter, loop bool) error {
	for {
		if err := playOggOnce(ctx, path, track); err != nil {
			return err
		}
		if !loop || ctx.Err() != nil {
			return nil
		}
	}
}

func playOggOnce(ctx context.Context, path string, track SampleWriter) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("testmedia: %w", err)
	}
	r, _, err := oggreader.NewWith(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("testmedia: %s: %w", path, err)
	}
	const frameDur = 20 * time.Millisecond
	tick := time.NewTicker(frameDur)
	defer tick.Stop()
	var lastGranule uint64
	for {
		page, hdr, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("testmedia: %s: %w", path, err)
		}
		// The first two pages are the Opus headers (granule 0).
		if hdr.GranulePosition == 0 {
			continue
		}
		samples := hdr.GranulePosition - lastGranule
		lastGranule = hdr.GranulePosition
		dur := time.Duration(samples) * time.Second / 48000
		if dur <= 0 || dur > time.Second {
			dur = frameDur
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if err := track.WriteSample(media.Sample{Data: page, Duration: dur}); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			return fmt.Errorf("testmedia: write: %w", err)
		}
	}
}

// PlayH264 sends an Annex-B H.264 file one access unit (picture, with any
// SPS/PPS before it) at a time at fps until ctx ends (looping when loop is
// set) or the file ends.
func PlayH264(ctx context.Context, path string, fps int, track SampleWriter, loop bool) error {
	if fps <= 0 {
		fps = FPS
	}
	for {
		if err := playH264Once(ctx, path, fps, track); err != nil {
			return err
		}
		if !loop || ctx.Err() != nil {
			return nil
		}
	}
}

func playH264Once(ctx context.Context, path string, fps int, track SampleWriter) error {
	units, err := ReadH264AccessUnits(path)
	if err != nil {
		return err
	}
	frameDur := time.Second / time.Duration(fps)
	tick := time.NewTicker(frameDur)
	defer tick.Stop()
	for _, au := range units {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if err := track.WriteSample(media.Sample{Data: au, Duration: frameDur}); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			return fmt.Errorf("testmedia: write: %w", err)
		}
	}
	return nil
}

// ReadH264AccessUnits splits an Annex-B file into access units, each in
// Annex-B form (start codes kept), parameter sets attached to the picture
// that follows them.
func ReadH264AccessUnits(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("testmedia: %w", err)
	}
	r, err := h264reader.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("testmedia: %s: %w", path, err)
	}
	var (
		units   [][]byte
		cur     []byte
		haveVCL bool
	)
	startCode := []byte{0, 0, 0, 1}
	for {
		nal, err := r.NextNAL()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("testmedia: %s: %w", path, err)
		}
		if len(nal.Data) == 0 {
			continue
		}
		isVCL := nal.UnitType == h264reader.NalUnitTypeCodedSliceIdr || nal.UnitType == h264reader.NalUnitTypeCodedSliceNonIdr
		// A slice whose first_mb_in_slice is 0 (ue(v) "1" -> top bit set)
		// starts a new picture; so does a parameter set after a picture.
		firstSlice := isVCL && len(nal.Data) > 1 && nal.Data[1]&0x80 != 0
		if haveVCL && (firstSlice || !isVCL) {
			units = append(units, cur)
			cur, haveVCL = nil, false
		}
		cur = append(cur, startCode...)
		cur = append(cur, nal.Data...)
		haveVCL = haveVCL || isVCL
	}
	if haveVCL {
		units = append(units, cur)
	}
	if len(units) == 0 {
		return nil, fmt.Errorf("testmedia: %s: no pictures", path)
	}
	return units, nil
}
