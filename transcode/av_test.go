package transcode

import (
	"bufio"
	"bytes"
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"podium/transcode/transcodetest"
	"podium/vod"
)

// decodedAudioSeconds is how long a player plays a file's audio: decoded
// samples over the sample rate.
func decodedAudioSeconds(t *testing.T, ffmpeg, path string) float64 {
	t.Helper()
	out, err := exec.Command(ffmpeg, "-v", "error", "-i", path, "-map", "0:a:0", "-ac", "1", "-ar", "8000", "-f", "s16le", "-").Output()
	if err != nil {
		t.Fatalf("decode audio of %s: %v", path, err)
	}
	return float64(len(out)/2) / 8000
}

// flashTimes are the instants a file's picture turns white (mean luma
// above 200 after a darker frame), and how many frames decoded.
func flashTimes(t *testing.T, ffmpeg, path string) (onsets []float64, frames int) {
	t.Helper()
	stats := pictureStats(t, ffmpeg, path, "")
	return whiteOnsets(stats), len(stats)
}

// whiteOnsets are the times a picture turns white (mean luma above 200
// after a darker frame).
func whiteOnsets(stats []frameStats) []float64 {
	var onsets []float64
	white := false
	for _, f := range stats {
		if f.y > 200 && !white {
			onsets = append(onsets, f.t)
		}
		white = f.y > 200
	}
	return onsets
}

// frameStats is one decoded frame's time and mean Y, U and V.
type frameStats struct{ t, y, u, v float64 }

// pictureStats decodes a file's video and measures every frame's mean Y, U
// and V, within the ffmpeg crop w:h:x:y when crop is not "".
func pictureStats(t *testing.T, ffmpeg, path, crop string) []frameStats {
	t.Helper()
	vf := "signalstats,metadata=print"
	if crop != "" {
		vf = "crop=" + crop + "," + vf
	}
	out, err := exec.Command(ffmpeg, "-v", "info", "-i", path, "-map", "0:v:0", "-vf", vf, "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("decode video of %s: %v\n%s", path, err, out)
	}
	var stats []frameStats
	value := func(line, key string) (float64, bool) {
		i := strings.Index(line, key)
		if i < 0 {
			return 0, false
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(line[i+len(key):]), 64)
		return v, err == nil
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "pts_time:"); i >= 0 {
			pts, _ := strconv.ParseFloat(strings.Fields(line[i+len("pts_time:"):])[0], 64)
			stats = append(stats, frameStats{t: pts})
			continue
		}
		if len(stats) == 0 {
			continue
		}
		f := &stats[len(stats)-1]
		if v, ok := value(line, "lavfi.signalstats.YAVG="); ok {
			f.y = v
		} else if v, ok := value(line, "lavfi.signalstats.UAVG="); ok {
			f.u = v
		} else if v, ok := value(line, "lavfi.signalstats.VAVG="); ok {
			f.v = v
		}
	}
	return stats
}

// beepTimes are the instants a file's audio turns loud after silence.
func beepTimes(t *testing.T, ffmpeg, path string) []float64 {
	t.Helper()
	return soundOnsets(t, ffmpeg, path, "")
}

// soundOnsets are the instants a file's audio, through the filter chain
// pick (e.g. a band-pass to hear one tone; "" for all), turns loud after
// silence.
func soundOnsets(t *testing.T, ffmpeg, path, pick string) []float64 {
	t.Helper()
	af := "silencedetect=n=-30dB:d=0.1"
	if pick != "" {
		af = pick + "," + af
	}
	out, err := exec.Command(ffmpeg, "-v", "info", "-i", path, "-map", "0:a:0",
		"-af", af, "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("decode audio of %s: %v\n%s", path, err, out)
	}
	var onsets []float64
	for _, line := range strings.Split(string(out), "\n") {
		if i := strings.Index(line, "silence_end: "); i >= 0 {
			v, _ := strconv.ParseFloat(strings.Fields(line[i+len("silence_end: "):])[0], 64)
			onsets = append(onsets, v)
		}
	}
	return onsets
}

// worstOffset is the A/V offset of the beep farthest from its nearest
// flash (sorted), positive when the sound comes after the picture.
func worstOffset(beeps, flashes []float64) float64 {
	worst := 0.0
	for _, b := range beeps {
		i := sort.SearchFloat64s(flashes, b)
		d := math.Inf(1)
		for _, j := range []int{i - 1, i} {
			if j >= 0 && j < len(flashes) && math.Abs(b-flashes[j]) < math.Abs(d) {
				d = b - flashes[j]
			}
		}
		if math.Abs(d) > math.Abs(worst) {
			worst = d
		}
	}
	return worst
}

// masterAttrs reads BANDWIDTH and AVERAGE-BANDWIDTH per variant URI.
func masterAttrs(t *testing.T, master []byte) map[string][2]int {
	t.Helper()
	res := map[string][2]int{}
	lines := strings.Split(string(master), "\n")
	for i, l := range lines {
		attrs, ok := strings.CutPrefix(l, "#EXT-X-STREAM-INF:")
		if !ok || i+1 >= len(lines) {
			continue
		}
		var bw [2]int
		for _, kv := range splitAttrs(attrs) {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "BANDWIDTH":
				bw[0], _ = strconv.Atoi(v)
			case "AVERAGE-BANDWIDTH":
				bw[1], _ = strconv.Atoi(v)
			}
		}
		res[strings.Split(lines[i+1], "/")[0]] = bw
	}
	return res
}

// A lesson recorded live — a teacher whose camera flashes white while the
// microphone beeps, the microphone in Opus DTX between beeps (one packet
// per 400 ms, as browsers send silence) and muted for a while — replays
// with audio as long as the video in every rendition and every beep on its
// flash; the master playlist announces measured, ladder-ordered bandwidths.
func TestReplayFollowsRecordedAudioTimeline(t *testing.T) {
	ffmpeg, ffprobe := requireFF(t)
	store := minioStore(t)
	o := transcodetest.LiveOptions{Seconds: 20, DTX: true, MuteFrom: 11 * time.Second, MuteTo: 14 * time.Second}
	m := transcodetest.RecordLive(t, store, "av-sync", o)
	for _, tr := range m.Tracks {
		t.Logf("recorded %s: %d segments", tr.ID, len(tr.Segments))
	}

	cfg := Config{FFmpeg: ffmpeg, FFprobe: ffprobe, TempDir: t.TempDir()}
	cfg.setDefaults()
	p := &pipeline{cfg: cfg, store: store}
	a, err := p.buildLesson(context.Background(), "av-sync", func(string, float64) {})
	if err != nil {
		t.Fatal(err)
	}
	dir := download(t, store, vod.LessonBase("av-sync"))

	// Flashes every 3 s from 1 s; the one at 13 s falls in the mute.
	var want []float64
	for at := time.Second; at < time.Duration(o.Seconds)*time.Second; at += 3 * time.Second {
		want = append(want, at.Seconds())
	}
	for _, r := range []string{"720p", "360p", "audio"} {
		pl := filepath.Join(dir, "hls", r, "index.m3u8")
		aEnd := transcodetest.StreamEnd(t, pl, "a:0")
		played := decodedAudioSeconds(t, ffmpeg, pl)
		var beeps []float64
		for _, b := range beepTimes(t, ffmpeg, pl) {
			if b < played-0.15 { // silencedetect ends its last silence at the end of the file
				beeps = append(beeps, b)
			}
		}
		t.Logf("%s: audio ends at %.3f s, %.3f s decoded, beeps at %v", r, aEnd, played, beeps)
		if math.Abs(aEnd-a.Duration) > 0.5 || math.Abs(played-a.Duration) > 0.5 {
			t.Errorf("%s: audio ends at %.3f s and plays %.3f s; the replay lasts %.3f s", r, aEnd, played, a.Duration)
		}
		if r == "audio" {
			continue
		}
		vEnd := transcodetest.StreamEnd(t, pl, "v:0")
		flashes, frames := flashTimes(t, ffmpeg, pl)
		t.Logf("%s: video ends at %.3f s (%d frames), flashes at %v", r, vEnd, frames, flashes)
		if math.Abs(vEnd-aEnd) > 0.5 {
			t.Errorf("%s: video %.3f s, audio %.3f s: they must agree within 0.5 s", r, vEnd, aEnd)
		}
		if len(flashes) != len(want) {
			t.Errorf("%s: %d flashes seen, want %d (%v)", r, len(flashes), len(want), flashes)
		}
		// Every beep heard is on a flash (the muted one is not heard).
		if len(beeps) != len(want)-1 {
			t.Errorf("%s: %d beeps heard, want %d", r, len(beeps), len(want)-1)
		}
		worst := worstOffset(beeps, flashes)
		t.Logf("%s: worst A/V offset %+.0f ms", r, worst*1000)
		if math.Abs(worst) > 0.1 {
			t.Errorf("%s: a beep is %+.0f ms off its flash", r, worst*1000)
		}
	}

	master := readFile(t, filepath.Join(dir, "hls", "master.m3u8"))
	bw := masterAttrs(t, master)
	t.Logf("master:\n%s", master)
	hi, lo, au := bw["720p"], bw["360p"], bw["audio"]
	if !(hi[0] > lo[0] && lo[0] > au[0] && au[0] > 0) {
		t.Errorf("BANDWIDTH does not follow the ladder: 720p %d, 360p %d, audio %d", hi[0], lo[0], au[0])
	}
	for name, v := range bw {
		if v[1] <= 0 || v[1] > v[0] {
			t.Errorf("%s: AVERAGE-BANDWIDTH %d, BANDWIDTH %d", name, v[1], v[0])
		}
	}
	// The peak is what the encoder was asked for, give or take: video at
	// most its VBV rate plus audio, and not the fraction of it a
	// stretched timeline gives.
	for _, r := range DefaultLadder {
		v, ok := bw[r.Name]
		if !ok {
			continue
		}
		ceil := (r.VideoKbps*11/10 + cfg.AudioKbps) * 1000 * 3 / 2
		if v[0] > ceil || v[1] < r.VideoKbps*1000/4 {
			t.Errorf("%s: BANDWIDTH %d / AVERAGE %d implausible for %d kbit/s video", r.Name, v[0], v[1], r.VideoKbps)
		}
	}
	for _, r := range a.Renditions {
		if want := bw[strings.TrimSuffix(strings.TrimPrefix(r.Playlist, "hls/"), "/index.m3u8")][0]; r.Bandwidth != want {
			t.Errorf("assets say %s has %d bit/s, master %d", r.Name, r.Bandwidth, want)
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOutputFPSKeepsTheSourceRate(t *testing.T) {
	for _, tc := range []struct {
		src   float64
		limit int
		want  int
	}{{25, 30, 25}, {30.01, 30, 30}, {29.97, 30, 30}, {24.6, 30, 25}, {50, 30, 25}, {60, 30, 30}, {15, 30, 15}, {5, 30, 5}, {0, 30, 30}, {120, 30, 30}, {0.4, 30, 1}} {
		if got := outputFPS(tc.src, tc.limit); got != tc.want {
			t.Errorf("outputFPS(%v, %d) = %d, want %d", tc.src, tc.limit, got, tc.want)
		}
	}
}

// A lesson from a 25 fps camera (an RTSP camera, a PAL encoder) replays at
// 25 fps: as many pictures as were recorded, none doubled to make 30.
func TestReplayKeepsSourceFrameRate(t *testing.T) {
	ffmpeg, ffprobe := requireFF(t)
	store := minioStore(t)
	o := transcodetest.LiveOptions{Seconds: 10, Width: 640, Height: 360, FPS: 25}
	transcodetest.RecordLive(t, store, "pal", o)
	cfg := Config{FFmpeg: ffmpeg, FFprobe: ffprobe, TempDir: t.TempDir()}
	cfg.setDefaults()
	p := &pipeline{cfg: cfg, store: store}
	a, err := p.buildLesson(context.Background(), "pal", func(string, float64) {})
	if err != nil {
		t.Fatal(err)
	}
	dir := download(t, store, vod.LessonBase("pal"))
	pl := filepath.Join(dir, "hls", "360p", "index.m3u8")
	out, err := exec.Command(ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=r_frame_rate,avg_frame_rate",
		"-of", "csv=p=0", filepath.Join(dir, a.Download)).Output()
	if err != nil {
		t.Fatal(err)
	}
	rate := strings.TrimSpace(string(out))
	flashes, frames := flashTimes(t, ffmpeg, pl)
	perSecond := float64(frames) / a.Duration
	t.Logf("replay of %.2f s: %d frames (%.2f per second), stream rates %s, flashes at %v", a.Duration, frames, perSecond, rate, flashes)
	if !strings.HasPrefix(rate, "25/1") || math.Abs(perSecond-25) > 0.5 {
		t.Errorf("replay at %s with %.2f frames per second; the camera sent 25", rate, perSecond)
	}
	if len(flashes) != 3 {
		t.Errorf("%d flashes seen, want 3: %v", len(flashes), flashes)
	}
	if master := string(readFile(t, filepath.Join(dir, "hls", "master.m3u8"))); !strings.Contains(master, "FRAME-RATE=25.000") {
		t.Errorf("master playlist does not say 25 fps:\n%s", master)
	}
}
