package sfu

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"podium/internal/testenv"
	"podium/internal/testmedia"
)

// TestConnectivity: a single-layer teacher reaches a WHEP viewer, a
// classroom that can only do ICE over TCP, a classroom forced through the
// embedded TURN relay, and survives an ICE restart; the stage moves
// classroom tracks in and out of others' subscriptions; roles are checked.
func TestConnectivity(t *testing.T) {
	files := testmedia.ForTest(t)
	s := newTestSFU(t, Config{TURN: TURNConfig{Enabled: true, Secret: "turn-secret"}})
	room, _, err := s.Rooms.GetOrCreateRoom("lesson-connect")
	if err != nil {
		t.Fatal(err)
	}
	teacher := joinPeer(t, s, room, "teacher", RoleTeacher, clientAPI(t))
	publishMedia(t, teacher, files, false)
	const cam = "teacher-camera"
	testenv.WaitFor(t, 20*time.Second, "camera published", func() bool { _, ok := room.Track(cam); return ok })

	t.Run("roles", func(t *testing.T) {
		viewer, err := s.Join(room, ParticipantInfo{ID: "viewer-roles", Role: RoleViewer}, nil, JoinOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer viewer.Close("done")
		if _, err := viewer.Publish(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: "v=0"}, nil); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("viewer publish: %v, want ErrNotAllowed", err)
		}
		class, err := s.Join(room, ParticipantInfo{ID: "class-roles", Role: RoleClassroom}, nil, JoinOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer class.Close("done")
		if _, err := class.Publish(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: "v=0"},
			[]PublishTrack{{TrackID: "x", Source: SourceScreen}}); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("classroom screen: %v, want ErrNotAllowed", err)
		}
		if _, err := class.Publish(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: "garbage"}, nil); !errors.Is(err, ErrBadSDP) {
			t.Errorf("garbage offer: %v, want ErrBadSDP", err)
		}
		if err := class.Subscribe("no-such-track"); !errors.Is(err, ErrNoSuchTrack) {
			t.Errorf("subscribe unknown: %v, want ErrNoSuchTrack", err)
		}
	})

	t.Run("WHEP viewer", func(t *testing.T) {
		viewer, err := s.Join(room, ParticipantInfo{ID: "whep", Role: RoleViewer}, nil, JoinOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer viewer.Close("done")
		tp := &testPeer{t: t, p: viewer, api: clientAPI(t), streams: make(map[string]*streamLog)}
		pc := tp.newSubscriberPC(webrtc.Configuration{})
		defer pc.Close()
		for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
			if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				t.Fatal(err)
			}
		}
		offer, err := pc.CreateOffer(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := pc.SetLocalDescription(offer); err != nil {
			t.Fatal(err)
		}
		answer, err := viewer.Watch(gathered(t, pc), []string{cam, "teacher-microphone"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(answer.SDP, "msid:teacher "+cam) {
			t.Errorf("answer lacks msid teacher %s", cam)
		}
		if err := pc.SetRemoteDescription(answer); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 30*time.Second, "WHEP frames", func() bool { return tp.stream(cam).stats().frames > 30 })
		// The WHEP client offered: the node answered as the DTLS server
		// and protects the packets itself.
		if direct, all := sentDirectly(viewer); direct == 0 || direct != all {
			t.Errorf("%d of %d packets sent with the egress's own SRTP, want all", direct, all)
		}
	})

	t.Run("ICE over TCP only", func(t *testing.T) {
		c := joinPeer(t, s, room, "class-tcp", RoleClassroom, clientAPIOn(t, []webrtc.NetworkType{webrtc.NetworkTypeTCP4}))
		testenv.WaitFor(t, 30*time.Second, "frames over TCP", func() bool { return c.stream(cam).stats().frames > 30 })
		pair, err := c.sub.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
		if err == nil && pair != nil && pair.Local.Protocol != webrtc.ICEProtocolTCP {
			t.Errorf("selected pair uses %s, want tcp", pair.Local.Protocol)
		}
		if got := c.p.ReceiveStats().Transport; got != "tcp" {
			t.Errorf("the server names the classroom's transport %q, want tcp", got)
		}
		// ICE-TCP framing is pion's: every packet went through it.
		if direct, all := sentDirectly(c.p); direct != 0 || all == 0 {
			t.Errorf("%d of %d packets sent directly over a TCP pair, want none", direct, all)
		}
	})

	t.Run("TURN relay", func(t *testing.T) {
		var servers []webrtc.ICEServer
		for _, s := range s.ICEServers("class-turn") {
			servers = append(servers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
		}
		if len(servers) == 0 {
			t.Fatal("no ICE servers with TURN enabled")
		}
		c := joinPeerWith(t, s, room, "class-turn", RoleClassroom, clientAPIOn(t, []webrtc.NetworkType{webrtc.NetworkTypeUDP4}),
			webrtc.Configuration{ICEServers: servers, ICETransportPolicy: webrtc.ICETransportPolicyRelay})
		testenv.WaitFor(t, 30*time.Second, "frames through TURN", func() bool { return c.stream(cam).stats().frames > 30 })
		if s.turn.srv.AllocationCount() == 0 {
			t.Error("TURN server has no allocation")
		}
		if got := c.p.ReceiveStats().Transport; got != "turn" {
			t.Errorf("the server names the classroom's transport %q, want turn", got)
		}
		// The relay's address is UDP: the node writes to it directly.
		if direct, _ := sentDirectly(c.p); direct == 0 {
			t.Error("no packet sent directly to the classroom's relay")
		}
	})

	t.Run("ICE restart and stage", func(t *testing.T) {
		a := joinPeer(t, s, room, "class-a", RoleClassroom, clientAPI(t))
		b := joinPeer(t, s, room, "class-b", RoleClassroom, clientAPI(t))
		publishMedia(t, a, files, false)
		testenv.WaitFor(t, 30*time.Second, "b gets the teacher", func() bool { return b.stream(cam).stats().frames > 30 })
		if b.p.sub.subscribed("class-a-camera") {
			t.Fatal("class-b subscribed to class-a before it is on stage")
		}
		before := b.stream(cam).stats().frames
		if err := b.p.RestartICE(); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 30*time.Second, "frames after ICE restart", func() bool { return b.stream(cam).stats().frames > before+30 })

		if err := room.SetStage("class-a"); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 30*time.Second, "b sees the stage", func() bool { return b.stream("class-a-camera").stats().frames > 30 })
		if err := room.SetStage(""); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 20*time.Second, "b unsubscribed from the old stage", func() bool { return !b.p.sub.subscribed("class-a-camera") })
		if !teacherSees(teacher, "class-a-camera") {
			t.Error("teacher is not subscribed to the classroom camera")
		}
	})
}

func teacherSees(tp *testPeer, id string) bool {
	tp.p.mu.Lock()
	sub := tp.p.sub
	tp.p.mu.Unlock()
	return sub != nil && sub.subscribed(id)
}

// sentDirectly is how many packets a participant's subscriber egress
// protected and wrote itself (sendDirect), of all it sent.
func sentDirectly(p *Participant) (direct, all uint64) {
	p.mu.Lock()
	sub := p.sub
	p.mu.Unlock()
	if sub == nil {
		return 0, 0
	}
	return sub.queue.direct.Load(), sub.queue.packets.Load()
}
