package recorder

import (
	"context"
	"testing"
	"time"

	"podium/sfu"
)

// Classrooms are recorded only while on stage; the stage changes are
// chapter markers.
func TestOnlyOnStageClassroomIsRecorded(t *testing.T) {
	t.Parallel()
	_, store := minioStore(t)
	rec := newRecorder(t, store, t.TempDir())
	f := startLesson(t, rec, "stage")
	for _, id := range []string{"c1", "c2"} {
		if err := f.room.AddParticipant(sfu.ParticipantInfo{ID: id, Name: "School " + id, Role: sfu.RoleClassroom}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Second)
	defer cancel()
	_, _, w1 := f.publishAs(t, ctx, "c1", "c1-cam", sfu.SourceCamera, codecH264)
	_, _, w2 := f.publishAs(t, ctx, "c2", "c2-cam", sfu.SourceCamera, codecH264)
	time.Sleep(2 * time.Second)
	if err := f.room.SetStage("c1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)
	if err := f.room.SetStage(""); err != nil {
		t.Fatal(err)
	}
	w1()
	w2()
	f.room.End("lesson over")

	m := waitManifest(t, store, "stage", 60*time.Second, func(m Manifest) bool { return m.Complete })
	if len(m.Tracks) != 1 || m.Tracks[0].ParticipantID != "c1" || m.Tracks[0].Role != "classroom" {
		t.Fatalf("want only c1's camera recorded, got %+v", m.Tracks)
	}
	tr := m.Tracks[0]
	checkContinuous(t, store, tr)
	p := probeFile(t, assemble(t, store, tr))
	// On stage for 5 s, less up to a second waiting for a keyframe.
	if p.duration < 3.5 || p.duration > 6 {
		t.Fatalf("on-stage recording lasts %.2fs, want about 5 s", p.duration)
	}
	var stages []string
	for _, e := range m.Events {
		if e.Type == "stage" {
			stages = append(stages, e.ParticipantID+"/"+e.Participant)
		}
	}
	if len(stages) != 2 || stages[0] != "c1/School c1" || stages[1] != "/" {
		t.Fatalf("stage markers %v", stages)
	}
}
