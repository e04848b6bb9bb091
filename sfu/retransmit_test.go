package sfu

import (
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"podium/internal/rtxrepair"
	"podium/internal/testenv"
	"podium/internal/testmedia"
)

// TestEachLostPacketIsRetransmittedAboutOnceByTheEgress: a classroom (a
// real pion client that puts RTX retransmissions back into their stream,
// as a browser does) loses 40 of the teacher's camera packets once. The
// subscriber's egress answers the NACKs, read off the node's socket, from
// its ring: every lost packet arrives, and about once.
func TestEachLostPacketIsRetransmittedAboutOnceByTheEgress(t *testing.T) {
	files := testmedia.ForTest(t)
	s := newTestSFU(t, Config{ICETCPPort: -1})
	room, _, err := s.Rooms.GetOrCreateRoom("retransmit")
	if err != nil {
		t.Fatal(err)
	}
	teacher := joinPeer(t, s, room, "teacher", RoleTeacher, clientAPI(t))
	publishMedia(t, teacher, files, true)

	drop := &dropOnceInterceptor{every: 25, lost: make(map[uint16]bool)}
	repair := rtxrepair.NewFactory()
	class := joinPeerRepairing(t, s, room, "class", RoleClassroom, clientAPI(t, []interceptor.Factory{drop, repair}...), webrtc.Configuration{}, repair)

	const cam = "teacher-camera"
	testenv.WaitFor(t, 60*time.Second, "40 packets dropped once", func() bool { return len(drop.dropped()) >= 40 })
	lost := drop.dropped()
	log := class.stream(cam)
	testenv.WaitFor(t, 30*time.Second, "every dropped packet retransmitted", func() bool {
		for _, seq := range lost {
			if !log.has(seq) {
				return false
			}
		}
		return true
	})
	time.Sleep(time.Second) // let late NACKs play out before counting
	class.p.mu.Lock()
	sub := class.p.sub
	class.p.mu.Unlock()
	resent := sub.queue.resent.Load()
	t.Logf("%d packets lost once, %d retransmissions, RTT %v", len(lost), resent, class.p.Quality().RTT)
	if resent < uint64(len(lost)) || resent > uint64(len(lost)+len(lost)/2) {
		t.Fatalf("%d packets lost once, %d retransmissions: want about one each", len(lost), resent)
	}
	// Media and retransmissions alike were protected by the egress itself
	// (the first packets may have left before the handshake's keys were
	// known).
	if direct, all := sentDirectly(class.p); direct < all*9/10 {
		t.Errorf("%d of %d packets sent with the egress's own SRTP, want nearly all", direct, all)
	}
	// The NACKs (and the TWCC feedback and reports) were read off the
	// node's socket by the node itself, not through pion (rtcpdirect.go).
	if taken, failed := s.batcher.rtcp.taken.Load(), s.batcher.rtcp.failed.Load(); taken == 0 || failed != 0 {
		t.Errorf("%d RTCP packets taken off the socket, %d of them failed to open; want some, none failing", taken, failed)
	}
}
