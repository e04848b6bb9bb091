package sfu

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"podium/internal/testenv"
	"podium/internal/testmedia"
)

// TestStillsNeedsTimeBothWays: a dip of the estimate below the lowest
// layer does not stop video at once, and a recovered estimate brings video
// back only after it has held for stillsHold.
func TestStillsNeedsTimeBothWays(t *testing.T) {
	items := []allocItem{
		{priority: priorityStage, rates: []float64{150e3, 500e3, 1500e3}, maxLayer: -1, current: 0},
		{priority: priorityScreen, rates: []float64{250e3}, maxLayer: -1, current: 0},
	}
	// The most important picture, the screen, needs 250 kbit/s.
	var st stillsState
	t0 := time.Now()
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	if st.decide(at(0), 100e3, items) || st.decide(at(stillsEnter-time.Millisecond), 100e3, items) {
		t.Fatal("on stills before the estimate stayed short for stillsEnter")
	}
	if st.decide(at(stillsEnter+time.Second), 300e3, items) {
		t.Fatal("on stills after the estimate came back")
	}
	st.decide(at(10*time.Second), 100e3, items)
	if !st.decide(at(10*time.Second+stillsEnter), 100e3, items) {
		t.Fatal("not on stills after the estimate stayed short for stillsEnter")
	}
	// 250 kbit/s is not enough to leave: upgradeHeadroom is needed.
	if !st.decide(at(30*time.Second), 260e3, items) || !st.decide(at(30*time.Second+stillsHold), 260e3, items) {
		t.Fatal("left stills without headroom over the lowest layers")
	}
	st.decide(at(40*time.Second), 400e3, items)
	if !st.decide(at(40*time.Second+stillsHold-time.Millisecond), 400e3, items) {
		t.Fatal("left stills before the estimate held for stillsHold")
	}
	if st.decide(at(40*time.Second+stillsHold), 400e3, items) {
		t.Fatal("still on stills after the estimate held for stillsHold")
	}

	modes := forwardModes(items, true)
	if modes[0] != forwardNone || modes[1] != forwardStills {
		t.Fatalf("modes %v: want the camera stopped and the screen as stills", modes)
	}
}

// rembOnlyAPI is a subscriber without transport-wide congestion control,
// so the server plans with the REMB it sends (as an older client would):
// the test sets the classroom's bandwidth exactly.
func rembOnlyAPI(t *testing.T) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	reg := &interceptor.Registry{}
	if err := webrtc.ConfigureNack(m, reg); err != nil {
		t.Fatal(err)
	}
	if err := webrtc.ConfigureRTCPReports(reg); err != nil {
		t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))
}

// sendREMB reports bps as the classroom's bandwidth every 200 ms until ctx
// ends; bps can be changed meanwhile.
func sendREMB(ctx context.Context, pc *webrtc.PeerConnection, bps *atomic.Int64) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var ssrcs []uint32
		for _, tr := range pc.GetTransceivers() {
			if r := tr.Receiver(); r != nil && r.Track() != nil {
				ssrcs = append(ssrcs, uint32(r.Track().SSRC()))
			}
		}
		if len(ssrcs) > 0 {
			_ = pc.WriteRTCP([]rtcp.Packet{&rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: float32(bps.Load()), SSRCs: ssrcs}})
		}
	}
}

// TestClassroomBelowTheLowestLayerGetsStills: a classroom whose link
// carries less than the teacher's lowest layer keeps the sound and gets a
// still picture every few seconds, each a keyframe that decodes on its
// own, and is told so; when its link recovers, video comes back.
func TestClassroomBelowTheLowestLayerGetsStills(t *testing.T) {
	s, room := lessonWithSimulcastTeacher(t, "stills")
	weak := joinPeer(t, s, room, "weak", RoleClassroom, rembOnlyAPI(t))
	var bps atomic.Int64
	bps.Store(60_000)
	t.Cleanup(reportREMB(weak, &bps))

	const cam, mic = "teacher-camera", "teacher-microphone"
	stills := func() bool { return onStills(room, "weak") }
	testenv.WaitFor(t, 30*time.Second, "the weak classroom on stills", stills)

	// Over 8 s on stills: only keyframes, a few of them, and the sound.
	before, audioBefore := weak.stream(cam).stats(), weak.stream(mic).stats()
	time.Sleep(8 * time.Second)
	after, audioAfter := weak.stream(cam).stats(), weak.stream(mic).stats()
	frames, keys := after.frames-before.frames, after.keyframes-before.keyframes
	t.Logf("on stills for 8 s: %d frames, %d of them keyframes; %d audio packets", frames, keys, audioAfter.packets-audioBefore.packets)
	if frames != keys || keys < 2 || keys > 4 {
		t.Errorf("on stills the classroom got %d frames of which %d keyframes in 8 s; want only keyframes, one every %v", frames, keys, stillsEvery)
	}
	if got := audioAfter.packets - audioBefore.packets; got < 300 {
		t.Errorf("on stills the classroom got %d audio packets in 8 s, want the sound (50 a second)", got)
	}
	if after.badJumps+after.tsBackwards+after.picBreaks > 0 {
		t.Errorf("the stills broke the stream's numbering: %+v", after)
	}
	if rs := weak.p.ReceiveStats(); len(rs.Video) != 1 || !rs.Video[0].Stills {
		t.Errorf("receive stats %+v: want the camera marked as stills", rs.Video)
	}

	// The link recovers: video again, after the estimate held.
	bps.Store(5_000_000)
	testenv.WaitFor(t, 30*time.Second, "the weak classroom back on video", func() bool { return !stills() })
	testenv.WaitFor(t, 10*time.Second, "video frames again", func() bool {
		st := weak.stream(cam).stats()
		return st.frames-after.frames >= 60 && st.frames-after.frames > 10*(st.keyframes-after.keyframes)
	})
	if st := weak.stream(cam).stats(); st.badJumps+st.tsBackwards+st.picBreaks > 0 {
		t.Errorf("leaving stills broke the stream's numbering: %+v", st)
	}
}

// TestClassroomRejoinsAtItsLinesEstimate: a classroom whose connection
// closed on a weak line starts its next connection from the estimate the
// last one ended with (on stills), not from the start for an unknown line
// (360p, bweInitialBitrate), which would flood its line again; a
// classroom never seen before starts there. Neither sends a bandwidth
// report after joining (REMB, no TWCC: no packet train raises the start
// either), so what each gets is its start alone.
func TestClassroomRejoinsAtItsLinesEstimate(t *testing.T) {
	s, room := lessonWithSimulcastTeacher(t, "rejoin")
	const cam = "teacher-camera"

	weak := joinPeer(t, s, room, "weak", RoleClassroom, rembOnlyAPI(t))
	var bps atomic.Int64
	bps.Store(60_000)
	stopREMB := reportREMB(weak, &bps)
	t.Cleanup(stopREMB)
	testenv.WaitFor(t, 30*time.Second, "the weak classroom on stills", func() bool { return onStills(room, "weak") })
	stopREMB()
	weak.p.Close("its line failed")

	again := joinPeer(t, s, room, "weak", RoleClassroom, rembOnlyAPI(t))
	fresh := joinPeer(t, s, room, "fresh", RoleClassroom, rembOnlyAPI(t))
	testenv.WaitFor(t, 30*time.Second, "both classrooms receive the camera", func() bool {
		return again.stream(cam).stats().frames > 0 && fresh.stream(cam).stats().frames > 30
	})
	layer := func(tp *testPeer) (int, bool) {
		rs := tp.p.ReceiveStats()
		if len(rs.Video) != 1 {
			t.Fatalf("%s receives %d video tracks, want the camera", tp.p.ID(), len(rs.Video))
		}
		return rs.Video[0].Layer, rs.Video[0].Stills
	}
	if l, stills := layer(again); l != 0 || !stills || !onStills(room, "weak") {
		t.Errorf("the rejoined classroom is on layer %d (stills %v), want the smallest as stills from the start", l, stills)
	}
	if l, stills := layer(fresh); l != 1 || stills {
		t.Errorf("a new classroom is on layer %d (stills %v), want 360p from the start", l, stills)
	}
}

// lessonWithSimulcastTeacher starts an sfu (no ICE-TCP) with a lesson
// whose teacher publishes the three-layer camera and the microphone.
func lessonWithSimulcastTeacher(t *testing.T, lesson string) (*SFU, *Room) {
	t.Helper()
	files := testmedia.ForTest(t)
	s := newTestSFU(t, Config{ICETCPPort: -1})
	room, _, err := s.Rooms.GetOrCreateRoom(lesson)
	if err != nil {
		t.Fatal(err)
	}
	teacher := joinPeer(t, s, room, "teacher", RoleTeacher, clientAPI(t))
	publishMedia(t, teacher, files, true)
	return s, room
}

// reportREMB has a classroom report bps as its REMB until the returned
// function stops it.
func reportREMB(tp *testPeer, bps *atomic.Int64) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sendREMB(ctx, tp.sub, bps)
	}()
	var once sync.Once
	return func() { once.Do(func() { cancel(); wg.Wait() }) }
}

// onStills says whether the room announces a participant on stills.
func onStills(room *Room, id string) bool {
	for _, p := range room.Participants() {
		if p.ID == id {
			return p.Stills
		}
	}
	return false
}
