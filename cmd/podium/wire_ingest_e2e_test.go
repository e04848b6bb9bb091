package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/h264writer"

	"podium/clients/goclient"
	"podium/internal/rtspcam"
	"podium/internal/testenv"
)

// h264Capture writes one received H.264 track to an Annex-B file.
type h264Capture struct {
	path    string
	mu      sync.Mutex
	w       *h264writer.H264Writer
	packets atomic.Int64
	wg      sync.WaitGroup
}

func (v *h264Capture) onTrack(trackID string) func(goclient.RemoteTrack) {
	return func(rt goclient.RemoteTrack) {
		if rt.Track.Kind() != webrtc.RTPCodecTypeVideo || rt.Track.ID() != trackID {
			return
		}
		v.wg.Go(func() {
			for {
				pkt, _, err := rt.Track.ReadRTP()
				if err != nil {
					return
				}
				v.mu.Lock()
				if v.w != nil && v.w.WriteRTP(pkt) == nil {
					v.packets.Add(1)
				}
				v.mu.Unlock()
			}
		})
	}
}

// close stops writing and returns the file's path.
func (v *h264Capture) close(t *testing.T) string {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.w != nil {
		if err := v.w.Close(); err != nil {
			t.Fatal(err)
		}
		v.w = nil
	}
	return v.path
}

// sourceInfo is the part of the source API's SourceInfo the test reads.
type sourceInfo struct {
	ID        string   `json:"id"`
	State     string   `json:"state"`
	LastError string   `json:"lastError"`
	Video     string   `json:"video"`
	Tracks    []string `json:"tracks"`
}

// TestIngestE2E runs the real podium binary, registers an RTSP camera as a
// lesson source through the admin API, and checks a pion classroom
// decodes its H.264 video through the server; removing the source
// unpublishes its track.
func TestIngestE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("starts podium, an RTSP camera and ffmpeg")
	}
	testenv.RequireBinary(t, "ffmpeg")
	ffprobe := testenv.RequireBinary(t, "ffprobe")
	p := testenv.StartPodium(t)
	const lesson = "rtsp-e2e"
	admin := p.Token("*", "admin", "ops")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)

	api := func(method, path string, body string) (int, []byte) {
		t.Helper()
		var r io.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, p.URL+path, r)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+admin)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}

	// The teacher opens the lesson.
	teacher, err := goclient.Dial(ctx, p.URL, p.Token(lesson, "teacher", "Ms. Okafor"), goclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { teacher.Close() })
	if _, err := teacher.Join(ctx, false); err != nil {
		t.Fatal(err)
	}

	// Register the camera.
	cam := rtspcam.Start(t, rtspcam.Options{Size: "640x360"})
	code, b := api("POST", "/api/lessons/"+lesson+"/sources",
		`{"url":"`+cam.URL("", "")+`","kind":"camera","name":"Lab camera","transport":"tcp"}`)
	if code != http.StatusCreated {
		t.Fatalf("add source: %d %s", code, b)
	}
	var src sourceInfo
	if err := json.Unmarshal(b, &src); err != nil || src.ID == "" {
		t.Fatalf("add source reply %s: %v", b, err)
	}
	sourcePath := "/api/lessons/" + lesson + "/sources/" + src.ID
	removed := false
	t.Cleanup(func() {
		if !removed {
			api("DELETE", sourcePath, "")
		}
	})
	testenv.WaitFor(t, 20*time.Second, "the source to go live", func() bool {
		code, b := api("GET", sourcePath, "")
		if code != http.StatusOK || json.Unmarshal(b, &src) != nil {
			return false
		}
		return src.State == "live" && len(src.Tracks) > 0
	})
	t.Logf("source %s live: video %q tracks %v", src.ID, src.Video, src.Tracks)

	// The source shows in the metrics.
	testenv.WaitFor(t, 20*time.Second, "podium_ingest_sources{state=\"live\"} 1 in /metrics", func() bool {
		res, err := http.Get(p.URL + "/metrics")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return strings.Contains(string(b), "\npodium_ingest_sources{state=\"live\"} 1\n")
	})

	// A classroom joins and subscribes to the source's video.
	isSource := func(id string) bool {
		for _, s := range src.Tracks {
			if s == id {
				return true
			}
		}
		return false
	}
	capture := &h264Capture{path: filepath.Join(t.TempDir(), "source.h264")}
	if capture.w, err = h264writer.New(capture.path); err != nil {
		t.Fatal(err)
	}
	var videoID atomic.Value // string
	videoID.Store("")
	var onTrack atomic.Value // func(goclient.RemoteTrack)
	classroom, err := goclient.Dial(ctx, p.URL, p.Token(lesson, "classroom", "Hill school"), goclient.Options{
		OnTrack: func(rt goclient.RemoteTrack) {
			if fn, ok := onTrack.Load().(func(goclient.RemoteTrack)); ok {
				fn(rt)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		classroom.Close()
		capture.wg.Wait()
	})
	joined, err := classroom.Join(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range joined.Tracks {
		if tr.Kind == "video" && isSource(tr.ID) {
			videoID.Store(tr.ID)
		}
	}
	id := videoID.Load().(string)
	if id == "" {
		t.Fatalf("joined lists no video track of the source (source tracks %v, joined tracks %+v)", src.Tracks, joined.Tracks)
	}
	onTrack.Store(capture.onTrack(id))
	if err := classroom.Subscribe(ctx, id); err != nil {
		t.Fatalf("subscribe %s: %v", id, err)
	}
	// About 3 s of video: at 25 fps that is ~75 pictures, many RTP packets each.
	testenv.WaitFor(t, 20*time.Second, "the first video packets", func() bool { return capture.packets.Load() > 0 })
	start := time.Now()
	testenv.WaitFor(t, 20*time.Second, "3 s of video", func() bool { return time.Since(start) >= 3*time.Second })
	path := capture.close(t)

	out, err := exec.Command(ffprobe, "-v", "error", "-f", "h264", "-select_streams", "v:0",
		"-show_entries", "frame=width,height", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	lines := strings.Fields(strings.TrimSpace(string(out)))
	if len(lines) < 20 {
		t.Fatalf("ffprobe decoded %d frames of the source's video (%d packets received), want >= 20", len(lines), capture.packets.Load())
	}
	for _, l := range lines {
		if l != "640,360" {
			t.Fatalf("decoded frame size %q, want 640,360", l)
		}
	}
	t.Logf("classroom decoded %d frames at 640x360 from %d packets", len(lines), capture.packets.Load())

	// Removing the source unpublishes its track.
	if code, b := api("DELETE", sourcePath, ""); code != http.StatusNoContent {
		t.Fatalf("remove source: %d %s", code, b)
	}
	removed = true
	deadline := time.After(20 * time.Second)
	for gone := false; !gone; {
		select {
		case m := <-classroom.Events():
			if m.Type != "trackUnpublished" {
				continue
			}
			var d struct{ Track goclient.TrackInfo }
			if json.Unmarshal(m.Data, &d) == nil && d.Track.ID == id {
				gone = true
			}
		case <-classroom.Done():
			t.Fatal("classroom connection closed before trackUnpublished")
		case <-deadline:
			t.Fatalf("no trackUnpublished for %s within 20 s of removing the source", id)
		}
	}
	if code, b := api("GET", sourcePath, ""); code != http.StatusNotFound {
		t.Fatalf("removed source still served: %d %s", code, b)
	}
}
