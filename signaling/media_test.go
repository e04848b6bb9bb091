package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/ivfwriter"

	"podium/clients/goclient"
	"podium/internal/testenv"
	"podium/internal/testmedia"
	"podium/sfu"
)

// videoCapture writes received VP8 tracks to IVF files, one per
// (participant, source), so a test can decode what a user would see.
type videoCapture struct {
	t   *testing.T
	dir string

	mu      sync.Mutex
	packets map[string]*atomic.Int64 // by participantId/source
	files   map[string]string
	stop    chan struct{}
	wg      sync.WaitGroup
	stopped bool
}

func newVideoCapture(t *testing.T) *videoCapture {
	vc := &videoCapture{t: t, dir: t.TempDir(), packets: map[string]*atomic.Int64{}, files: map[string]string{}, stop: make(chan struct{})}
	t.Cleanup(vc.close)
	return vc
}

func (vc *videoCapture) close() {
	vc.mu.Lock()
	if !vc.stopped {
		vc.stopped = true
		close(vc.stop)
	}
	vc.mu.Unlock()
	vc.wg.Wait()
}

func key(info goclient.TrackInfo) string { return info.ParticipantID + "/" + info.Source }

// onTrack is a goclient OnTrack handler.
func (vc *videoCapture) onTrack(rt goclient.RemoteTrack) {
	if rt.Track.Kind() != webrtc.RTPCodecTypeVideo {
		go func() { // drain audio
			buf := make([]byte, 1500)
			for {
				if _, _, err := rt.Track.Read(buf); err != nil {
					return
				}
			}
		}()
		return
	}
	k := key(rt.Info)
	vc.mu.Lock()
	if vc.stopped {
		vc.mu.Unlock()
		return
	}
	n := vc.packets[k]
	if n == nil {
		n = &atomic.Int64{}
		vc.packets[k] = n
	}
	path := filepath.Join(vc.dir, strings.NewReplacer("/", "_").Replace(k)+"-"+strconv.Itoa(len(vc.files))+".ivf")
	vc.files[k] = path
	vc.wg.Add(1)
	vc.mu.Unlock()
	go func() {
		defer vc.wg.Done()
		w, err := ivfwriter.New(path, ivfwriter.WithCodec(rt.Track.Codec().MimeType))
		if err != nil {
			vc.t.Errorf("ivf: %v", err)
			return
		}
		defer w.Close()
		for {
			select {
			case <-vc.stop:
				return
			default:
			}
			_ = rt.Track.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			pkt, _, err := rt.Track.ReadRTP()
			if err != nil {
				if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "timeout") {
					continue
				}
				return
			}
			if err := w.WriteRTP(pkt); err == nil {
				n.Add(1)
			}
		}
	}()
}

// waitPackets waits until at least n video packets arrived for the key.
func (vc *videoCapture) waitPackets(k string, n int64) {
	vc.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		vc.mu.Lock()
		c := vc.packets[k]
		vc.mu.Unlock()
		if c != nil && c.Load() >= n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	vc.mu.Lock()
	keys := make([]string, 0)
	for k2, c := range vc.packets {
		keys = append(keys, k2+"="+strconv.FormatInt(c.Load(), 10))
	}
	vc.mu.Unlock()
	vc.t.Fatalf("fewer than %d video packets from %s within 20 s (have %v)", n, k, keys)
}

// decodedFrames stops capturing and counts the frames ffprobe decodes from
// the latest file of the key.
func (vc *videoCapture) decodedFrames(k string) int {
	vc.t.Helper()
	vc.close()
	vc.mu.Lock()
	path := vc.files[k]
	vc.mu.Unlock()
	return countFrames(vc.t, path)
}

func countFrames(t *testing.T, path string) int {
	t.Helper()
	ffprobe := testenv.RequireBinary(t, "ffprobe")
	out, err := exec.Command(ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v: %s", path, err, out)
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.Split(string(out), "\n")[0]))
	if err != nil {
		t.Fatalf("ffprobe output %q", out)
	}
	return n
}

// publishFile publishes a VP8 camera (and an Opus mic when opus != "")
// playing the files in a loop until the test ends.
func publishFile(t *testing.T, c *goclient.Client, ivf, opus string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	self := c.Self().ID
	cam, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "cam-"+self, "s-"+self)
	if err != nil {
		t.Fatal(err)
	}
	tracks := []goclient.LocalTrack{{Track: cam, Source: "camera"}}
	var mic *webrtc.TrackLocalStaticSample
	if opus != "" {
		mic, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "mic-"+self, "s-"+self)
		if err != nil {
			t.Fatal(err)
		}
		tracks = append(tracks, goclient.LocalTrack{Track: mic, Source: "microphone"})
	}
	pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
	defer pcancel()
	if err := c.Publish(pctx, tracks...); err != nil {
		t.Fatalf("publish: %v", err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = testmedia.PlayIVF(ctx, ivf, cam, true) }()
	if mic != nil {
		wg.Add(1)
		go func() { defer wg.Done(); _ = testmedia.PlayOgg(ctx, opus, mic, true) }()
	}
}

func TestLessonMediaFlow(t *testing.T) {
	files := testmedia.ForTest(t)
	testenv.RequireBinary(t, "ffprobe")
	ts := newTestServer(t)
	ctx := testCtx(t)

	teacher, _ := ts.join(t, "math", sfu.RoleTeacher, "Ms T", goclient.Options{})
	publishFile(t, teacher, files.VP8[1], files.Opus)
	tid := teacher.Self().ID

	type classroom struct {
		c   *goclient.Client
		cap *videoCapture
	}
	var rooms []classroom
	for _, name := range []string{"A", "B", "C"} {
		vc := newVideoCapture(t)
		c, _ := ts.join(t, "math", sfu.RoleClassroom, "School "+name, goclient.Options{OnTrack: vc.onTrack})
		rooms = append(rooms, classroom{c, vc})
	}
	for _, r := range rooms {
		r.cap.waitPackets(tid+"/camera", 150)
	}
	for i, r := range rooms {
		if n := r.cap.decodedFrames(tid + "/camera"); n < 10 {
			t.Fatalf("classroom %d decoded %d frames of the teacher's camera, want >= 10", i, n)
		}
	}

	// On stage: classroom A's camera goes to B and C.
	a := rooms[0].c
	publishFile(t, a, files.VP8[0], "")
	waitEvent(t, teacher, "trackPublished", func(d json.RawMessage) bool { return strings.Contains(string(d), a.Self().ID) })
	fresh := []*videoCapture{newVideoCapture(t), newVideoCapture(t)}
	// B and C reconnect with fresh captures so the stage track lands in them.
	for i, r := range rooms[1:] {
		_ = r.c.Close()
		c, _ := ts.join(t, "math", sfu.RoleClassroom, "School "+string(rune('B'+i)), goclient.Options{OnTrack: fresh[i].onTrack})
		rooms[i+1].c = c
	}
	if err := teacher.Stage(ctx, a.Self().ID); err != nil {
		t.Fatalf("stage: %v", err)
	}
	for i, vc := range fresh {
		vc.waitPackets(a.Self().ID+"/camera", 90)
		if n := vc.decodedFrames(a.Self().ID + "/camera"); n < 5 {
			t.Fatalf("classroom %c decoded %d frames of the on-stage camera", 'B'+i, n)
		}
	}

	// Raise hand and chat.
	b := rooms[1].c
	if err := b.RaiseHand(ctx, true); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, teacher, "participantUpdated", func(d json.RawMessage) bool {
		return strings.Contains(string(d), b.Self().ID) && strings.Contains(string(d), `"handRaised":true`)
	})
	if err := b.Chat(ctx, "question about fractions"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*goclient.Client{teacher, rooms[0].c, rooms[2].c} {
		waitEvent(t, c, "chat", func(d json.RawMessage) bool { return strings.Contains(string(d), "fractions") })
	}

	// End: everyone is told and every socket closes.
	if err := teacher.EndLesson(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*goclient.Client{teacher, rooms[0].c, rooms[1].c, rooms[2].c} {
		waitEvent(t, c, "lessonEnded", nil)
		select {
		case <-c.Done():
		case <-ctx.Done():
			t.Fatal("socket open after lessonEnded")
		}
	}
	if _, ok := ts.SFU.Rooms.Room("math"); ok {
		t.Fatal("lesson still live after endLesson")
	}
}

func TestReconnectingClassroomGetsMediaAgain(t *testing.T) {
	files := testmedia.ForTest(t)
	testenv.RequireBinary(t, "ffprobe")
	ts := newTestServer(t)
	teacher, _ := ts.join(t, "re", sfu.RoleTeacher, "T", goclient.Options{})
	publishFile(t, teacher, files.VP8[0], "")
	k := teacher.Self().ID + "/camera"

	first := newVideoCapture(t)
	c, _ := ts.join(t, "re", sfu.RoleClassroom, "A", goclient.Options{OnTrack: first.onTrack})
	first.waitPackets(k, 60)
	_ = c.Close() // the link drops

	second := newVideoCapture(t)
	ts.join(t, "re", sfu.RoleClassroom, "A", goclient.Options{OnTrack: second.onTrack})
	second.waitPackets(k, 90)
	if n := second.decodedFrames(k); n < 5 {
		t.Fatalf("decoded %d frames after reconnecting", n)
	}
}

func TestWHIPPublishWHEPWatch(t *testing.T) {
	files := testmedia.ForTest(t)
	testenv.RequireBinary(t, "ffprobe")
	ts := newTestServer(t)
	ctx := testCtx(t)
	api, err := goclient.NewAPI(true)
	if err != nil {
		t.Fatal(err)
	}
	cam, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "obs-video", "obs")
	mic, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "obs-audio", "obs")

	// A classroom token may not publish over WHIP; nothing is created.
	_, err = goclient.WHIPPublish(ctx, api, ts.URL, "studio", ts.token(t, "studio", sfu.RoleClassroom, "A"), cam, mic)
	var he *goclient.HTTPError
	if !errors.As(err, &he) || he.Status != 403 {
		t.Fatalf("classroom WHIP = %v, want 403", err)
	}
	if len(ts.SFU.Rooms.List()) != 0 {
		t.Fatal("refused WHIP created a lesson")
	}

	pub, err := goclient.WHIPPublish(ctx, api, ts.URL, "studio", ts.token(t, "studio", sfu.RoleTeacher, "OBS"), cam, mic)
	if err != nil {
		t.Fatalf("WHIP: %v", err)
	}
	pctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Add(2)
	go func() { defer wg.Done(); _ = testmedia.PlayIVF(pctx, files.VP8[0], cam, true) }()
	go func() { defer wg.Done(); _ = testmedia.PlayOgg(pctx, files.Opus, mic, true) }()

	// Wait for the tracks to be published, then watch.
	testenv.WaitFor(t, 20*time.Second, "the 2 WHIP tracks to be published", func() bool {
		room, ok := ts.SFU.Rooms.Room("studio")
		return ok && len(room.Tracks()) == 2
	})
	vc := newVideoCapture(t)
	watch, err := goclient.WHEPWatch(ctx, api, ts.URL, "studio", ts.token(t, "studio", sfu.RoleViewer, "V"), func(tr *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		vc.onTrack(goclient.RemoteTrack{Track: tr, Receiver: r, Info: goclient.TrackInfo{ParticipantID: "whep", Source: "camera"}})
	})
	if err != nil {
		t.Fatalf("WHEP: %v", err)
	}
	vc.waitPackets("whep/camera", 90)
	if n := vc.decodedFrames("whep/camera"); n < 5 {
		t.Fatalf("WHEP player decoded %d frames", n)
	}

	// One viewer token holds at most its cap of sessions: the next is
	// refused with 429, and closing one frees a slot.
	viewer := ts.token(t, "studio", sfu.RoleViewer, "V2")
	var extra []*goclient.HTTPSession
	for range DefaultMaxSessions()[sfu.RoleViewer] {
		w, err := goclient.WHEPWatch(ctx, api, ts.URL, "studio", viewer, nil)
		if err != nil {
			t.Fatalf("WHEP session %d of the cap: %v", len(extra)+1, err)
		}
		extra = append(extra, w)
	}
	_, err = goclient.WHEPWatch(ctx, api, ts.URL, "studio", viewer, nil)
	if !errors.As(err, &he) || he.Status != 429 || he.Code != "too_many_sessions" {
		t.Fatalf("WHEP over the token's cap = %v, want 429 too_many_sessions", err)
	}
	if err := extra[0].Close(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := goclient.WHEPWatch(ctx, api, ts.URL, "studio", viewer, nil)
	if err != nil {
		t.Fatalf("WHEP after closing one: %v", err)
	}
	for _, w := range append(extra[1:], again) {
		_ = w.Close(ctx)
	}

	// A player that offers no codec the lesson carries gets a 4xx saying
	// so, not a 500.
	h264Only := &webrtc.MediaEngine{}
	if err := h264Only.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
		PayloadType: 102}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	if err := h264Only.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	_, err = goclient.WHEPWatch(ctx, webrtc.NewAPI(webrtc.WithMediaEngine(h264Only)), ts.URL, "studio", ts.token(t, "studio", sfu.RoleViewer, "V3"), nil)
	if !errors.As(err, &he) || he.Status < 400 || he.Status >= 500 {
		t.Fatalf("WHEP offering only H.264 to a VP8 lesson = %v, want a 4xx", err)
	}

	if err := watch.Close(ctx); err != nil {
		t.Fatalf("WHEP DELETE: %v", err)
	}
	if err := watch.Close(ctx); err == nil {
		t.Fatal("second DELETE of the WHEP resource succeeded")
	}
	if err := pub.Close(ctx); err != nil {
		t.Fatalf("WHIP DELETE: %v", err)
	}
}

// frameWidths lists the width of every decoded frame of an IVF file.
func frameWidths(t *testing.T, path string) []int {
	t.Helper()
	ffprobe := testenv.RequireBinary(t, "ffprobe")
	out, err := exec.Command(ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=width", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v: %s", path, err, out)
	}
	var ws []int
	for _, l := range strings.Fields(string(out)) {
		if w, err := strconv.Atoi(strings.Trim(l, ",")); err == nil {
			ws = append(ws, w)
		}
	}
	return ws
}

// TestSimulcastPublishAndLayerCap: the Go client publishes three VP8
// layers; a classroom capping the camera at layer 0 ends up decoding the
// 320-pixel-wide layer.
func TestSimulcastPublishAndLayerCap(t *testing.T) {
	files := testmedia.ForTest(t)
	testenv.RequireBinary(t, "ffprobe")
	ts := newTestServer(t)
	ctx := testCtx(t)
	teacher, _ := ts.join(t, "sim", sfu.RoleTeacher, "T", goclient.Options{})

	vp8 := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	var layers []*webrtc.TrackLocalStaticSample
	for _, rid := range []string{"q", "h", "f"} {
		tr, err := webrtc.NewTrackLocalStaticSample(vp8, "cam", "teacher", webrtc.WithRTPStreamID(rid))
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, tr)
	}
	if err := teacher.Publish(ctx, goclient.LocalTrack{Track: layers[0], Source: "camera", Simulcast: []webrtc.TrackLocal{layers[1], layers[2]}}); err != nil {
		t.Fatalf("publish simulcast: %v", err)
	}
	pctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for i, l := range layers {
		wg.Add(1)
		go func() { defer wg.Done(); _ = testmedia.PlayIVF(pctx, files.VP8[i], l, true) }()
	}
	info := waitEvent(t, teacher, "trackPublished", nil)
	var tp TrackEventData
	_ = json.Unmarshal(info, &tp)
	if strings.Join(tp.Track.Layers, ",") != "q,h,f" {
		t.Fatalf("published layers %v, want q,h,f", tp.Track.Layers)
	}

	vc := newVideoCapture(t)
	cls, _ := ts.join(t, "sim", sfu.RoleClassroom, "A", goclient.Options{OnTrack: vc.onTrack})
	k := teacher.Self().ID + "/camera"
	vc.waitPackets(k, 30)
	if err := cls.SetMaxLayer(ctx, tp.Track.ID, 0); err != nil {
		t.Fatalf("setMaxLayer %s: %v", tp.Track.ID, err)
	}
	vc.waitPackets(k, 400) // well past the next keyframe
	vc.close()
	vc.mu.Lock()
	path := vc.files[k]
	vc.mu.Unlock()
	ws := frameWidths(t, path)
	if len(ws) < 10 || ws[len(ws)-1] != 320 {
		t.Fatalf("decoded frame widths end with %v, want 320 after capping at layer 0", ws[max(0, len(ws)-5):])
	}
}
