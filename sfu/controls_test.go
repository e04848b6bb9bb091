package sfu

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// eventLog collects a room's events for a test.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

// waitFor waits (up to 5 s) for an event matching match.
func (l *eventLog) waitFor(t *testing.T, what string, match func(Event) bool) Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		for _, e := range l.events {
			if match(e) {
				l.mu.Unlock()
				return e
			}
		}
		l.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no %s event within 5 s", what)
	return Event{}
}

func cameraTrack(id, owner string) *Track {
	return NewTrack(TrackInfo{ID: id, ParticipantID: owner, Kind: KindVideo, Source: SourceCamera,
		Codec: Codec{MimeType: "video/VP8", ClockRate: 90000}}, nil)
}

func TestCameraOffIsParticipantState(t *testing.T) {
	r := newRoom(LessonInfo{ID: "c"}, 0, nil)
	defer r.End("test over")
	var log eventLog
	r.OnEvent(log.add)
	if err := r.AddParticipant(ParticipantInfo{ID: "t", Role: RoleTeacher}); err != nil {
		t.Fatal(err)
	}
	cam, mic := cameraTrack("t-camera", "t"), micTrack("t-microphone", "t")
	for _, tr := range []*Track{cam, mic} {
		if err := r.Publish(tr); err != nil {
			t.Fatal(err)
		}
	}
	if p, _ := r.Participant("t"); p.CameraOff {
		t.Fatal("a participant publishing its camera starts with the camera off")
	}

	// Off: the camera is not forwarded, the microphone is; everyone is told.
	if err := r.SetCameraOff("t", true); err != nil {
		t.Fatal(err)
	}
	if p, _ := r.Participant("t"); !p.CameraOff || forwards(cam) || !forwards(mic) || !cam.Info().Muted {
		t.Fatalf("camera off: %+v, camera forwards %v, microphone %v", p, forwards(cam), forwards(mic))
	}
	log.waitFor(t, "participantUpdated cameraOff", func(e Event) bool {
		return e.Type == EventParticipantUpdated && e.Participant.ID == "t" && e.Participant.CameraOff
	})
	log.waitFor(t, "trackUpdated muted", func(e Event) bool {
		return e.Type == EventTrackUpdated && e.Track.ID == "t-camera" && e.Track.Muted
	})

	// A camera published while off (a device switch, a reconnect) starts
	// muted, and so does the participant coming back.
	r.Unpublish("t-camera")
	cam2 := cameraTrack("t-camera", "t")
	if err := r.Publish(cam2); err != nil {
		t.Fatal(err)
	}
	if forwards(cam2) {
		t.Fatal("a camera published while the camera is off is forwarded")
	}
	r.RemoveParticipant("t", "reconnect")
	if err := r.AddParticipant(ParticipantInfo{ID: "t", Role: RoleTeacher}); err != nil {
		t.Fatal(err)
	}
	if p, _ := r.Participant("t"); !p.CameraOff {
		t.Fatal("the camera came back on across a reconnect")
	}
	cam3 := cameraTrack("t-camera", "t")
	if err := r.Publish(cam3); err != nil {
		t.Fatal(err)
	}

	// On again: forwarded.
	if err := r.SetCameraOff("t", false); err != nil {
		t.Fatal(err)
	}
	if p, _ := r.Participant("t"); p.CameraOff || !forwards(cam3) {
		t.Fatalf("camera on: %+v, forwards %v", p, forwards(cam3))
	}

	// A camera that stops while its participant stays is off, and on again
	// when a camera is published.
	r.Unpublish("t-camera")
	if p, _ := r.Participant("t"); !p.CameraOff {
		t.Fatal("a stopped camera is not off")
	}
	if err := r.Publish(cameraTrack("t-camera", "t")); err != nil {
		t.Fatal(err)
	}
	if p, _ := r.Participant("t"); p.CameraOff {
		t.Fatal("a camera published again is still off")
	}
	if err := r.SetCameraOff("nobody", true); !errors.Is(err, ErrNoSuchParticipant) {
		t.Fatalf("unknown participant: %v", err)
	}
}

func TestRecordingAndChatSwitchAreLessonState(t *testing.T) {
	r := newRoom(LessonInfo{ID: "s", Title: "Fractions"}, 0, nil)
	defer r.End("test over")
	var log eventLog
	r.OnEvent(log.add)
	for _, p := range []ParticipantInfo{{ID: "t", Role: RoleTeacher}, {ID: "a", Role: RoleClassroom}} {
		if err := r.AddParticipant(p); err != nil {
			t.Fatal(err)
		}
	}
	if info := r.Info(); info.Recording || !info.ChatEnabled || info.Title != "Fractions" {
		t.Fatalf("a new lesson: %+v, want not recording, chat on", info)
	}

	r.SetRecording(true)
	e := log.waitFor(t, "lessonUpdated recording", func(e Event) bool { return e.Type == EventLessonUpdated && e.Lesson.Recording })
	if e.Lesson.ID != "s" || e.Lesson.Title != "Fractions" || !e.Lesson.ChatEnabled {
		t.Fatalf("lessonUpdated carries %+v, want the whole lesson", e.Lesson)
	}

	if err := r.SetChatEnabled(false); err != nil {
		t.Fatal(err)
	}
	log.waitFor(t, "lessonUpdated chat off", func(e Event) bool { return e.Type == EventLessonUpdated && !e.Lesson.ChatEnabled })
	if err := r.Chat("a", "hello"); !errors.Is(err, ErrChatDisabled) {
		t.Fatalf("classroom chat while off: %v, want ErrChatDisabled", err)
	}
	if err := r.Chat("t", "quiet please"); err != nil {
		t.Fatalf("the teacher's chat while off: %v", err)
	}
	if err := r.SetChatEnabled(true); err != nil {
		t.Fatal(err)
	}
	if err := r.Chat("a", "hello"); err != nil {
		t.Fatalf("classroom chat after switching on: %v", err)
	}

	r.End("over")
	r.SetRecording(false) // the recorder stopping after the end changes nothing
	if err := r.SetChatEnabled(false); !errors.Is(err, ErrRoomEnded) {
		t.Fatalf("switch chat after the end: %v", err)
	}
}
