package sfu

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"podium/internal/testenv"
)

// A node that dies with lessons live offers them again when it starts,
// so classrooms coming back before their teacher join at once: the
// lessons someone took part in and that did not end (a shutdown is no
// end), not those created ahead that nobody joined nor those only watched.
// A lesson is brought back by the first one to return; one nobody returns
// to within the grace is not brought back and leaves the list; a lesson
// brought back that nobody stays in ends after the grace.
func TestLessonsResumeAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "live-lessons.json")
	teacher := ParticipantInfo{ID: "t", Name: "T", Role: RoleTeacher}
	classroom := ParticipantInfo{ID: "c", Name: "C", Role: RoleClassroom}
	before := NewRooms(nil)
	if ids, err := before.ResumeLessons(path); err != nil || len(ids) != 0 {
		t.Fatalf("first start: resumable %v, %v", ids, err)
	}
	room := func(id string, who ...ParticipantInfo) *Room {
		t.Helper()
		r, _, err := before.GetOrCreateRoom(id)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range who {
			if err := r.AddParticipant(p); err != nil {
				t.Fatal(err)
			}
		}
		return r
	}
	room("live", teacher, classroom)
	room("ghost", teacher)
	room("empty", teacher)
	if _, err := before.CreateRoom(LessonInfo{ID: "ahead", Title: "Tomorrow"}); err != nil {
		t.Fatal(err)
	}
	room("over", teacher).End("the teacher ended the lesson")
	room("watched", ParticipantInfo{ID: "v", Role: RoleViewer})
	room("drained", teacher).End(EndReasonShutdown)
	// The process dies here: nothing else ends.

	after := NewRooms(nil)
	after.SetEmptyLessonGrace(time.Second)
	ids, err := after.ResumeLessons(path)
	if err != nil || !slices.Equal(ids, []string{"drained", "empty", "ghost", "live"}) {
		t.Fatalf("resumable %v (%v), want [drained empty ghost live]", ids, err)
	}
	if _, ok := after.Room("live"); ok {
		t.Fatal("a lesson came back before anyone did")
	}
	if _, ok := after.RoomOrResumed("ahead"); ok {
		t.Fatal("a lesson nobody had joined was brought back")
	}
	// A classroom is back first, then its teacher: the same lesson.
	live, ok := after.RoomOrResumed("live")
	if !ok || live.AddParticipant(classroom) != nil {
		t.Fatal("the classroom could not bring its lesson back")
	}
	if r, created, _ := after.GetOrCreateRoom("live"); created || r != live {
		t.Fatal("the teacher returning made another lesson")
	}
	// The teacher of "drained" is back first (GetOrCreateRoom).
	if _, _, err := after.GetOrCreateRoom("drained"); err != nil {
		t.Fatal(err)
	}
	empty, _ := after.RoomOrResumed("empty")
	select {
	case <-empty.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a lesson brought back that nobody stayed in did not end after the grace")
	}
	testenv.WaitFor(t, 10*time.Second, "the offer of the lesson nobody came back to to end", func() bool {
		after.mu.Lock()
		defer after.mu.Unlock()
		_, offered := after.resumable["ghost"]
		return !offered
	})
	if _, ok := after.RoomOrResumed("ghost"); ok {
		t.Fatal("a lesson was brought back after its offer ended")
	}
	if live.Ended() {
		t.Fatal("the lesson its classroom came back to ended")
	}

	again := NewRooms(nil)
	ids, err = again.ResumeLessons(path)
	if err != nil || !slices.Equal(ids, []string{"drained", "live"}) {
		t.Fatalf("after the second restart resumable %v (%v), want [drained live]", ids, err)
	}
	for _, r := range after.List() {
		r.End("test over")
	}
}
