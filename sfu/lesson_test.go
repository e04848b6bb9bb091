package sfu

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"podium/internal/testenv"
	"podium/internal/testmedia"
)

// TestLessonMedia runs a lesson with real pion peers on loopback: a teacher
// publishes simulcast VP8 and Opus; classrooms receive decodable streams;
// a lossy classroom drops to a lower layer while the others keep the top
// one; lost packets are retransmitted; keyframe requests are merged; a
// classroom that leaves and comes back gets media again.
func TestLessonMedia(t *testing.T) {
	files := testmedia.ForTest(t)
	s := newTestSFU(t, Config{ICETCPPort: -1})
	room, _, err := s.Rooms.GetOrCreateRoom("lesson-media")
	if err != nil {
		t.Fatal(err)
	}
	teacher := joinPeer(t, s, room, "teacher", RoleTeacher, clientAPI(t))
	pub := publishMedia(t, teacher, files, true)

	lossy := &dropInterceptor{fraction: 0.25, rng: rand.New(rand.NewPCG(1, 2))}
	nacked := &dropOnceInterceptor{every: 25, lost: make(map[uint16]bool)}
	c1 := joinPeer(t, s, room, "class1", RoleClassroom, clientAPI(t))
	c2 := joinPeer(t, s, room, "class2", RoleClassroom, clientAPI(t, nacked)) // loses 40 packets once, early
	c3 := joinPeer(t, s, room, "class3", RoleClassroom, clientAPI(t, lossy))
	c4 := c2
	all := []*testPeer{c1, c2, c3}

	const cam, mic = "teacher-camera", "teacher-microphone"
	if tr, ok := room.Track(cam); !ok {
		testenv.WaitFor(t, 20*time.Second, "camera published", func() bool { _, ok := room.Track(cam); return ok })
	} else if got := tr.Info().Layers; len(got) != 3 || got[0] != "q" || got[2] != "f" {
		t.Fatalf("camera layers = %v, want [q h f]", got)
	}

	t.Run("classrooms receive decodable media", func(t *testing.T) {
		for _, c := range all {
			testenv.WaitFor(t, 30*time.Second, c.p.ID()+" video and audio", func() bool {
				return c.stream(cam).stats().frames > 60 && c.stream(mic).stats().packets > 100
			})
			if got := c.stream(cam).streamID; got != "teacher" {
				t.Errorf("%s: msid stream = %q, want teacher", c.p.ID(), got)
			}
		}
	})

	t.Run("lossy classroom gets a lower layer, others the top", func(t *testing.T) {
		deadline := time.Now().Add(90 * time.Second)
		// class2 is not clean: it loses 40 packets early for the NACK
		// test and may sit on a lower layer until a probe lifts it, so
		// only class1 is judged here (class2 is, below).
		for !(c1.p.Quality().Layers[cam] == 2 && c3.p.Quality().Layers[cam] < 2) {
			if time.Now().After(deadline) {
				t.Fatalf("layers did not settle: clean %+v, lossy %+v (class2 %+v)", c1.p.Quality(), c3.p.Quality(), c2.p.Quality())
			}
			time.Sleep(100 * time.Millisecond)
		}
		if rtt := c1.p.Quality().RTT; rtt <= 0 || rtt > 5*time.Second {
			t.Errorf("clean classroom RTT %v, want a loopback round trip", rtt)
		}
		q := c3.p.Quality()
		if q.Loss == 0 && q.EstimatedBitrate >= c1.p.Quality().EstimatedBitrate {
			t.Errorf("lossy classroom quality %+v shows neither loss nor a lower estimate", q)
		}
	})

	t.Run("streams stay continuous across layer switches", func(t *testing.T) {
		before := c1.stream(cam).stats().frames
		testenv.WaitFor(t, 20*time.Second, "more frames", func() bool { return c1.stream(cam).stats().frames > before+30 })
		for _, c := range []*testPeer{c1, c2} {
			st := c.stream(cam).stats()
			if !st.firstKey {
				t.Errorf("%s: first video packet is not a VP8 keyframe", c.p.ID())
			}
			if st.badJumps != 0 || st.tsBackwards != 0 || st.picBreaks != 0 {
				t.Errorf("%s: discontinuous stream: %+v", c.p.ID(), st)
			}
			if st.missing > st.packets/20 {
				t.Errorf("%s: %d of %d sequence numbers never arrived", c.p.ID(), st.missing, st.packets)
			}
			if st.keyframes == 0 {
				t.Errorf("%s: no keyframe", c.p.ID())
			}
		}
		st := c3.stream(cam).stats()
		if !st.firstKey || st.badJumps != 0 || st.tsBackwards != 0 || st.picBreaks != 0 {
			t.Errorf("lossy classroom stream broken: %+v", st)
		}
		if lossy.droppedCount() == 0 {
			t.Error("the lossy link dropped nothing")
		}
	})

	t.Run("classrooms whose loss ended climb back to the top layer", func(t *testing.T) {
		// Once a classroom forwarded a small layer receives little, its
		// estimate can only grow past the next layer's rate by probing.
		lossy.setFraction(0)
		deadline := time.Now().Add(90 * time.Second)
		for !(c2.p.Quality().Layers[cam] == 2 && c3.p.Quality().Layers[cam] == 2) {
			if time.Now().After(deadline) {
				t.Fatalf("not back on layer f: class2 %+v, class3 %+v", c2.p.Quality(), c3.p.Quality())
			}
			time.Sleep(100 * time.Millisecond)
		}
		var padded uint64
		for _, c := range []*testPeer{c2, c3} {
			if st := c.stream(cam).stats(); st.badJumps != 0 || st.tsBackwards != 0 || st.picBreaks != 0 {
				t.Errorf("%s: stream broken while probing: %+v", c.p.ID(), st)
			}
			for _, dt := range c.p.downTracks() {
				padded += dt.paddingSent()
			}
		}
		// With Podium's own GCC (sfu/gcc.go) the climb on an idle machine
		// came without any padding: whether its delay-based estimate keeps
		// pion's cap at 1.5 times the incoming rate is to be checked; the
		// climb itself is what the classroom sees, and is asserted above.
		t.Logf("padding packets sent during the climb: %d", padded)
	})

	t.Run("NACKs are answered", func(t *testing.T) {
		testenv.WaitFor(t, 20*time.Second, "packets dropped once", func() bool { return len(nacked.dropped()) >= 10 })
		lost := nacked.dropped()
		log := c4.stream(cam)
		recovered := func() int {
			got := 0
			for _, seq := range lost {
				if log.has(seq) {
					got++
				}
			}
			return got
		}
		deadline := time.Now().Add(20 * time.Second)
		for recovered() < len(lost)*8/10 {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d packets dropped once were retransmitted (sfu counted %v NACKs)",
					recovered(), len(lost), testutil.ToFloat64(s.m.nacksReceived))
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("keyframe requests are merged", func(t *testing.T) {
		time.Sleep(time.Second) // let earlier switches' requests pass the throttle window
		before := pub.pliCount()
		var ssrcs []uint32
		for _, c := range all {
			for _, r := range c.sub.GetReceivers() {
				if tr := r.Track(); tr != nil && tr.Kind() == webrtc.RTPCodecTypeVideo {
					ssrcs = append(ssrcs, uint32(tr.SSRC()))
				}
			}
		}
		const perClassroom = 5
		for i := 0; i < perClassroom; i++ {
			for j, c := range all {
				if err := c.sub.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrcs[j]}}); err != nil {
					t.Fatal(err)
				}
			}
		}
		testenv.WaitFor(t, 20*time.Second, "a keyframe request at the publisher", func() bool { return pub.pliCount() > before })
		time.Sleep(300 * time.Millisecond)
		got := pub.pliCount() - before
		// 15 requests for at most 3 layers: the throttle lets at most one
		// per layer and half second through (two windows when slow).
		if got > 6 {
			t.Errorf("publisher got %d keyframe requests for %d subscriber PLIs", got, perClassroom*len(all))
		}
	})

	t.Run("a classroom that rejoins gets media again", func(t *testing.T) {
		c2.p.Close("network lost")
		c2.sub.Close()
		if _, ok := room.Participant("class2"); ok {
			t.Fatal("class2 still in the room after leaving")
		}
		again := joinPeer(t, s, room, "class2", RoleClassroom, clientAPI(t))
		testenv.WaitFor(t, 30*time.Second, "media after rejoin", func() bool {
			return again.stream(cam).stats().frames > 30 && again.stream(mic).stats().packets > 50
		})
		if !again.stream(cam).stats().firstKey {
			t.Error("first video packet after rejoin is not a keyframe")
		}
	})
}

var _ interceptor.Factory = (*dropInterceptor)(nil)
