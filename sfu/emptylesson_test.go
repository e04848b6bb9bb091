package sfu

import (
	"strings"
	"testing"
	"time"
)

// endedWithin waits for a lesson to end and returns the reason it gave.
func endedWithin(t *testing.T, r *Room, d time.Duration) (string, bool) {
	t.Helper()
	reason := make(chan string, 1)
	cancel := r.OnEvent(func(e Event) {
		if e.Type == EventLessonEnded {
			reason <- e.Reason
		}
	})
	defer cancel()
	select {
	case <-r.Done():
		select {
		case why := <-reason:
			return why, true
		case <-time.After(time.Second):
			return "", true
		}
	case <-time.After(d):
		return "", false
	}
}

// A lesson whose teacher, classrooms and sources have all left ends by
// itself after the grace period; coming back within it keeps it going; a
// viewer alone does not hold it open; a lesson nobody joined yet is kept.
func TestEmptyLessonEndsAfterGrace(t *testing.T) {
	rooms := NewRooms(nil)
	rooms.SetEmptyLessonGrace(300 * time.Millisecond)

	ahead, err := rooms.CreateRoom(LessonInfo{ID: "ahead"})
	if err != nil {
		t.Fatal(err)
	}
	defer ahead.End("test over")

	r, err := rooms.CreateRoom(LessonInfo{ID: "l1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []ParticipantInfo{{ID: "t", Role: RoleTeacher}, {ID: "v", Role: RoleViewer}, {ID: "cam", Role: RoleSource}} {
		if err := r.AddParticipant(p); err != nil {
			t.Fatal(err)
		}
	}
	r.RemoveParticipant("t", "left")
	if _, ended := endedWithin(t, r, time.Second); ended {
		t.Fatal("the lesson ended while an RTSP source was still in it")
	}
	r.RemoveParticipant("cam", "removed")
	time.Sleep(150 * time.Millisecond)
	// The teacher comes back within the grace period.
	if err := r.AddParticipant(ParticipantInfo{ID: "t", Role: RoleTeacher}); err != nil {
		t.Fatal(err)
	}
	if _, ended := endedWithin(t, r, time.Second); ended {
		t.Fatal("the lesson ended although the teacher came back within the grace period")
	}
	r.RemoveParticipant("t", "left")
	why, ended := endedWithin(t, r, 2*time.Second)
	if !ended {
		t.Fatalf("the lesson is still live with only a viewer: %+v", r.Participants())
	}
	if !strings.Contains(why, "nobody") {
		t.Errorf("lessonEnded reason %q", why)
	}
	if _, live := rooms.Room("l1"); live {
		t.Error("the ended lesson is still listed")
	}
	if ahead.Ended() {
		t.Error("a lesson created ahead, which nobody joined yet, was ended")
	}

	// Disabled: the lesson stays.
	rooms.SetEmptyLessonGrace(-1)
	kept, err := rooms.CreateRoom(LessonInfo{ID: "kept"})
	if err != nil {
		t.Fatal(err)
	}
	defer kept.End("test over")
	_ = kept.AddParticipant(ParticipantInfo{ID: "t", Role: RoleTeacher})
	kept.RemoveParticipant("t", "left")
	if _, ended := endedWithin(t, kept, time.Second); ended {
		t.Error("a lesson ended with the grace period disabled")
	}
}
