package sfu

import (
	"testing"
	"time"

	"podium/internal/testenv"
	"podium/internal/testmedia"
)

// TestSenderReportsReachTheClassroom: a classroom (a real pion client)
// opens the sender reports of the teacher's camera and microphone, sealed
// and written by its egress itself (sendRTCP), once a second; each maps
// the stream's RTP clock to within half a second of what the classroom
// was receiving, and its receiver reports, which echo them, give the
// node the classroom's round trip.
func TestSenderReportsReachTheClassroom(t *testing.T) {
	files := testmedia.ForTest(t)
	s := newTestSFU(t, Config{ICETCPPort: -1})
	room, _, err := s.Rooms.GetOrCreateRoom("reports")
	if err != nil {
		t.Fatal(err)
	}
	teacher := joinPeer(t, s, room, "teacher", RoleTeacher, clientAPI(t))
	publishMedia(t, teacher, files, true)
	class := joinPeer(t, s, room, "class", RoleClassroom, clientAPI(t))

	streams := map[string]uint32{"teacher-camera": 90000, "teacher-microphone": 48000}
	testenv.WaitFor(t, 30*time.Second, "three sender reports on each stream", func() bool {
		for id := range streams {
			if len(class.stream(id).senderReports()) < 3 {
				return false
			}
		}
		return true
	})
	for id, clock := range streams {
		reports := class.stream(id).senderReports()
		for i, r := range reports {
			if d := int32(r.sr.RTPTime - r.lastTS); d < -int32(clock/2) || d > int32(clock/2) {
				t.Errorf("%s: report %d says RTP time %d, the classroom was at %d (%.2f s apart)", id, i, r.sr.RTPTime, r.lastTS, float64(d)/float64(clock))
			}
			if i > 0 && (r.sr.NTPTime <= reports[i-1].sr.NTPTime || r.sr.PacketCount < reports[i-1].sr.PacketCount) {
				t.Errorf("%s: report %d goes back: %+v after %+v", id, i, r.sr, reports[i-1].sr)
			}
		}
	}
	class.p.mu.Lock()
	sub := class.p.sub
	class.p.mu.Unlock()
	if n := sub.queue.reports.Load(); n < 3 {
		t.Errorf("%d RTCP packets sent by the egress itself, want every report (at least 3)", n)
	}
	testenv.WaitFor(t, 10*time.Second, "the classroom's round trip", func() bool { return class.p.Quality().RTT > 0 })
}
