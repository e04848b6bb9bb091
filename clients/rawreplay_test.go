package clients

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"podium/internal/testenv"
)

// TestBrowserTeachersLessonPlaysAtOnce: a teacher in Chromium teaches a
// few seconds and ends the lesson. The camera went out as H.264, so the
// recording itself plays as HLS at once — picture and sound — before any
// transcode (browsers cannot play VP8 from fMP4, so with the browser's
// default codec the replay was the voice alone until the transcode).
func TestBrowserTeachersLessonPlaysAtOnce(t *testing.T) {
	ffprobe := testenv.RequireBinary(t, "ffprobe")
	browser := testenv.StartChromium(t)
	node := testenv.StartPodium(t, "--vod-transcode=false") // the recording itself, not a transcode
	const room = "h264-at-once"
	token := node.Token(room, "teacher", "Ms Rivera")
	teacher := openPage(t, browser, "teacher", node.URL+"/teacher#token="+token)
	teacher.waitState(t, "ready")
	goLive(t, teacher)

	var codec string
	teacher.waitUntil(t, "the camera sent as H.264", func() (bool, string) {
		_ = teacher.eval(`(async () => {
			const st = await window.podium.session.pub.getStats();
			const codecs = {}; st.forEach((r) => { if (r.type === 'codec') codecs[r.id] = r.mimeType; });
			let out = ''; st.forEach((r) => { if (r.type === 'outbound-rtp' && r.kind === 'video' && r.bytesSent > 0) out = codecs[r.codecId] || out; });
			return out;
		})()`, &codec)
		return strings.EqualFold(codec, "video/H264"), codec
	})
	time.Sleep(8 * time.Second) // the lesson
	teacher.do(t, `window.podium.endLesson()`)

	lesson := func() (playback, hls string) {
		req, _ := http.NewRequest("GET", node.URL+"/api/vod/lessons/"+room, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", ""
		}
		defer resp.Body.Close()
		var l struct{ Playback, HLS string }
		_ = json.NewDecoder(resp.Body).Decode(&l)
		return l.Playback, l.HLS
	}
	var hls string
	testenv.WaitFor(t, 60*time.Second, "the ended lesson's raw replay with its picture", func() bool {
		var pb string
		pb, hls = lesson()
		return pb == "raw" && hls != ""
	})
	out, err := exec.Command(ffprobe, "-v", "error", "-show_entries", "stream=codec_type,codec_name", "-of", "csv=p=0",
		node.URL+hls).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe the raw replay: %v: %s", err, out)
	}
	streams := strings.Fields(string(out))
	if !strings.Contains(string(out), "h264,video") || !strings.Contains(string(out), "opus,audio") {
		t.Fatalf("the raw replay has streams %v, want H.264 video and Opus audio", streams)
	}
	t.Logf("the browser teacher's camera went out as %s; the ended lesson plays at once: %v", codec, streams)
}
