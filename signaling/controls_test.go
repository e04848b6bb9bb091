package signaling

import (
	"encoding/json"
	"testing"

	"podium/clients/goclient"
	"podium/sfu"
)

// lessonState waits for a lessonUpdated on c matching match.
func lessonState(t *testing.T, c *goclient.Client, match func(sfu.LessonInfo) bool) sfu.LessonInfo {
	t.Helper()
	var got sfu.LessonInfo
	waitEvent(t, c, "lessonUpdated", func(d json.RawMessage) bool {
		var e LessonEventData
		if json.Unmarshal(d, &e) != nil {
			return false
		}
		got = e.Lesson
		return match(e.Lesson)
	})
	return got
}

// TestControlsAreServerState: the chat switch, the recording state and a
// camera turned off reach every client as state (lessonUpdated,
// participantUpdated, and in joined for a client arriving later), and the
// server enforces the chat switch with a clear error.
func TestControlsAreServerState(t *testing.T) {
	ts := newTestServer(t)
	ctx := testCtx(t)
	teacher, tj := ts.join(t, "ctl", sfu.RoleTeacher, "T", goclient.Options{})
	a, _ := ts.join(t, "ctl", sfu.RoleClassroom, "Room A", goclient.Options{})
	var lesson sfu.LessonInfo
	if err := json.Unmarshal(tj.Lesson, &lesson); err != nil || !lesson.ChatEnabled || lesson.Recording {
		t.Fatalf("joined.lesson %s (%v), want chat on and not recording", tj.Lesson, err)
	}

	// The teacher switches the chat off: everyone is told, the classroom's
	// chat is refused, the teacher's goes through.
	if _, err := teacher.Request(ctx, "setChat", map[string]any{"enabled": false}); err != nil {
		t.Fatalf("setChat: %v", err)
	}
	for _, c := range []*goclient.Client{teacher, a} {
		l := lessonState(t, c, func(l sfu.LessonInfo) bool { return !l.ChatEnabled })
		if l.ID != "ctl" {
			t.Errorf("lessonUpdated for %q", l.ID)
		}
	}
	expectError(t, a, ctx, "chat", map[string]any{"text": "may we talk?"}, CodeChatDisabled)
	expectError(t, a, ctx, "setChat", map[string]any{"enabled": true}, CodeForbidden)
	expectError(t, teacher, ctx, "setChat", map[string]any{"enabled": true, "typo": 1}, CodeBadRequest)
	if err := teacher.Chat(ctx, "Quiet work now."); err != nil {
		t.Fatalf("the teacher's chat while the chat is off: %v", err)
	}
	waitEvent(t, a, "chat", func(d json.RawMessage) bool {
		var c ChatEventData
		return json.Unmarshal(d, &c) == nil && c.Text == "Quiet work now."
	})
	b, bj := ts.join(t, "ctl", sfu.RoleClassroom, "Room B", goclient.Options{})
	if err := json.Unmarshal(bj.Lesson, &lesson); err != nil || lesson.ChatEnabled {
		t.Fatalf("a classroom joining while the chat is off gets %s", bj.Lesson)
	}
	if _, err := teacher.Request(ctx, "setChat", map[string]any{"enabled": true}); err != nil {
		t.Fatalf("setChat on: %v", err)
	}
	lessonState(t, b, func(l sfu.LessonInfo) bool { return l.ChatEnabled })
	if err := a.Chat(ctx, "may we talk?"); err != nil {
		t.Fatalf("classroom chat after the switch is on: %v", err)
	}

	// The recorder's state reaches every page.
	mustRoom(t, ts, "ctl").SetRecording(true)
	for _, c := range []*goclient.Client{teacher, a, b} {
		lessonState(t, c, func(l sfu.LessonInfo) bool { return l.Recording && l.ChatEnabled })
	}

	// The teacher turns the camera off and on: every client is told.
	teacherID := teacher.Self().ID
	cameraOff := func(c *goclient.Client, off bool) {
		t.Helper()
		waitEvent(t, c, "participantUpdated", func(d json.RawMessage) bool {
			var e ParticipantEventData
			return json.Unmarshal(d, &e) == nil && e.Participant.ID == teacherID && e.Participant.CameraOff == off
		})
	}
	if _, err := teacher.Request(ctx, "camera", map[string]any{"off": true}); err != nil {
		t.Fatalf("camera off: %v", err)
	}
	cameraOff(a, true)
	cameraOff(b, true)
	if _, err := teacher.Request(ctx, "camera", map[string]any{"off": false}); err != nil {
		t.Fatalf("camera on: %v", err)
	}
	cameraOff(a, false)
	expectError(t, a, ctx, "camera", map[string]any{"off": "yes"}, CodeBadRequest)
}
