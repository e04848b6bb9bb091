package cascade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/ivfwriter"
	"github.com/prometheus/client_golang/prometheus"

	"podium/internal/testenv"
	"podium/internal/testmedia"
	"podium/sfu"
)

const testKey = "cluster-test-key"

func loopbackConfig() Config {
	return Config{Key: testKey, IncludeLoopback: true, IPFilter: func(ip net.IP) bool { return ip.IsLoopback() }}
}

// rtpFeeder packetizes a publisher's samples into an sfu.Track layer, the
// way a browser's RTP reaches the origin.
type rtpFeeder struct {
	track *sfu.Track
	layer int
	clock uint32
	p     rtp.Packetizer
}

func newFeeder(track *sfu.Track, layer int, payloader rtp.Payloader, pt uint8, clock uint32) *rtpFeeder {
	return &rtpFeeder{track: track, layer: layer, clock: clock,
		p: rtp.NewPacketizer(1200, pt, uint32(1000+layer), payloader, rtp.NewRandomSequencer(), clock)}
}

func (f *rtpFeeder) WriteSample(s media.Sample) error {
	for _, pkt := range f.p.Packetize(s.Data, uint32(s.Duration.Seconds()*float64(f.clock))) {
		f.track.WriteRTP(f.layer, pkt)
	}
	return nil
}

// ivfSink writes one layer of an edge track to an IVF file, so ffmpeg can
// say whether what the edge received decodes.
type ivfSink struct {
	layer int
	mu    sync.Mutex
	w     *ivfwriter.IVFWriter
	// frames counts packets ending a frame (marker bit).
	frames atomic.Int64
}

func (s *ivfSink) WriteRTP(layer int, pkt *rtp.Packet) {
	if layer != s.layer {
		return
	}
	if pkt.Marker {
		s.frames.Add(1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w != nil {
		_ = s.w.WriteRTP(pkt)
	}
}

func (s *ivfSink) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.w.Close()
	s.w = nil
	return err
}

type countSink struct{ pkts atomic.Int64 }

func (c *countSink) WriteRTP(int, *rtp.Packet) { c.pkts.Add(1) }

// TestEdgeMirrorsTeacherTracksDecodably runs an origin and an edge over
// loopback: the teacher's three-layer VP8 camera and Opus microphone,
// published on the origin, appear on the edge as tracks whose every layer
// decodes with ffmpeg at its own resolution; a keyframe request on the
// edge reaches the publisher on the origin; a classroom's own track is not
// relayed; and stopping cleans up both sides.
func TestEdgeMirrorsTeacherTracksDecodably(t *testing.T) {
	files := testmedia.ForTest(t)
	ffprobe := testenv.RequireBinary(t, "ffprobe")

	// Origin node: a lesson with a teacher publishing simulcast VP8 + Opus.
	originRooms := sfu.NewRooms(nil)
	room, err := originRooms.CreateRoom(sfu.LessonInfo{ID: "math-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer room.End("test over")
	teacher := sfu.ParticipantInfo{ID: "teacher-1", Name: "Ms. Li", Role: sfu.RoleTeacher}
	classroom := sfu.ParticipantInfo{ID: "class-a", Name: "Village A", Role: sfu.RoleClassroom}
	for _, p := range []sfu.ParticipantInfo{teacher, classroom} {
		if err := room.AddParticipant(p); err != nil {
			t.Fatal(err)
		}
	}
	var keyframeRequests [3]atomic.Int64
	cam := sfu.NewTrack(sfu.TrackInfo{ID: "cam", ParticipantID: teacher.ID, Kind: sfu.KindVideo, Source: sfu.SourceCamera,
		Codec: sfu.Codec{MimeType: "video/VP8", ClockRate: 90000}, Layers: []string{"q", "h", "f"}},
		func(layer int) { keyframeRequests[layer].Add(1) })
	mic := sfu.NewTrack(sfu.TrackInfo{ID: "mic", ParticipantID: teacher.ID, Kind: sfu.KindAudio, Source: sfu.SourceMicrophone,
		Codec: sfu.Codec{MimeType: "audio/opus", ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}}, nil)
	classCam := sfu.NewTrack(sfu.TrackInfo{ID: "class-cam", ParticipantID: classroom.ID, Kind: sfu.KindVideo, Source: sfu.SourceCamera,
		Codec: sfu.Codec{MimeType: "video/VP8", ClockRate: 90000}}, nil)
	for _, tr := range []*sfu.Track{cam, mic, classCam} {
		if err := room.Publish(tr); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var players sync.WaitGroup
	defer func() { cancel(); players.Wait() }()
	for layer, path := range files.VP8 {
		players.Go(func() {
			_ = testmedia.PlayIVF(ctx, path, newFeeder(cam, layer, &codecs.VP8Payloader{}, 96, 90000), true)
		})
	}
	players.Go(func() {
		_ = testmedia.PlayOgg(ctx, files.Opus, newFeeder(mic, 0, &codecs.OpusPayloader{}, 111, 48000), true)
	})

	origin, _, err := New(originRooms, loopbackConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(origin.Handler())
	defer func() { srv.Close(); origin.Close() }()

	// Edge node: the same lesson, mirrored.
	edgeRooms := sfu.NewRooms(nil)
	edgeRoom, err := edgeRooms.CreateRoom(sfu.LessonInfo{ID: "math-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer edgeRoom.End("test over")
	_, edge, err := New(sfu.NewRooms(nil), loopbackConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	edge.Poll = 100 * time.Millisecond
	edge.IdleTimeout = 0 // the edge room has no classroom of its own here
	mirrorCtx, stopMirror := context.WithCancel(ctx)
	mirrorDone := make(chan error, 1)
	go func() { mirrorDone <- edge.Mirror(mirrorCtx, srv.URL, edgeRoom) }()
	defer func() {
		stopMirror()
		<-mirrorDone
	}()

	testenv.WaitFor(t, 20*time.Second, "the edge to publish cam and mic", func() bool {
		_, okCam := edgeRoom.Track("cam")
		_, okMic := edgeRoom.Track("mic")
		return okCam && okMic
	})
	if p, ok := edgeRoom.Participant(teacher.ID); !ok || p.Role != sfu.RoleTeacher || p.Name != teacher.Name {
		t.Fatalf("edge participant for the teacher: %+v %v", p, ok)
	}
	if _, ok := edgeRoom.Track("class-cam"); ok {
		t.Fatal("a classroom's track was relayed to the edge")
	}
	if _, ok := edgeRoom.Participant(classroom.ID); ok {
		t.Fatal("a classroom was mirrored to the edge")
	}
	edgeCam, _ := edgeRoom.Track("cam")
	edgeMic, _ := edgeRoom.Track("mic")
	if got := edgeCam.Info(); len(got.Layers) != 3 || got.Codec.MimeType != "video/VP8" || got.Source != sfu.SourceCamera {
		t.Fatalf("edge cam info %+v", got)
	}

	// An edge subscriber per layer writes what it receives to IVF.
	dir := t.TempDir()
	sinks := make([]*ivfSink, 3)
	for layer := range sinks {
		w, err := ivfwriter.New(filepath.Join(dir, edgeCam.Info().Layers[layer]+".ivf"), ivfwriter.WithCodec("video/VP8"))
		if err != nil {
			t.Fatal(err)
		}
		sinks[layer] = &ivfSink{layer: layer, w: w}
		edgeCam.AddSink("ivf-"+edgeCam.Info().Layers[layer], sinks[layer])
	}
	audio := &countSink{}
	edgeMic.AddSink("count", audio)

	// A keyframe request on the edge reaches the teacher's publisher.
	before := keyframeRequests[1].Load()
	testenv.WaitFor(t, 20*time.Second, "an edge keyframe request on layer h to reach the origin publisher", func() bool {
		edgeCam.RequestKeyframe(1)
		return keyframeRequests[1].Load() > before
	})

	// About three seconds of media: three keyframes at one per second.
	testenv.WaitFor(t, 20*time.Second, "three seconds of every layer on the edge", func() bool {
		for _, s := range sinks {
			if s.frames.Load() < 90 {
				return false
			}
		}
		return audio.pkts.Load() >= 150
	})
	for layer, s := range sinks {
		edgeCam.RemoveSink("ivf-" + edgeCam.Info().Layers[layer])
		if err := s.close(); err != nil {
			t.Fatal(err)
		}
	}
	for layer, want := range []struct{ w, h int }{{320, 180}, {640, 360}, {1280, 720}} {
		path := filepath.Join(dir, edgeCam.Info().Layers[layer]+".ivf")
		// Decode every frame; each decoded picture reports its size.
		out, err := exec.Command(ffprobe, "-v", "error", "-select_streams", "v:0",
			"-show_entries", "frame=width,height", "-of", "csv=p=0", path).CombinedOutput()
		if err != nil {
			t.Fatalf("ffprobe layer %d: %v\n%s", layer, err, out)
		}
		lines := strings.Fields(strings.TrimSpace(string(out)))
		wantLine := fmt.Sprintf("%d,%d", want.w, want.h)
		for _, l := range lines {
			if l != wantLine {
				t.Fatalf("layer %d on the edge decoded a %s picture, want %s (ffprobe: %.200s)", layer, l, wantLine, out)
			}
		}
		if len(lines) < 60 {
			t.Errorf("layer %d on the edge: %d decoded frames, want at least 60", layer, len(lines))
		}
	}

	// The teacher stops the microphone: the edge unpublishes it.
	room.Unpublish("mic")
	testenv.WaitFor(t, 20*time.Second, "the edge to unpublish mic", func() bool {
		_, ok := edgeRoom.Track("mic")
		return !ok
	})
	testenv.WaitFor(t, 20*time.Second, "the origin to drop the mic relay", func() bool { return mic.SinkCount() == 0 })

	// Stopping the mirror unpublishes everything on the edge and ends the
	// origin's relays.
	stopMirror()
	if err := <-mirrorDone; err != nil {
		t.Fatalf("mirror: %v", err)
	}
	mirrorDone <- nil // for the deferred receive
	if n := len(edgeRoom.Tracks()); n != 0 {
		t.Errorf("edge still has %d tracks after the mirror stopped", n)
	}
	if _, ok := edgeRoom.Participant(teacher.ID); ok {
		t.Error("edge still shows the teacher after the mirror stopped")
	}
	testenv.WaitFor(t, 20*time.Second, "the origin to drop the cam relay", func() bool { return cam.SinkCount() == 0 })
}

func TestOriginRefusesWithoutKeyAndBadInput(t *testing.T) {
	rooms := sfu.NewRooms(nil)
	room, err := rooms.CreateRoom(sfu.LessonInfo{ID: "bio"})
	if err != nil {
		t.Fatal(err)
	}
	defer room.End("test over")
	if err := room.AddParticipant(sfu.ParticipantInfo{ID: "t", Role: sfu.RoleTeacher}); err != nil {
		t.Fatal(err)
	}
	cam := sfu.NewTrack(sfu.TrackInfo{ID: "cam", ParticipantID: "t", Kind: sfu.KindVideo, Codec: sfu.Codec{MimeType: "video/VP8", ClockRate: 90000}}, nil)
	if err := room.Publish(cam); err != nil {
		t.Fatal(err)
	}
	origin, _, err := New(rooms, loopbackConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(origin.Handler())
	defer func() { srv.Close(); origin.Close() }()

	for _, tc := range []struct {
		name, method, path, key, body string
		status                        int
		code                          string
	}{
		{"no key", "GET", "bio", "", "", 401, "unauthorized"},
		{"wrong key", "GET", "bio", "nope", "", 401, "unauthorized"},
		{"unknown lesson", "GET", "chem", testKey, "", 404, "not_found"},
		{"unknown track", "POST", "bio/tracks/nope", testKey, `{"sdp":"x"}`, 404, "not_found"},
		{"no sdp", "POST", "bio/tracks/cam", testKey, `{}`, 400, "bad_request"},
		{"not json", "POST", "bio/tracks/cam", testKey, `v=0`, 400, "bad_request"},
		{"garbage sdp", "POST", "bio/tracks/cam", testKey, `{"sdp":"v=0\r\nbroken"}`, 400, "bad_sdp"},
		{"unknown session", "DELETE", "bio/sessions/abc", testKey, "", 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+PathPrefix+tc.path, stringsReader(tc.body))
			if tc.key != "" {
				req.Header.Set("Authorization", "Bearer "+tc.key)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var e struct{ Error, Code string }
			json.NewDecoder(res.Body).Decode(&e)
			if res.StatusCode != tc.status || e.Code != tc.code || e.Error == "" {
				t.Fatalf("got %d %+v, want %d %s", res.StatusCode, e, tc.status, tc.code)
			}
		})
	}
	if cam.SinkCount() != 0 {
		t.Fatal("a refused request left a relay attached")
	}
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

// startOrigin serves a lesson with a teacher publishing one silent track.
func startOrigin(t *testing.T, lesson string) (*sfu.Room, string) {
	t.Helper()
	rooms := sfu.NewRooms(nil)
	room, err := rooms.CreateRoom(sfu.LessonInfo{ID: lesson})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { room.End("test over") })
	if err := room.AddParticipant(sfu.ParticipantInfo{ID: "t", Role: sfu.RoleTeacher}); err != nil {
		t.Fatal(err)
	}
	cam := sfu.NewTrack(sfu.TrackInfo{ID: "cam", ParticipantID: "t", Kind: sfu.KindVideo, Codec: sfu.Codec{MimeType: "video/VP8", ClockRate: 90000}}, nil)
	if err := room.Publish(cam); err != nil {
		t.Fatal(err)
	}
	origin, _, err := New(rooms, loopbackConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(origin.Handler())
	t.Cleanup(func() { srv.Close(); origin.Close() })
	return room, srv.URL
}

func TestMirrorEndsWithTheLessonOrWhenIdle(t *testing.T) {
	t.Run("lesson ended on origin", func(t *testing.T) {
		room, url := startOrigin(t, "geo")
		edgeRoom, err := sfu.NewRooms(nil).CreateRoom(sfu.LessonInfo{ID: "geo"})
		if err != nil {
			t.Fatal(err)
		}
		defer edgeRoom.End("test over")
		// A classroom of the edge's own keeps the mirror from going idle.
		if err := edgeRoom.AddParticipant(sfu.ParticipantInfo{ID: "village-b", Role: sfu.RoleClassroom}); err != nil {
			t.Fatal(err)
		}
		_, edge, err := New(sfu.NewRooms(nil), loopbackConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		edge.Poll = 100 * time.Millisecond
		done := make(chan error, 1)
		go func() { done <- edge.Mirror(context.Background(), url, edgeRoom) }()
		testenv.WaitFor(t, 20*time.Second, "the mirrored camera", func() bool { _, ok := edgeRoom.Track("cam"); return ok })
		room.End("teacher ended the lesson")
		select {
		case err := <-done:
			if !errors.Is(err, ErrLessonEnded) {
				t.Fatalf("mirror returned %v, want ErrLessonEnded", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("mirror did not notice the lesson ended")
		}
		if _, ok := edgeRoom.Track("cam"); ok {
			t.Fatal("mirrored track left behind")
		}
		if _, ok := edgeRoom.Participant("village-b"); !ok {
			t.Fatal("the edge's own classroom was removed")
		}
	})
	t.Run("idle edge", func(t *testing.T) {
		_, url := startOrigin(t, "art")
		edgeRoom, err := sfu.NewRooms(nil).CreateRoom(sfu.LessonInfo{ID: "art"})
		if err != nil {
			t.Fatal(err)
		}
		defer edgeRoom.End("test over")
		_, edge, err := New(sfu.NewRooms(nil), loopbackConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		edge.Poll, edge.IdleTimeout = 50*time.Millisecond, 500*time.Millisecond
		done := make(chan error, 1)
		go func() { done <- edge.Mirror(context.Background(), url, edgeRoom) }()
		select {
		case err := <-done:
			if !errors.Is(err, ErrIdle) {
				t.Fatalf("mirror returned %v, want ErrIdle", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("idle mirror did not stop")
		}
		if n := len(edgeRoom.Tracks()); n != 0 {
			t.Fatalf("%d mirrored tracks left behind", n)
		}
	})
}

// cascadeNode is one node of the flow-back test: its rooms, its cascade,
// and its HTTP server.
type cascadeNode struct {
	rooms   *sfu.Rooms
	room    *sfu.Room
	edge    *Edge
	url     string
	metrics *Metrics
}

func startCascadeNode(t *testing.T, lesson string) *cascadeNode {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &cascadeNode{rooms: sfu.NewRooms(nil), url: "http://" + l.Addr().String()}
	cfg := loopbackConfig()
	cfg.SelfURL = n.url
	if cfg.Metrics, err = NewMetrics(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	n.metrics = cfg.Metrics
	origin, edge, err := New(n.rooms, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	edge.Poll = 100 * time.Millisecond
	edge.IdleTimeout = 0
	n.edge = edge
	srv := httptest.NewUnstartedServer(origin.Handler())
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	n.room, err = n.rooms.CreateRoom(sfu.LessonInfo{ID: lesson})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.room.End("test over")
		srv.Close()
		origin.Close()
	})
	return n
}

// publishCamera publishes a one-layer VP8 camera for a participant and
// plays the quarter-resolution test video into it until the test ends.
func publishCamera(t *testing.T, room *sfu.Room, p sfu.ParticipantInfo, trackID, ivf string) *sfu.Track {
	t.Helper()
	if err := room.AddParticipant(p); err != nil {
		t.Fatal(err)
	}
	tr := sfu.NewTrack(sfu.TrackInfo{ID: trackID, ParticipantID: p.ID, Kind: sfu.KindVideo, Source: sfu.SourceCamera,
		Codec: sfu.Codec{MimeType: "video/VP8", ClockRate: 90000}}, nil)
	if err := room.Publish(tr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = testmedia.PlayIVF(ctx, ivf, newFeeder(tr, 0, &codecs.VP8Payloader{}, 96, 90000), true)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return tr
}

// TestEdgeClassroomFlowsBackAndGoesOnStage: a classroom on edge A appears
// on the origin (the teacher sees it, its raised hand included); put on
// stage by the teacher, its camera travels edge A -> origin -> edge B, and
// edge B's room shows it on stage; taken off stage, edge B drops it.
func TestEdgeClassroomFlowsBackAndGoesOnStage(t *testing.T) {
	files := testmedia.ForTest(t)
	o := startCascadeNode(t, "chem-5")
	a := startCascadeNode(t, "chem-5")
	b := startCascadeNode(t, "chem-5")
	publishCamera(t, o.room, sfu.ParticipantInfo{ID: "teacher", Role: sfu.RoleTeacher}, "t-cam", files.VP8[0])
	publishCamera(t, a.room, sfu.ParticipantInfo{ID: "village-a", Name: "Village A", Role: sfu.RoleClassroom}, "a-cam", files.VP8[0])
	if err := b.room.AddParticipant(sfu.ParticipantInfo{ID: "village-b", Role: sfu.RoleClassroom}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var mirrors sync.WaitGroup
	defer func() { cancel(); mirrors.Wait() }()
	for _, edge := range []*cascadeNode{a, b} {
		mirrors.Go(func() { _ = edge.edge.Mirror(ctx, o.url, edge.room) })
	}

	// The origin sees edge A's classroom and receives its camera.
	testenv.WaitFor(t, 20*time.Second, "village-a and its camera on the origin", func() bool {
		p, okP := o.room.Participant("village-a")
		_, okT := o.room.Track("a-cam")
		return okP && okT && p.Role == sfu.RoleClassroom && p.Name == "Village A"
	})
	// Every edge's classrooms show on the origin, camera or not: the
	// teacher's grid lists them all.
	testenv.WaitFor(t, 20*time.Second, "village-b on the origin", func() bool { _, ok := o.room.Participant("village-b"); return ok })
	originCopy, _ := o.room.Track("a-cam")
	atOrigin := &countSink{}
	originCopy.AddSink("count", atOrigin)
	testenv.WaitFor(t, 20*time.Second, "village-a's media on the origin", func() bool { return atOrigin.pkts.Load() >= 30 })

	// A raised hand on the edge shows on the origin.
	if err := a.room.RaiseHand("village-a", true); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "village-a's hand raised on the origin", func() bool {
		p, ok := o.room.Participant("village-a")
		return ok && p.HandRaised
	})

	// Before the stage, edge B shows only the teacher.
	testenv.WaitFor(t, 20*time.Second, "teacher camera on edge B", func() bool { _, ok := b.room.Track("t-cam"); return ok })
	if _, ok := b.room.Track("a-cam"); ok {
		t.Fatal("edge B got village-a's camera before it was on stage")
	}

	// On stage: edge B gets village-a's camera through the origin.
	if err := o.room.SetStage("village-a"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "village-a's camera on edge B", func() bool { _, ok := b.room.Track("a-cam"); return ok })
	onB, _ := b.room.Track("a-cam")
	atB := &countSink{}
	onB.AddSink("count", atB)
	testenv.WaitFor(t, 20*time.Second, "village-a's media on edge B", func() bool { return atB.pkts.Load() >= 30 })
	testenv.WaitFor(t, 20*time.Second, "the stage on both edges", func() bool { return b.room.Stage() == "village-a" && a.room.Stage() == "village-a" })

	// Off stage: edge B drops it; edge A keeps its own classroom.
	if err := o.room.SetStage(""); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "edge B to drop village-a", func() bool {
		_, okT := b.room.Track("a-cam")
		_, okP := b.room.Participant("village-a")
		return !okT && !okP && b.room.Stage() == ""
	})
	if _, ok := a.room.Track("a-cam"); !ok {
		t.Fatal("edge A lost its own classroom's camera")
	}
}
