package vod_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"podium/internal/testenv"
	"podium/sfu"
	"podium/signaling/auth"
	"podium/storage/s3/s3test"
	"podium/transcode/transcodetest"
	"podium/vod"
)

// rawSnapshot is what a classroom that opens the raw replay sees at one
// moment: the lesson's playback and its two media playlists.
type rawSnapshot struct {
	at                   time.Time
	playback             string
	video, audio         string // media playlists
	videoSegs, audioSegs int
}

func (r rawSnapshot) ended() bool {
	return strings.Contains(r.video, "#EXT-X-ENDLIST") && strings.Contains(r.audio, "#EXT-X-ENDLIST")
}

// rawPlaylists reads the lesson's raw master playlist (signed URL, no
// token) and its video and audio media playlists.
func rawPlaylists(s *server, lesson, tok string) (rawSnapshot, bool) {
	snap := rawSnapshot{at: time.Now()}
	get := func(u, bearer string) (string, bool) {
		req, _ := http.NewRequest("GET", s.URL+strings.TrimPrefix(u, s.URL), nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", false
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err == nil && resp.StatusCode == http.StatusOK
	}
	body, ok := get("/api/vod/lessons/"+lesson, tok)
	var l vod.Lesson
	if !ok || json.Unmarshal([]byte(body), &l) != nil || l.HLS == "" {
		return snap, false
	}
	snap.playback = l.Playback
	master, ok := get(l.HLS, "")
	if !ok {
		return snap, false
	}
	videoURI, audioURI := masterURIs(master)
	if snap.video, ok = get(videoURI, ""); !ok {
		return snap, false
	}
	if snap.audio, ok = get(audioURI, ""); !ok {
		return snap, false
	}
	snap.videoSegs, snap.audioSegs = strings.Count(snap.video, "#EXTINF:"), strings.Count(snap.audio, "#EXTINF:")
	return snap, true
}

// masterURIs finds the variant's (video) and the audio rendition's URIs.
func masterURIs(master string) (video, audio string) {
	lines := strings.Split(master, "\n")
	for i, line := range lines {
		if strings.HasPrefix(line, "#EXT-X-STREAM-INF:") && i+1 < len(lines) {
			video = lines[i+1]
		}
		if strings.HasPrefix(line, "#EXT-X-MEDIA:TYPE=AUDIO") {
			if _, rest, ok := strings.Cut(line, `URI="`); ok {
				audio, _, _ = strings.Cut(rest, `"`)
			}
		}
	}
	return video, audio
}

// TestRawReplay: a lesson recorded live by the real recorder (an H.264
// camera and an Opus microphone sent as RTP, paced like a browser) into a
// real MinIO is watchable without any encoding:
//   - while it runs, a classroom of the lesson gets an EVENT playlist that
//     grows as segments reach storage, with no end, and a late classroom's
//     replay page in Chromium plays it (hls.js sees a live playlist);
//   - seconds after it ends, the same playlist has its end (the time from
//     the lesson's end to that is logged), and ffprobe, reading the
//     playlist over HTTP from the server, decodes the teacher's camera and
//     voice for as long as the lesson lasted;
//   - Chromium's replay page plays it before any transcode has run, and
//     switches to the transcoded replay once a worker has made it.
func TestRawReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("records a 20 s lesson in real time")
	}
	ffprobe := testenv.RequireBinary(t, "ffprobe")
	_, store := s3test.Start(t, "podium")
	s := startServerWith(t, store, vod.PlaybackPodium, -1) // queues, transcodes nothing yet
	const lesson = "raw-101"
	// PODIUM_RAW_LESSON_SECONDS=120 measures a two-minute lesson
	// (docs/RECORDING.md); 20 s keeps the test short.
	seconds := 20
	if v, err := strconv.Atoi(os.Getenv("PODIUM_RAW_LESSON_SECONDS")); err == nil && v >= 10 {
		seconds = v
	}
	classroom := s.tokenFor(t, auth.Request{Room: lesson, Role: sfu.RoleClassroom})

	// A classroom polls the raw replay through the whole lesson.
	var (
		mu    sync.Mutex
		snaps []rawSnapshot
	)
	pollCtx, stopPoll := context.WithCancel(context.Background())
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for pollCtx.Err() == nil {
			if snap, ok := rawPlaylists(s, lesson, classroom); ok {
				mu.Lock()
				snaps = append(snaps, snap)
				mu.Unlock()
				if snap.ended() {
					return
				}
			}
			select {
			case <-pollCtx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	defer func() { stopPoll(); <-polled }()

	// A classroom that joins late opens the replay page while the lesson
	// runs; the lesson stays live until its page has played (or given up).
	browser := testenv.StartChromium(t)
	type liveResult struct {
		st  playState
		err error
	}
	livePage := make(chan liveResult, 1)
	go func() {
		var r liveResult
		defer func() { livePage <- r }()
		r.err = func() error {
			ctx, cancel := chromedp.NewContext(browser)
			defer cancel()
			ctx, cancelT := context.WithTimeout(ctx, 5*time.Minute)
			defer cancelT()
			for {
				if snap, ok := rawPlaylists(s, lesson, classroom); ok && snap.playback == vod.PlaybackRaw {
					break
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("the lesson's raw replay never came: %w", ctx.Err())
				case <-time.After(100 * time.Millisecond):
				}
			}
			if err := openReplayPage(ctx, s.URL+"/replay?lesson="+lesson+"#token="+classroom); err != nil {
				return err
			}
			var err error
			r.st, err = pagePlays(ctx, vod.PlaybackRaw, true)
			return err
		}()
	}()

	var endedAt time.Time
	m := transcodetest.RecordLive(t, store, lesson, transcodetest.LiveOptions{Seconds: seconds,
		Hold: func() {
			r := <-livePage
			if r.err != nil {
				t.Errorf("while live: %v", r.err)
				return
			}
			t.Logf("while live, a late classroom's page plays the growing raw replay: %.1f s in, %d frames shown", r.st.Time, r.st.Frames)
		},
		Ended: func(at time.Time) { endedAt = at }})
	testenv.WaitFor(t, 60*time.Second, "the classroom to see the raw playlists end", func() bool {
		select {
		case <-polled:
			return true
		default:
			return false
		}
	})
	mu.Lock()
	all := append([]rawSnapshot(nil), snaps...)
	mu.Unlock()

	// While live: EVENT playlists without an end, growing. (Until the
	// camera's first segment is in storage the replay is the voice alone.)
	var live []rawSnapshot
	for _, sn := range all {
		if !sn.ended() && sn.playback == vod.PlaybackRaw {
			live = append(live, sn)
		}
	}
	if len(live) < 2 {
		t.Fatalf("the classroom saw the raw replay %d times before the lesson ended, want it while live", len(live))
	}
	first, last := live[0], live[len(live)-1]
	if !strings.Contains(first.video, "#EXT-X-PLAYLIST-TYPE:EVENT") || !strings.Contains(first.audio, "#EXT-X-PLAYLIST-TYPE:EVENT") {
		t.Errorf("live playlists:\n%s\n%s", first.video, first.audio)
	}
	if last.videoSegs <= first.videoSegs || last.audioSegs <= first.audioSegs {
		t.Errorf("live playlists did not grow: video %d -> %d segments, audio %d -> %d",
			first.videoSegs, last.videoSegs, first.audioSegs, last.audioSegs)
	}
	t.Logf("live: the classroom saw %d segments of video at %.1f s, %d at %.1f s (no end)",
		first.videoSegs, first.at.Sub(m.StartedAt).Seconds(), last.videoSegs, last.at.Sub(m.StartedAt).Seconds())

	// Ended: VOD with an end, seconds after the lesson.
	done := all[len(all)-1]
	if !done.ended() || !strings.Contains(done.video, "#EXT-X-PLAYLIST-TYPE:VOD") {
		t.Fatalf("final playlist:\n%s", done.video)
	}
	t.Logf("time from lesson end to a playable raw playlist: %.2f s (classroom polling every 100 ms; load %s)",
		done.at.Sub(endedAt).Seconds(), loadAverage())

	// ffprobe, over HTTP, decodes both tracks for the lesson's length.
	var l vod.Lesson
	if code := s.do(t, "GET", "/api/vod/lessons/"+lesson, classroom, nil, &l); code != http.StatusOK || l.Playback != vod.PlaybackRaw {
		t.Fatalf("lesson after its end: %d %+v", code, l)
	}
	out, err := exec.Command(ffprobe, "-v", "error", "-count_frames", "-show_entries",
		"stream=codec_type,codec_name,width,height,nb_read_frames:format=duration", "-of", "json", s.URL+l.HLS).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe the raw playlist: %v\n%s", err, out)
	}
	var probe struct {
		Streams []struct {
			CodecType    string `json:"codec_type"`
			CodecName    string `json:"codec_name"`
			Width        int    `json:"width"`
			NbReadFrames string `json:"nb_read_frames"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &probe); err != nil {
		t.Fatalf("ffprobe output: %v\n%s", err, out)
	}
	frames := map[string]int{}
	for _, st := range probe.Streams {
		n, _ := strconv.Atoi(st.NbReadFrames)
		frames[st.CodecType+"/"+st.CodecName] += n
	}
	dur, _ := strconv.ParseFloat(probe.Format.Duration, 64)
	t.Logf("ffprobe of the raw playlist: %.2f s, frames %v", dur, frames)
	if math.Abs(dur-float64(seconds)) > 1 {
		t.Errorf("raw replay lasts %.2f s, the lesson %d s", dur, seconds)
	}
	if frames["video/h264"] < seconds*30*9/10 || frames["audio/opus"] < seconds*50*9/10 {
		t.Errorf("decoded frames %v, want about %d video and %d audio", frames, seconds*30, seconds*50)
	}

	// The camera flashes white while the microphone beeps: on the raw
	// replay's timeline both happen at the same instants.
	flashes, beeps := flashesAndBeeps(t, s.URL+l.HLS)
	var offsets []float64
	for _, f := range flashes {
		near := math.Inf(1)
		for _, b := range beeps {
			if math.Abs(b-f) < math.Abs(near) {
				near = b - f
			}
		}
		offsets = append(offsets, near)
	}
	t.Logf("A/V offset of the raw replay at each of %d flashes (audio minus video, s): %.3f", len(flashes), offsets)
	if len(flashes) < seconds/3-1 {
		t.Errorf("%d flashes seen in the raw replay, want about %d", len(flashes), seconds/3)
	}
	for _, o := range offsets {
		if math.Abs(o) > 0.1 {
			t.Errorf("raw replay's sound is %.3f s off its picture (flashes %v, beeps %v)", o, flashes, beeps)
			break
		}
	}

	// Chromium's replay page plays the raw replay, then the transcoded one.
	ctx, cancel := chromedp.NewContext(browser)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 15*time.Minute)
	defer cancelT()
	if err := openReplayPage(ctx, s.URL+"/replay?lesson="+lesson+"#token="+classroom); err != nil {
		t.Fatal(err)
	}
	waitPlaying := func(playback string) {
		t.Helper()
		st, err := pagePlays(ctx, playback, false)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("page plays the %s replay: %.1f s in, %d frames shown", playback, st.Time, st.Frames)
	}
	waitPlaying(vod.PlaybackRaw)
	// Why a VP8 camera's raw replay is its voice alone: MSE cannot play
	// VP8 from fMP4 (the fact, logged from this browser).
	support, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]bool](`Object.fromEntries(
	  ['video/mp4; codecs="vp08.00.10.08"', 'video/mp4; codecs="avc1.42e01f"', 'video/mp4; codecs="vp09.00.10.08"', 'audio/mp4; codecs="opus"']
	  .map((c) => [c, MediaSource.isTypeSupported(c)]))`))
	t.Logf("this Chromium's MSE supports %v (%v)", support, err)

	// A worker transcodes the lesson; the open page switches over.
	s.startWorker(t)
	// Transcoding takes minutes on a loaded two-core machine.
	testenv.WaitFor(t, 10*time.Minute, "the lesson's transcoded replay", func() bool {
		var l vod.Lesson
		return s.do(t, "GET", "/api/vod/lessons/"+lesson, classroom, nil, &l) == http.StatusOK && l.Status == vod.StatusReady
	})
	testenv.WaitFor(t, 60*time.Second, "the page to switch to the transcoded replay", func() bool {
		pb, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.replay.playback`))
		return err == nil && pb == vod.PlaybackTranscoded
	})
	waitPlaying(vod.PlaybackTranscoded)
}

// loadAverage is the 1-minute load average, for logged figures.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "unknown"
	}
	return f[0]
}

// flashesAndBeeps decodes an HLS replay in one pass and returns, on its
// timeline, the instants the picture turns white (mean luma above 200)
// and the sound turns loud after silence.
func flashesAndBeeps(t *testing.T, u string) (flashes, beeps []float64) {
	t.Helper()
	ffmpeg := testenv.RequireBinary(t, "ffmpeg")
	out, err := exec.Command(ffmpeg, "-v", "info", "-i", u, "-filter_complex",
		"[0:v:0]signalstats,metadata=print:key=lavfi.signalstats.YAVG[v];[0:a:0]silencedetect=n=-30dB:d=0.1[a]",
		"-map", "[v]", "-map", "[a]", "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("decode %s: %v\n%s", u, err, out)
	}
	var pts float64
	white := false
	for _, line := range strings.Split(string(out), "\n") {
		if _, v, ok := strings.Cut(line, "pts_time:"); ok {
			pts, _ = strconv.ParseFloat(strings.Fields(v)[0], 64)
		} else if _, v, ok := strings.Cut(line, "lavfi.signalstats.YAVG="); ok {
			y, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if y > 200 && !white {
				flashes = append(flashes, pts)
			}
			white = y > 200
		} else if _, v, ok := strings.Cut(line, "silence_end: "); ok {
			b, _ := strconv.ParseFloat(strings.Fields(v)[0], 64)
			beeps = append(beeps, b)
		}
	}
	return flashes, beeps
}

// openReplayPage opens the replay page in the tab.
func openReplayPage(ctx context.Context, u string) error {
	if err := chromedp.Do(ctx, chromedp.Navigate(u), chromedp.WaitVisible(chromedp.ID("video"))); err != nil {
		return fmt.Errorf("open the replay page: %w", err)
	}
	return nil
}

// playState is what the replay page plays, read through browser APIs.
type playState struct {
	Playback string  `json:"playback"`
	Live     bool    `json:"live"` // hls.js reloads a playlist without an end
	Time     float64 `json:"time"`
	Frames   int     `json:"frames"` // requestVideoFrameCallback calls since play
	Error    string  `json:"error"`
}

// pagePlays starts the page's video (muted) and waits until it plays the
// given playback (and, with live, a playlist without an end): its time
// advances by a second and frames are presented. (A page that switched
// to the transcoded replay after the raw one ended is at its end: playing
// starts it again.)
func pagePlays(ctx context.Context, playback string, live bool) (playState, error) {
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
	  const v = document.getElementById('video'); v.muted = true; v.play();
	  const mine = {frames: 0};
	  window.rawTest = mine;
	  const count = () => { if (window.rawTest !== mine) return; mine.frames++; v.requestVideoFrameCallback(count); };
	  v.requestVideoFrameCallback(count); return true; })()`)); err != nil {
		return playState{}, fmt.Errorf("play: %w", err)
	}
	start := -1.0
	var st playState
	for {
		var err error
		st, err = chromedp.Run(ctx, chromedp.Evaluate[playState](`(() => { const v = document.getElementById('video');
		  if (v.paused) v.play();
		  const h = window.replay && window.replay.hls;
		  const lv = h && h.levels.length ? h.levels[Math.max(h.currentLevel, 0)] : null;
		  return {playback: window.replay ? window.replay.playback : '', live: !!(lv && lv.details && lv.details.live),
		    time: v.currentTime, frames: window.rawTest.frames,
		    error: document.getElementById('error').hidden ? '' : document.getElementById('error').textContent}; })()`))
		switch {
		case err != nil:
			return st, fmt.Errorf("read the page: %w", err)
		case st.Error != "":
			return st, fmt.Errorf("the page shows %q", st.Error)
		case st.Playback == playback && (st.Live || !live) && st.Frames > 0 && (start < 0 || st.Time < start):
			start = st.Time // from here (or from a restart: an ended video plays again from 0)
		case st.Playback == playback && (st.Live || !live) && start >= 0 && st.Time > start+1 && st.Frames > 30:
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("the page does not play the %s replay (live %v): %+v", playback, live, st)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestRawPlaylistsOfARecording: what the raw playlists say of a recording
// (made with ffmpeg as the recorder stores it): the teacher's camera as the
// variant with its codec and size, the teacher's voice as its audio
// rendition, every URI signed; a tampered signature is refused; a VP8
// camera leaves the voice alone; a lesson with nothing recorded has no
// playlist.
func TestRawPlaylistsOfARecording(t *testing.T) {
	store := localStore(t)
	s := startServerWith(t, store, vod.PlaybackPodium, -1)
	m := transcodetest.WriteRecording(t, store, "math-101", 6, true)
	teacher := s.token(t, sfu.RoleTeacher)

	var l vod.Lesson
	if code := s.do(t, "GET", "/api/vod/lessons/math-101", teacher, nil, &l); code != http.StatusOK || l.Playback != vod.PlaybackRaw {
		t.Fatalf("lesson: %d %+v", code, l)
	}
	code, master := s.get(t, l.HLS)
	video, audio := masterURIs(string(master))
	if code != http.StatusOK || !strings.Contains(string(master), `CODECS="avc1.`) || !strings.Contains(string(master), `,opus"`) ||
		!strings.Contains(string(master), "RESOLUTION=640x360") || !strings.Contains(string(master), `AUDIO="voice"`) ||
		!strings.Contains(video, "/rec/teacher-cam/index.m3u8?") || !strings.Contains(audio, "/rec/teacher-mic/index.m3u8?") {
		t.Fatalf("master: %d\n%s", code, master)
	}
	code, media := s.get(t, video)
	if code != http.StatusOK || !strings.Contains(string(media), "#EXT-X-PLAYLIST-TYPE:VOD") || !strings.Contains(string(media), "#EXT-X-ENDLIST") ||
		strings.Count(string(media), "#EXTINF:") != len(m.Tracks[0].Segments) || !strings.Contains(string(media), `#EXT-X-MAP:URI="/api/vod/raw/math-101/rec/teacher-cam/init.mp4?`) {
		t.Fatalf("camera playlist: %d\n%s", code, media)
	}
	for _, line := range strings.Split(string(media), "\n") {
		if strings.HasPrefix(line, "/api/") {
			if code, b := s.get(t, line); code != http.StatusOK || len(b) == 0 {
				t.Errorf("segment %s: %d", line, code)
			}
			if code, _ := s.get(t, strings.Replace(line, "sig=", "sig=x", 1)); code != http.StatusUnauthorized {
				t.Errorf("tampered segment URL: %d, want 401", code)
			}
		}
	}

	for i := range m.Tracks {
		if m.Tracks[i].Kind == "video" {
			m.Tracks[i].Codec = "vp8"
		}
	}
	transcodetest.PutJSON(t, store, vod.ManifestKey("math-101"), m)
	if code := s.do(t, "GET", "/api/vod/lessons/math-101", teacher, nil, &l); code != http.StatusOK || l.Playback != vod.PlaybackRawAudio {
		t.Fatalf("VP8 lesson: %d %+v", code, l)
	}
	code, master = s.get(t, l.HLS)
	if code != http.StatusOK || strings.Contains(string(master), "#EXT-X-MEDIA") || !strings.Contains(string(master), `CODECS="opus"`) {
		t.Fatalf("VP8 lesson's master: %d\n%s", code, master)
	}

	m.Tracks = nil
	transcodetest.PutJSON(t, store, vod.ManifestKey("math-101"), m)
	var empty vod.Lesson
	if code := s.do(t, "GET", "/api/vod/lessons/math-101", teacher, nil, &empty); code != http.StatusOK || empty.Playback != "" || empty.HLS != "" {
		t.Errorf("lesson with nothing recorded: %d %+v", code, empty)
	}
	if code := s.do(t, "GET", "/api/vod/raw/math-101/master.m3u8", teacher, nil, nil); code != http.StatusNotFound {
		t.Errorf("its raw master: %d, want 404", code)
	}
}
