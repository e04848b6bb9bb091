package ingest

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"podium/internal/rtspcam"
	"podium/internal/testenv"
	"podium/sfu"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newTestManager(t *testing.T) (*Manager, *sfu.Rooms) {
	t.Helper()
	rooms := sfu.NewRooms(testLogger(t))
	m, err := New(Config{Rooms: rooms, Log: testLogger(t), Backoff: Backoff{Min: 200 * time.Millisecond, Max: time.Second}, ReadTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Close()
		rooms.EndAll("test over")
	})
	return m, rooms
}

func waitState(t *testing.T, m *Manager, lesson, id string, want State) SourceInfo {
	t.Helper()
	var info SourceInfo
	deadline := time.Now().Add(25 * time.Second)
	for {
		info, _ = m.Get(lesson, id)
		if info.State == want {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("source not %s: %+v", want, info)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustTrack(t *testing.T, m *Manager, lesson, id string, kind sfu.Kind) *sfu.Track {
	t.Helper()
	var tr *sfu.Track
	testenv.WaitFor(t, 25*time.Second, string(kind)+" track", func() bool {
		var ok bool
		tr, ok = m.Track(lesson, id, kind)
		return ok
	})
	return tr
}

// A camera sending H.264 + AAC joins the lesson as a source participant with
// a camera video track (H.264 forwarded, decodable by a late subscriber) and
// an Opus audio track (AAC transcoded by ffmpeg).
func TestH264AndAACSourceJoinsLesson(t *testing.T) {
	cam := rtspcam.Start(t, rtspcam.Options{Audio: true})
	m, rooms := newTestManager(t)
	info, err := m.Add("math-1", SourceConfig{URL: cam.URL("", ""), Kind: KindWhiteboard, Name: "Board", Transport: TransportTCP})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, m, "math-1", info.ID, StateLive)

	video := mustTrack(t, m, "math-1", info.ID, sfu.KindVideo)
	vs := &videoSink{}
	video.AddSink("test", vs)
	audio := mustTrack(t, m, "math-1", info.ID, sfu.KindAudio)
	as, oggPath := newAudioSink(t)
	audio.AddSink("test", as)

	testenv.WaitFor(t, 25*time.Second, "75 video frames", func() bool { f, _, _, _ := vs.snapshot(); return f >= 75 })
	testenv.WaitFor(t, 25*time.Second, "150 audio packets", func() bool { return as.count() >= 150 })
	video.RemoveSink("test")
	audio.RemoveSink("test")
	as.close()

	frames, idrs, annexB, violations := vs.snapshot()
	if len(violations) > 0 {
		t.Fatalf("output contract violated: %v", violations[:min(5, len(violations))])
	}
	if idrs < 1 {
		t.Fatalf("no keyframe received")
	}
	if got := decodedFrames(t, annexB); got < frames-1 {
		t.Fatalf("ffprobe decoded %d of %d pictures", got, frames)
	}
	if secs := decodedAudioSeconds(t, oggPath); secs < 2 {
		t.Fatalf("decoded %.2f s of audio, want >= 2", secs)
	}

	room, ok := rooms.Room("math-1")
	if !ok {
		t.Fatal("lesson not created")
	}
	p, ok := room.Participant(info.ID)
	if !ok || p.Role != sfu.RoleSource || p.Name != "Board" {
		t.Fatalf("source participant = %+v, %v", p, ok)
	}
	vi := video.Info()
	if vi.Source != sfu.SourceWhiteboard || vi.Codec != h264Codec || vi.Name != "Board" || vi.ParticipantID != info.ID {
		t.Fatalf("video track info = %+v", vi)
	}
	if ai := audio.Info(); ai.Codec != opusCodec || ai.Kind != sfu.KindAudio {
		t.Fatalf("audio track info = %+v", ai)
	}
	got, _ := m.Get("math-1", info.ID)
	if got.Video != "h264" || got.Audio != "mpeg-4 audio transcoded to opus" {
		t.Fatalf("media description = %q / %q", got.Video, got.Audio)
	}
}

// Killing the camera and starting it again resumes the same tracks:
// subscribers keep one SSRC and gapless sequence numbers, and the stream
// stays decodable across the restart.
func TestCameraRestartResumes(t *testing.T) {
	cam := rtspcam.Start(t, rtspcam.Options{UDP: true})
	m, _ := newTestManager(t)
	info, err := m.Add("restart", SourceConfig{URL: cam.URL("", ""), Transport: TransportUDP})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, m, "restart", info.ID, StateLive)
	video := mustTrack(t, m, "restart", info.ID, sfu.KindVideo)
	vs := &videoSink{}
	video.AddSink("test", vs)
	testenv.WaitFor(t, 25*time.Second, "frames before the restart", func() bool { f, _, _, _ := vs.snapshot(); return f >= 25 })

	cam.Stop()
	retrying := waitState(t, m, "restart", info.ID, StateRetrying)
	if retrying.LastError == "" {
		t.Fatal("retrying without an error")
	}
	before, idrsBefore, _, _ := vs.snapshot()
	cam.Start()
	waitState(t, m, "restart", info.ID, StateLive)
	testenv.WaitFor(t, 25*time.Second, "frames after the restart", func() bool {
		f, idrs, _, _ := vs.snapshot()
		return f >= before+50 && idrs > idrsBefore
	})
	video.RemoveSink("test")

	frames, _, annexB, violations := vs.snapshot()
	if len(violations) > 0 {
		t.Fatalf("output contract violated across restart: %v", violations[:min(5, len(violations))])
	}
	if got := decodedFrames(t, annexB); got < frames-2 {
		t.Fatalf("ffprobe decoded %d of %d pictures across the restart", got, frames)
	}
	if now, _ := m.Get("restart", info.ID); now.Reconnects < 1 {
		t.Fatalf("reconnects = %d", now.Reconnects)
	}
	if tr, _ := m.Track("restart", info.ID, sfu.KindVideo); tr != video {
		t.Fatal("the video track was replaced: subscribers would lose it")
	}
}

// Wrong credentials give a clear error on the source, never echoing the
// password; right ones (digest or basic, chosen by the camera) work.
func TestCredentials(t *testing.T) {
	cam := rtspcam.Start(t, rtspcam.Options{User: "admin", Pass: "s3cret-pw"})
	m, _ := newTestManager(t)
	bad, err := m.Add("creds", SourceConfig{URL: cam.URL("admin", "wrong-pw-123"), Transport: TransportTCP})
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 25*time.Second, "authentication error", func() bool {
		info, _ := m.Get("creds", bad.ID)
		return info.State == StateRetrying && strings.Contains(info.LastError, "authentication failed")
	})
	info, _ := m.Get("creds", bad.ID)
	js, _ := json.Marshal(info)
	if strings.Contains(string(js), "wrong-pw-123") {
		t.Fatalf("password leaked: %s", js)
	}
	if !strings.Contains(info.URL, "redacted") {
		t.Fatalf("url not redacted: %s", info.URL)
	}

	good, err := m.Add("creds", SourceConfig{URL: cam.URL("admin", "s3cret-pw")})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, m, "creds", good.ID, StateLive)
}

// Cameras whose codec WebRTC cannot carry, H.265 and MJPEG (RFC 2435 JPEG
// over RTP), are transcoded to H.264 by ffmpeg, and the result decodes.
func TestTranscodedVideo(t *testing.T) {
	for _, tc := range []struct{ codec, label string }{
		{"h265", "h265 transcoded to h264"},
		{"mjpeg", "m-jpeg transcoded to h264"},
	} {
		t.Run(tc.codec, func(t *testing.T) {
			cam := rtspcam.Start(t, rtspcam.Options{Codec: tc.codec})
			m, _ := newTestManager(t)
			info, err := m.Add(tc.codec, SourceConfig{URL: cam.URL("", ""), Transport: TransportTCP})
			if err != nil {
				t.Fatal(err)
			}
			waitState(t, m, tc.codec, info.ID, StateLive)
			video := mustTrack(t, m, tc.codec, info.ID, sfu.KindVideo)
			vs := &videoSink{}
			video.AddSink("test", vs)
			testenv.WaitFor(t, 25*time.Second, "50 transcoded frames", func() bool { f, _, _, _ := vs.snapshot(); return f >= 50 })
			video.RemoveSink("test")
			frames, idrs, annexB, violations := vs.snapshot()
			if len(violations) > 0 {
				t.Fatalf("output contract violated: %v", violations[:min(5, len(violations))])
			}
			if idrs < 1 {
				t.Fatal("no keyframe received")
			}
			if got := decodedFrames(t, annexB); got < frames-1 {
				t.Fatalf("ffprobe decoded %d of %d pictures", got, frames)
			}
			if got, _ := m.Get(tc.codec, info.ID); got.Video != tc.label {
				t.Fatalf("video = %q, want %q", got.Video, tc.label)
			}
		})
	}
}

// The admin API registers, shows, lists and removes sources, never showing
// credentials; /metrics shows each source's state.
func TestAPIAndMetrics(t *testing.T) {
	m, rooms := newTestManager(t)
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)

	post := func(body string) (*http.Response, map[string]any) {
		resp, err := http.Post(srv.URL+"/api/lessons/bio-2/sources", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		raw, _ := io.ReadAll(resp.Body)
		if strings.Contains(string(raw), "hunter22") {
			t.Fatalf("password in response: %s", raw)
		}
		_ = json.Unmarshal(raw, &v)
		return resp, v
	}
	for _, bad := range []string{
		`{"url":"http://cam/x"}`,
		`{"url":"rtsp://u:hunter22@cam/x","kind":"tv"}`,
		`{"url":"rtsp://u:hunter22@cam/x","transport":"sctp"}`,
		`{"url":"rtsp://u:hunter22@cam/x", "bogus": 1}`,
		`not json hunter22`,
	} {
		resp, v := post(bad)
		if resp.StatusCode != http.StatusBadRequest || v["code"] == nil || v["error"] == nil {
			t.Fatalf("%s: status %d body %v", bad, resp.StatusCode, v)
		}
	}
	// A camera that is not there: the source keeps retrying.
	resp, v := post(`{"url":"rtsp://u:hunter22@127.0.0.1:1/x","kind":"camera","name":"Back wall"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d: %v", resp.StatusCode, v)
	}
	id, _ := v["id"].(string)
	if v["url"] != "rtsp://redacted:redacted@127.0.0.1:1/x" || v["name"] != "Back wall" || v["kind"] != "camera" || v["transport"] != "auto" {
		t.Fatalf("created = %v", v)
	}
	if _, ok := rooms.Room("bio-2"); !ok {
		t.Fatal("registering a source did not create the lesson")
	}
	waitState(t, m, "bio-2", id, StateRetrying)

	reg := prometheus.NewRegistry()
	reg.MustRegister(m.Collector())
	want := `
# HELP podium_ingest_sources Registered RTSP sources by state.
# TYPE podium_ingest_sources gauge
podium_ingest_sources{state="connecting"} 0
podium_ingest_sources{state="live"} 0
podium_ingest_sources{state="retrying"} 1
podium_ingest_sources{state="stopped"} 0
`
	testenv.WaitFor(t, 25*time.Second, "metrics to show the retrying source", func() bool {
		return testutil.GatherAndCompare(reg, strings.NewReader(want), "podium_ingest_sources") == nil
	})
	assertNoIDLabels(t, reg, "bio-2", id)

	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	if code, body := get("/api/lessons/bio-2/sources"); code != 200 || !strings.Contains(body, id) || strings.Contains(body, "hunter22") {
		t.Fatalf("list: %d %s", code, body)
	}
	if code, body := get("/api/lessons/bio-2/sources/" + id); code != 200 || !strings.Contains(body, `"state":"retrying"`) || !strings.Contains(body, "lastError") {
		t.Fatalf("get: %d %s", code, body)
	}
	if code, _ := get("/api/lessons/other/sources/" + id); code != 404 {
		t.Fatalf("source visible from another lesson: %d", code)
	}
	req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/api/lessons/bio-2/sources/"+id, nil)
	dresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	dresp.Body.Close()
	if dresp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", dresp.StatusCode)
	}
	if code, _ := get("/api/lessons/bio-2/sources/" + id); code != 404 {
		t.Fatalf("after delete: %d", code)
	}
	room, _ := rooms.Room("bio-2")
	if _, ok := room.Participant(id); ok {
		t.Fatal("removed source still in the lesson")
	}
}

// Ending the lesson stops its sources; the server stays up.
func TestLessonEndStopsSource(t *testing.T) {
	m, rooms := newTestManager(t)
	info, err := m.Add("short", SourceConfig{URL: "rtsp://127.0.0.1:1/x"})
	if err != nil {
		t.Fatal(err)
	}
	room, _ := rooms.Room("short")
	room.End("bell rang")
	got := waitState(t, m, "short", info.ID, StateStopped)
	if !strings.Contains(got.LastError, "lesson ended") {
		t.Fatalf("last error = %q", got.LastError)
	}
}

func testLoggerTB() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
