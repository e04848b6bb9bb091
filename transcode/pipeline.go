package transcode

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"podium/storage"
	"podium/vod"
)

// permanentError marks a failure that retrying cannot fix (corrupt or
// partial recording, bad request); anything else is retried.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return permanentError{err} }

// IsPermanent reports whether err is not worth retrying.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Rung is one video rendition of the ladder.
type Rung struct {
	Name      string // "720p"
	Height    int
	VideoKbps int
}

// DefaultLadder is modest on purpose: a 2-core node must keep up with a
// school day of lessons. Rungs taller than the recording are skipped (never
// upscale); an audio-only rendition is always added for the weakest links.
var DefaultLadder = []Rung{
	{Name: "1080p", Height: 1080, VideoKbps: 4000},
	{Name: "720p", Height: 720, VideoKbps: 2200},
	{Name: "360p", Height: 360, VideoKbps: 600},
}

// Config tunes the encoder.
type Config struct {
	FFmpeg  string // path of ffmpeg
	FFprobe string // path of ffprobe
	Ladder  []Rung
	// Preset is the x264 preset; "veryfast" keeps a 2-core node ahead of
	// real time.
	Preset string
	// FPS caps the output frame rate (default 30). The output keeps the
	// source's rate (the teacher's camera, else the screen): a 25 fps
	// camera replays at 25, not with every fifth frame doubled; a rate
	// above the cap is halved (50 -> 25, 60 -> 30).
	FPS            int
	SegmentSeconds int
	AudioKbps      int // audio in every video rendition
	AudioOnlyKbps  int // the audio-only rendition
	// Threads caps ffmpeg's threads (0 = ffmpeg decides).
	Threads int
	// StallTimeout kills an ffmpeg that reports no progress for this long.
	StallTimeout time.Duration
	// TempDir holds work files (default os.TempDir()).
	TempDir string
}

func (c *Config) setDefaults() {
	if c.FFmpeg == "" {
		c.FFmpeg = "ffmpeg"
	}
	if c.FFprobe == "" {
		c.FFprobe = "ffprobe"
	}
	if len(c.Ladder) == 0 {
		c.Ladder = DefaultLadder
	}
	if c.Preset == "" {
		c.Preset = "veryfast"
	}
	if c.FPS <= 0 {
		c.FPS = 30
	}
	if c.SegmentSeconds <= 0 {
		c.SegmentSeconds = 4
	}
	if c.AudioKbps <= 0 {
		c.AudioKbps = 96
	}
	if c.AudioOnlyKbps <= 0 {
		c.AudioOnlyKbps = 64
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = 2 * time.Minute
	}
}

// progressFunc is told how far a job is: a phase name and 0..1 overall.
type progressFunc func(phase string, fraction float64)

// pipeline turns recordings into VOD assets in one store.
type pipeline struct {
	cfg   Config
	store storage.Store
}

// buildLesson transcodes a complete recording into lessons/{id}/vod/.
func (p *pipeline) buildLesson(ctx context.Context, lesson string, progress progressFunc) (*vod.Assets, error) {
	progress("fetch", 0)
	m, err := p.readManifest(ctx, lesson)
	if err != nil {
		return nil, err
	}
	if !m.Complete {
		return nil, permanent(fmt.Errorf("recording of lesson %q is not complete", lesson))
	}
	tl, err := planTimeline(m)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(p.cfg.TempDir, "podium-transcode-")
	if err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}
	defer os.RemoveAll(work)

	var args []string
	inputs := map[*placedTrack]int{}
	shown := map[*placedTrack]spans{}
	rates := map[*placedTrack]float64{}
	maxHeight := 0
	var voices []voice
	// fetch downloads a track, checks it, and adds it as the next input.
	fetch := func(pt *placedTrack, kind string) (probe, error) {
		n := len(inputs)
		path := filepath.Join(work, "track-"+strconv.Itoa(n)+".mp4")
		if err := p.fetchTrack(ctx, pt.track, path); err != nil {
			return probe{}, err
		}
		pr, err := runFFprobe(ctx, p.cfg.FFprobe, path)
		if err != nil {
			return probe{}, permanent(fmt.Errorf("track %s is unreadable: %w", pt.track.ID, err))
		}
		if (kind == "video" && pr.Video == "") || (kind == "audio" && pr.Audio == "") {
			return probe{}, permanent(fmt.Errorf("track %s has no %s stream", pt.track.ID, kind))
		}
		// Where the track has media, from its first packet.
		has, err := mediaSpans(ctx, p.cfg.FFprobe, path, kind[:1])
		if err != nil {
			return probe{}, permanent(fmt.Errorf("track %s: %w", pt.track.ID, err))
		}
		if kind == "audio" {
			voices = append(voices, voice{in: n, offset: pt.offset, when: pt.when, pieces: has})
		} else {
			pics := has
			for i := range pics {
				pics[i][0] += pt.offset
				pics[i][1] += pt.offset
			}
			shown[pt] = pics
			if pt.when != nil {
				shown[pt] = pics.intersect(pt.when)
			}
			// A picture is placed on the lesson's clock by its own
			// timestamps, shifted to where its first sample was
			// recorded; a voice gets its lead from adelay.
			args = append(args, "-itsoffset", fmt.Sprintf("%.3f", pt.offset))
		}
		args = append(args, "-i", path)
		inputs[pt] = n
		return pr, nil
	}
	for _, pt := range tl.videoTracks() {
		pr, err := fetch(pt, "video")
		if err != nil {
			return nil, err
		}
		maxHeight = max(maxHeight, pr.Height)
		rates[pt] = pr.FrameRate
	}
	for _, pt := range tl.voices {
		if _, err := fetch(pt, "audio"); err != nil {
			return nil, err
		}
	}
	progress("encode", 0.1)
	rungs := pickRungs(p.cfg.Ladder, maxHeight)
	w, h := canvas(rungs[0].Height)
	// The replay keeps the frame rate of the teacher's camera, else of
	// the screen, else of the stage.
	src := 0.0
	for _, pt := range tl.videoTracks() {
		if src = rates[pt]; src > 0 {
			break
		}
	}
	fps := outputFPS(src, p.cfg.FPS)
	layers, chapters := compose(tl, shown)
	filter := compositeFilter(w, h, fps, tl.duration, layers, inputs, voices)
	layout := "camera"
	if tl.screen != nil || len(tl.stage) > 0 {
		layout = "composite"
	}
	out := filepath.Join(work, "out")
	a := &vod.Assets{
		Version: vod.AssetsVersion, Lesson: lesson, Title: m.Title,
		StartedAt: tl.start, Layout: layout, Chapters: chapters,
	}
	if err := p.encodeAndPackage(ctx, args, filter, fps, tl.duration, rungs, out, a, progress); err != nil {
		return nil, err
	}
	if err := p.publish(ctx, out, vod.LessonBase(lesson), a, progress); err != nil {
		return nil, err
	}
	return a, nil
}

// buildClip cuts [Start, End) out of a transcoded lesson into its own asset.
func (p *pipeline) buildClip(ctx context.Context, lesson string, c vod.ClipRequest, progress progressFunc) (*vod.Assets, error) {
	progress("fetch", 0)
	base := vod.LessonBase(lesson)
	var src vod.Assets
	if err := getJSON(ctx, p.store, base+vod.AssetsFile, &src); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, permanent(fmt.Errorf("lesson %q has no VOD assets yet", lesson))
		}
		return nil, err
	}
	if err := c.Validate(src.Duration); err != nil {
		return nil, permanent(err)
	}
	if src.Download == "" {
		return nil, permanent(fmt.Errorf("lesson %q has no MP4 to cut from", lesson))
	}
	end := math.Min(c.End, src.Duration)
	work, err := os.MkdirTemp(p.cfg.TempDir, "podium-clip-")
	if err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}
	defer os.RemoveAll(work)
	in := filepath.Join(work, "lesson.mp4")
	if err := downloadTo(ctx, p.store, base+src.Download, in); err != nil {
		return nil, err
	}
	pr, err := runFFprobe(ctx, p.cfg.FFprobe, in)
	if err != nil {
		return nil, permanent(fmt.Errorf("lesson MP4 is unreadable: %w", err))
	}
	progress("encode", 0.1)
	dur := end - c.Start
	args := []string{"-ss", fmt.Sprintf("%.3f", c.Start), "-t", fmt.Sprintf("%.3f", dur), "-i", in}
	filter := fmt.Sprintf("[0:v]setpts=PTS-STARTPTS,trim=duration=%.3f[v];[0:a]asetpts=PTS-STARTPTS,atrim=duration=%.3f[a]", dur, dur)
	rungs := pickRungs(p.cfg.Ladder, pr.Height)
	out := filepath.Join(work, "out")
	a := &vod.Assets{
		Version: vod.AssetsVersion, Lesson: lesson, Clip: c.ID, Title: c.Title,
		StartedAt: src.StartedAt.Add(time.Duration(c.Start * float64(time.Second))),
		ClipStart: c.Start, ClipEnd: end, Layout: src.Layout,
	}
	if err := p.encodeAndPackage(ctx, args, filter, outputFPS(pr.FrameRate, p.cfg.FPS), dur, rungs, out, a, progress); err != nil {
		return nil, err
	}
	if err := p.publish(ctx, out, vod.ClipBase(lesson, c.ID), a, progress); err != nil {
		return nil, err
	}
	return a, nil
}

func (p *pipeline) readManifest(ctx context.Context, lesson string) (*vod.Manifest, error) {
	var m vod.Manifest
	if err := getJSON(ctx, p.store, vod.ManifestKey(lesson), &m); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, permanent(fmt.Errorf("lesson %q has no recording manifest", lesson))
		}
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		if errors.As(err, &syn) || errors.As(err, &typ) {
			return nil, permanent(fmt.Errorf("manifest of lesson %q is corrupt: %w", lesson, err))
		}
		return nil, err
	}
	if m.Version != vod.ManifestVersion {
		return nil, permanent(fmt.Errorf("manifest version %d, want %d", m.Version, vod.ManifestVersion))
	}
	return &m, nil
}

// fetchTrack writes a track's init segment followed by its media segments
// to path (a playable fragmented MP4), checking every piece on the way.
func (p *pipeline) fetchTrack(ctx context.Context, t vod.ManifestTrack, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("track file: %w", err)
	}
	defer f.Close()
	bw := bufio.NewWriter(f)
	piece := func(key string, want int64, required ...string) error {
		b, err := readAll(ctx, p.store, key)
		if err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return permanent(fmt.Errorf("track %s: %s is missing", t.ID, key))
			}
			return fmt.Errorf("track %s: %w", t.ID, err)
		}
		if want > 0 && int64(len(b)) != want {
			return permanent(fmt.Errorf("track %s: %s has %d bytes, the manifest says %d (partial upload)", t.ID, key, len(b), want))
		}
		if err := checkBoxes(b, required...); err != nil {
			return permanent(fmt.Errorf("track %s: %s is corrupt: %w", t.ID, key, err))
		}
		_, err = bw.Write(b)
		return err
	}
	if t.Init == "" {
		return permanent(fmt.Errorf("track %s has no init segment", t.ID))
	}
	if err := piece(t.Init, 0, "ftyp", "moov"); err != nil {
		return err
	}
	for _, s := range t.Segments {
		if err := piece(s.Key, s.Bytes, "moof", "mdat"); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("track file: %w", err)
	}
	return f.Close()
}

// pickRungs keeps the rungs no taller than the source (tallest first), or
// the smallest one when the source is smaller than all of them.
func pickRungs(ladder []Rung, srcHeight int) []Rung {
	var out []Rung
	smallest := ladder[0]
	for _, r := range ladder {
		if r.Height <= srcHeight {
			out = append(out, r)
		}
		if r.Height < smallest.Height {
			smallest = r
		}
	}
	if len(out) == 0 {
		out = []Rung{smallest}
	}
	// tallest first
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Height > out[j-1].Height; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// outputFPS is the replay's frame rate for a source of src frames per
// second: the source's own, rounded (WebRTC cameras vary a little around
// their rate), halved while above limit; limit when the source's is
// unknown.
func outputFPS(src float64, limit int) int {
	if limit <= 0 {
		limit = 30
	}
	if src <= 0 || math.IsNaN(src) || math.IsInf(src, 0) {
		return limit
	}
	for src > float64(limit)+0.5 {
		src /= 2
	}
	return max(1, int(math.Round(src)))
}

// canvas is the 16:9 picture size for a height.
func canvas(h int) (int, int) { return even(h*16/9 + 1), even(h) }

// h264Level picks the H.264 level announced for a rendition height.
func h264Level(h int) (level string, codecs string) {
	switch {
	case h <= 360:
		return "3.0", "avc1.4d401e"
	case h <= 720:
		return "3.1", "avc1.4d401f"
	default:
		return "4.0", "avc1.4d4028"
	}
}

// encodeAndPackage runs the ladder encode (one ffmpeg, one decode, every
// rendition), then derives the MP4 download, poster, thumbnail sprites and
// the master playlist from its output. a is filled in.
func (p *pipeline) encodeAndPackage(ctx context.Context, inputs []string, filter string, fps int, duration float64, rungs []Rung, out string, a *vod.Assets, progress progressFunc) error {
	c := p.cfg
	gop := max(1, fps*c.SegmentSeconds/2) // two keyframes per segment, aligned across rungs
	var fc strings.Builder
	fc.WriteString(filter)
	fmt.Fprintf(&fc, ";[v]split=%d", len(rungs))
	for i := range rungs {
		fmt.Fprintf(&fc, "[vs%d]", i)
	}
	fmt.Fprintf(&fc, ";[a]asplit=%d", len(rungs)+1)
	for i := 0; i <= len(rungs); i++ {
		fmt.Fprintf(&fc, "[as%d]", i)
	}
	for i, r := range rungs {
		w, h := canvas(r.Height)
		fmt.Fprintf(&fc, ";[vs%d]scale=%d:%d,setsar=1[vo%d]", i, w, h, i)
	}
	args := append([]string{}, inputs...)
	args = append(args, "-filter_complex", fc.String())
	if c.Threads > 0 {
		args = append(args, "-threads", strconv.Itoa(c.Threads))
	}
	hls := func(dir string) []string {
		return []string{"-f", "hls", "-hls_time", strconv.Itoa(c.SegmentSeconds), "-hls_playlist_type", "vod",
			"-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4",
			"-hls_segment_filename", filepath.Join(out, "hls", dir, "seg_%05d.m4s"),
			filepath.Join(out, "hls", dir, "index.m3u8")}
	}
	for i, r := range rungs {
		if err := os.MkdirAll(filepath.Join(out, "hls", r.Name), 0o755); err != nil {
			return fmt.Errorf("out dir: %w", err)
		}
		level, _ := h264Level(r.Height)
		args = append(args, "-map", fmt.Sprintf("[vo%d]", i), "-map", fmt.Sprintf("[as%d]", i),
			"-c:v", "libx264", "-preset", c.Preset, "-profile:v", "main", "-level:v", level, "-pix_fmt", "yuv420p",
			"-b:v", fmt.Sprintf("%dk", r.VideoKbps), "-maxrate", fmt.Sprintf("%dk", r.VideoKbps*11/10),
			"-bufsize", fmt.Sprintf("%dk", r.VideoKbps*2), "-g", strconv.Itoa(gop), "-keyint_min", strconv.Itoa(gop),
			"-sc_threshold", "0", "-r", strconv.Itoa(fps),
			"-c:a", "aac", "-b:a", fmt.Sprintf("%dk", c.AudioKbps), "-ac", "2", "-ar", "48000")
		args = append(args, hls(r.Name)...)
	}
	if err := os.MkdirAll(filepath.Join(out, "hls", "audio"), 0o755); err != nil {
		return fmt.Errorf("out dir: %w", err)
	}
	args = append(args, "-map", fmt.Sprintf("[as%d]", len(rungs)), "-c:a", "aac",
		"-b:a", fmt.Sprintf("%dk", c.AudioOnlyKbps), "-ac", "2", "-ar", "48000")
	args = append(args, hls("audio")...)

	err := runFFmpeg(ctx, c.FFmpeg, c.StallTimeout, args, func(pr Progress) {
		if duration > 0 {
			progress("encode", 0.1+0.75*math.Min(1, pr.OutTime.Seconds()/duration))
		}
	})
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	progress("package", 0.85)

	top := filepath.Join(out, "hls", rungs[0].Name, "index.m3u8")
	low := filepath.Join(out, "hls", rungs[len(rungs)-1].Name, "index.m3u8")
	pr, err := runFFprobe(ctx, c.FFprobe, top)
	if err != nil {
		return fmt.Errorf("probe output: %w", err)
	}
	a.Duration = math.Round(pr.Duration*1000) / 1000
	if a.Duration <= 0 {
		a.Duration = duration
	}
	// MP4 download: the top rendition remuxed, no second encode.
	if err := runFFmpeg(ctx, c.FFmpeg, c.StallTimeout, []string{"-i", top, "-c", "copy", "-movflags", "+faststart", filepath.Join(out, "download.mp4")}, nil); err != nil {
		return fmt.Errorf("mp4 download: %w", err)
	}
	a.Download = "download.mp4"
	// The poster seeks in the MP4: ffmpeg's seek inside fMP4 HLS loses
	// the decoder context and yields no frame.
	posterAt := math.Min(a.Duration/3, 30)
	if err := runFFmpeg(ctx, c.FFmpeg, c.StallTimeout, []string{"-ss", fmt.Sprintf("%.3f", posterAt), "-i", filepath.Join(out, "download.mp4"), "-frames:v", "1", "-q:v", "3", filepath.Join(out, "poster.jpg")}, nil); err != nil {
		return fmt.Errorf("poster: %w", err)
	}
	a.Poster = vod.PosterFile
	if err := p.sprites(ctx, low, out, a); err != nil {
		return err
	}
	average := map[string]int{}
	for _, r := range rungs {
		w, h := canvas(r.Height)
		_, codecs := h264Level(r.Height)
		peak, avg, err := segmentRates(filepath.Join(out, "hls", r.Name))
		if err != nil {
			return fmt.Errorf("rendition %s: %w", r.Name, err)
		}
		average[r.Name] = avg
		a.Renditions = append(a.Renditions, vod.Rendition{
			Name: r.Name, Width: w, Height: h, Bandwidth: peak, Codecs: codecs + ",mp4a.40.2",
			Playlist: "hls/" + r.Name + "/index.m3u8", VideoCodec: "h264", AudioCodec: "aac",
		})
	}
	peak, avg, err := segmentRates(filepath.Join(out, "hls", "audio"))
	if err != nil {
		return fmt.Errorf("rendition audio: %w", err)
	}
	average["audio"] = avg
	a.Renditions = append(a.Renditions, vod.Rendition{
		Name: "audio", Bandwidth: peak, Codecs: "mp4a.40.2", Playlist: "hls/audio/index.m3u8", AudioOnly: true, AudioCodec: "aac",
	})
	a.Master = "hls/master.m3u8"
	if err := os.WriteFile(filepath.Join(out, "hls", "master.m3u8"), masterPlaylist(a.Renditions, average, fmt.Sprintf("%d.000", fps)), 0o644); err != nil {
		return fmt.Errorf("master playlist: %w", err)
	}
	return nil
}

// Thumbnail sprite geometry: 160x90 tiles, 5x5 per sprite sheet.
const (
	thumbW, thumbH = 160, 90
	tilesX, tilesY = 5, 5
)

// sprites writes thumbnail sprite sheets and a WebVTT file that maps each
// stretch of the timeline to its tile (the form players use for seek-bar
// previews).
func (p *pipeline) sprites(ctx context.Context, src, out string, a *vod.Assets) error {
	interval := math.Max(2, math.Ceil(a.Duration/100))
	thumbs := filepath.Join(out, "thumbs-tmp")
	if err := os.MkdirAll(thumbs, 0o755); err != nil {
		return fmt.Errorf("thumbs dir: %w", err)
	}
	defer os.RemoveAll(thumbs)
	vf := fmt.Sprintf("fps=1/%g,scale=%d:%d:force_original_aspect_ratio=decrease,pad=%d:%d:(ow-iw)/2:(oh-ih)/2", interval, thumbW, thumbH, thumbW, thumbH)
	if err := runFFmpeg(ctx, p.cfg.FFmpeg, p.cfg.StallTimeout, []string{"-i", src, "-an", "-vf", vf, "-q:v", "5", filepath.Join(thumbs, "t_%05d.jpg")}, nil); err != nil {
		return fmt.Errorf("thumbnails: %w", err)
	}
	entries, err := os.ReadDir(thumbs)
	if err != nil || len(entries) == 0 {
		return fmt.Errorf("thumbnails: none written (%v)", err)
	}
	n := len(entries)
	if err := runFFmpeg(ctx, p.cfg.FFmpeg, p.cfg.StallTimeout, []string{"-i", filepath.Join(thumbs, "t_%05d.jpg"),
		"-vf", fmt.Sprintf("tile=%dx%d", tilesX, tilesY), "-q:v", "5", filepath.Join(out, "sprite_%03d.jpg")}, nil); err != nil {
		return fmt.Errorf("sprites: %w", err)
	}
	var vtt bytes.Buffer
	vtt.WriteString("WEBVTT\n\n")
	per := tilesX * tilesY
	for i := 0; i < n; i++ {
		from := float64(i) * interval
		if from >= a.Duration {
			break
		}
		to := math.Min(from+interval, a.Duration)
		sheet := fmt.Sprintf("sprite_%03d.jpg", i/per+1)
		k := i % per
		fmt.Fprintf(&vtt, "%s --> %s\n%s#xywh=%d,%d,%d,%d\n\n", vttTime(from), vttTime(to), sheet, (k%tilesX)*thumbW, (k/tilesX)*thumbH, thumbW, thumbH)
	}
	for s := 1; s <= (n+per-1)/per; s++ {
		a.Sprites = append(a.Sprites, fmt.Sprintf("sprite_%03d.jpg", s))
	}
	a.Thumbnails = "thumbs.vtt"
	return os.WriteFile(filepath.Join(out, "thumbs.vtt"), vtt.Bytes(), 0o644)
}

func vttTime(s float64) string {
	ms := int64(math.Round(s * 1000))
	return fmt.Sprintf("%02d:%02d:%02d.%03d", ms/3600000, ms/60000%60, ms/1000%60, ms%1000)
}

// segmentRates measures a rendition from its media playlist and the sizes
// of its segments, as RFC 8216 defines what a master playlist announces:
// peak is the highest bit rate of any run of consecutive segments lasting
// 0.5 to 1.5 target durations (BANDWIDTH), average is the whole
// presentation's bytes over its duration (AVERAGE-BANDWIDTH). Both count
// the init segment's bytes once, as a player fetches it.
func segmentRates(dir string) (peak, average int, err error) {
	b, err := os.ReadFile(filepath.Join(dir, "index.m3u8"))
	if err != nil {
		return 0, 0, fmt.Errorf("media playlist: %w", err)
	}
	type seg struct {
		dur  float64
		bits float64
	}
	var segs []seg
	var target, dur, initBits float64
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "#EXT-X-TARGETDURATION:"):
			target, _ = strconv.ParseFloat(strings.TrimPrefix(line, "#EXT-X-TARGETDURATION:"), 64)
		case strings.HasPrefix(line, "#EXT-X-MAP:"):
			_, uri, ok := strings.Cut(line, `URI="`)
			if uri, _, _ = strings.Cut(uri, `"`); ok && uri != "" {
				st, err := os.Stat(filepath.Join(dir, uri))
				if err != nil {
					return 0, 0, fmt.Errorf("init segment %s: %w", uri, err)
				}
				initBits = float64(st.Size() * 8)
			}
		case strings.HasPrefix(line, "#EXTINF:"):
			v, _, _ := strings.Cut(strings.TrimPrefix(line, "#EXTINF:"), ",")
			dur, _ = strconv.ParseFloat(v, 64)
		case line != "" && !strings.HasPrefix(line, "#"):
			st, err := os.Stat(filepath.Join(dir, line))
			if err != nil {
				return 0, 0, fmt.Errorf("segment %s: %w", line, err)
			}
			segs = append(segs, seg{dur: dur, bits: float64(st.Size() * 8)})
		}
	}
	var totalDur, totalBits float64
	for _, s := range segs {
		totalDur += s.dur
		totalBits += s.bits
	}
	if len(segs) == 0 || totalDur <= 0 {
		return 0, 0, fmt.Errorf("media playlist %s has no segments", dir)
	}
	if target <= 0 {
		target = totalDur
	}
	lo, hi := 0.5*target, 1.5*target
	peakRate := 0.0
	for i := range segs {
		var d, bits float64
		for j := i; j < len(segs) && d+segs[j].dur <= hi; j++ {
			d += segs[j].dur
			bits += segs[j].bits
			if d >= lo {
				peakRate = math.Max(peakRate, bits/d)
			}
		}
	}
	avgRate := (totalBits + initBits) / totalDur
	if peakRate < avgRate {
		// A presentation shorter than half a target duration has no
		// window to measure; its average is its peak.
		peakRate = avgRate
	}
	return int(math.Ceil(peakRate)), int(math.Ceil(avgRate)), nil
}

// masterPlaylist writes the HLS master playlist: video renditions tallest
// first, then the audio-only one. average holds each rendition's
// AVERAGE-BANDWIDTH by name.
func masterPlaylist(rs []vod.Rendition, average map[string]int, fps string) []byte {
	var b bytes.Buffer
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	for _, r := range rs {
		avg := ""
		if v := average[r.Name]; v > 0 {
			avg = ",AVERAGE-BANDWIDTH=" + strconv.Itoa(v)
		}
		if r.AudioOnly {
			fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d%s,CODECS=\"%s\"\n%s\n", r.Bandwidth, avg, r.Codecs, strings.TrimPrefix(r.Playlist, "hls/"))
			continue
		}
		fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d%s,RESOLUTION=%dx%d,FRAME-RATE=%s,CODECS=\"%s\"\n%s\n",
			r.Bandwidth, avg, r.Width, r.Height, fps, r.Codecs, strings.TrimPrefix(r.Playlist, "hls/"))
	}
	return b.Bytes()
}

// publish uploads every file under dir to base, then the assets record
// last: until it is there the asset is not listed as playable.
func (p *pipeline) publish(ctx context.Context, dir, base string, a *vod.Assets, progress progressFunc) error {
	progress("upload", 0.95)
	if err := p.store.Delete(ctx, base+vod.AssetsFile); err != nil {
		return fmt.Errorf("clear old assets record: %w", err)
	}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		key := base + filepath.ToSlash(rel)
		if err := p.store.Put(ctx, key, f, st.Size(), contentType(rel)); err != nil {
			return fmt.Errorf("upload %s: %w", key, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	a.CreatedAt = time.Now().UTC()
	body, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return fmt.Errorf("assets record: %w", err)
	}
	if err := p.store.Put(ctx, base+vod.AssetsFile, bytes.NewReader(body), int64(len(body)), "application/json"); err != nil {
		return fmt.Errorf("assets record: %w", err)
	}
	progress("done", 1)
	return nil
}

func contentType(name string) string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".m3u8":
		return "application/vnd.apple.mpegurl"
	case ".m4s":
		return "video/iso.segment"
	case ".mp4":
		return "video/mp4"
	case ".jpg":
		return "image/jpeg"
	case ".vtt":
		return "text/vtt"
	case ".json":
		return "application/json"
	}
	return "application/octet-stream"
}

func readAll(ctx context.Context, s storage.Store, key string) ([]byte, error) {
	rc, _, err := s.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return b, nil
}

func getJSON(ctx context.Context, s storage.Store, key string, v any) error {
	b, err := readAll(ctx, s, key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", key, err)
	}
	return nil
}

func downloadTo(ctx context.Context, s storage.Store, key, path string) error {
	rc, _, err := s.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("get %s: %w", key, err)
	}
	defer rc.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return fmt.Errorf("download %s: %w", key, err)
	}
	return f.Close()
}
