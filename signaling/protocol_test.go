package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"podium/clients/goclient"
	"podium/sfu"
	"podium/signaling/auth"
)

// readReply reads raw messages until one with the id (or, for id "", the
// first error) arrives.
func expectError(t *testing.T, c *goclient.Client, ctx context.Context, typ string, data any, code string) {
	t.Helper()
	_, err := c.Request(ctx, typ, data)
	var e *goclient.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("%s: got %v, want error %s", typ, err, code)
	}
	if e.Message == "" {
		t.Fatalf("%s: error %s without a message", typ, code)
	}
}

func TestProtocolBadMessagesChangeNothing(t *testing.T) {
	ts := newTestServer(t)
	ctx := testCtx(t)
	c := ts.dial(t, "lesson-1", sfu.RoleTeacher, "Ann", goclient.Options{})

	// Before join: nothing but join and ping is accepted.
	expectError(t, c, ctx, "offer", map[string]string{"sdp": "v=0"}, CodeNotJoined)
	expectError(t, c, ctx, "chat", map[string]string{"text": "hi"}, CodeNotJoined)
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping before join: %v", err)
	}
	if _, ok := ts.SFU.Rooms.Room("lesson-1"); ok {
		t.Fatal("no lesson may exist before the teacher joins")
	}

	// Envelope errors: raw frames, replies matched by id where there is one.
	raw := func(frame string, wantCode string) {
		t.Helper()
		if err := c.SendRaw([]byte(frame)); err != nil {
			t.Fatal(err)
		}
		for {
			select {
			case m := <-c.Events():
				if m.Type != "error" {
					continue
				}
				var e ErrorData
				_ = json.Unmarshal(m.Data, &e)
				if e.Code != wantCode {
					t.Fatalf("frame %q: error %s (%s), want %s", frame, e.Code, e.Message, wantCode)
				}
				return
			case <-ctx.Done():
				t.Fatalf("frame %q: no error", frame)
			}
		}
	}
	raw(`{not json`, CodeBadJSON)
	raw(`[1,2]`, CodeBadJSON)
	raw(`{"v":2,"type":"join"}`, CodeUnsupportedVersion)
	raw(`{"v":1,"type":"dance"}`, CodeUnknownType)
	raw(`{"v":1}`, CodeBadRequest)
	raw(`{"v":1,"type":"join","data":{"autoSubscribe":"yes"}}`, CodeBadRequest)

	j, err := c.Join(ctx, true)
	if err != nil {
		t.Fatalf("join after bad messages: %v", err)
	}
	if j.Participant.Role != "teacher" || j.Protocol != 1 {
		t.Fatalf("joined = %+v", j)
	}
	expectError(t, c, ctx, "join", nil, CodeAlreadyJoined)
	expectError(t, c, ctx, "offer", map[string]any{"sdp": "this is not sdp"}, CodeBadSDP)
	expectError(t, c, ctx, "offer", map[string]any{}, CodeBadRequest)
	expectError(t, c, ctx, "offer", map[string]any{"sdp": "v=0", "tracks": []map[string]string{{"trackId": "x", "source": "hologram"}}}, CodeBadRequest)
	expectError(t, c, ctx, "answer", map[string]any{"sdp": "garbage"}, CodeBadSDP)
	expectError(t, c, ctx, "trickle", map[string]any{"target": "sideways", "candidate": map[string]string{"candidate": ""}}, CodeBadRequest)
	expectError(t, c, ctx, "chat", map[string]string{"text": ""}, CodeBadRequest)
	expectError(t, c, ctx, "chat", map[string]string{"text": strings.Repeat("x", 1001)}, CodeBadRequest)
	expectError(t, c, ctx, "chat", map[string]any{"text": "hi", "extra": 1}, CodeBadRequest)
	expectError(t, c, ctx, "stage", map[string]string{"participantId": "nobody"}, CodeNotFound)
	expectError(t, c, ctx, "subscribe", map[string]any{"trackIds": []string{"nope"}}, CodeNotFound)
	expectError(t, c, ctx, "mute", map[string]any{"trackId": "nope", "muted": true}, CodeNotFound)
	expectError(t, c, ctx, "setMaxLayer", map[string]any{"trackId": "x", "layer": 9}, CodeBadRequest)

	// The session still works, and the lesson is as it was.
	if err := c.Chat(ctx, "still here"); err != nil {
		t.Fatalf("chat after errors: %v", err)
	}
	waitEvent(t, c, "chat", func(d json.RawMessage) bool { return strings.Contains(string(d), "still here") })
	room, ok := ts.SFU.Rooms.Room("lesson-1")
	if !ok || len(room.Participants()) != 1 || len(room.Tracks()) != 0 || room.Stage() != "" {
		t.Fatalf("lesson state changed by bad messages")
	}
}

func TestProtocolRolesAndRateLimits(t *testing.T) {
	ts := newTestServer(t)
	ctx := testCtx(t)
	teacher, _ := ts.join(t, "l2", sfu.RoleTeacher, "T", goclient.Options{})
	cls, _ := ts.join(t, "l2", sfu.RoleClassroom, "Room A", goclient.Options{})
	viewer, _ := ts.join(t, "l2", sfu.RoleViewer, "V", goclient.Options{})

	expectError(t, cls, ctx, "stage", map[string]string{"participantId": cls.Self().ID}, CodeForbidden)
	expectError(t, cls, ctx, "endLesson", nil, CodeForbidden)
	expectError(t, cls, ctx, "offer", map[string]any{"sdp": "v=0", "tracks": []map[string]string{{"trackId": "s", "source": "screen"}}}, CodeForbidden)
	expectError(t, viewer, ctx, "offer", map[string]any{"sdp": "v=0"}, CodeForbidden)

	// A teacher can put the classroom on stage; a viewer cannot be.
	if err := teacher.Stage(ctx, cls.Self().ID); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, viewer, "stage", func(d json.RawMessage) bool { return strings.Contains(string(d), cls.Self().ID) })
	expectError(t, teacher, ctx, "stage", map[string]string{"participantId": viewer.Self().ID}, CodeForbidden)

	// Raise hand reaches the teacher.
	if err := cls.RaiseHand(ctx, true); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, teacher, "participantUpdated", func(d json.RawMessage) bool {
		var p ParticipantEventData
		_ = json.Unmarshal(d, &p)
		return p.Participant.ID == cls.Self().ID && p.Participant.HandRaised
	})

	// Chat floods are refused, not relayed.
	limited := false
	for i := 0; i < 20; i++ {
		err := cls.Chat(ctx, "spam")
		var e *goclient.Error
		if errors.As(err, &e) && e.Code == CodeRateLimited {
			limited = true
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !limited {
		t.Fatal("20 chat messages at once were never rate limited")
	}
	if err := cls.Ping(ctx); err != nil {
		t.Fatalf("session broken by rate limiting: %v", err)
	}

	// Quality arrives: the teacher sees everyone, the classroom only itself.
	waitEvent(t, teacher, "quality", func(d json.RawMessage) bool {
		var q QualityData
		_ = json.Unmarshal(d, &q)
		return len(q.Participants) == 3
	})
	waitEvent(t, cls, "quality", func(d json.RawMessage) bool {
		var q QualityData
		_ = json.Unmarshal(d, &q)
		_, own := q.Participants[cls.Self().ID]
		return len(q.Participants) == 1 && own
	})
}

func TestWebsocketAuthRefusals(t *testing.T) {
	ts := newTestServer(t)
	ctx := testCtx(t)
	past, _ := auth.NewIssuer(testSecret)
	forger, _ := auth.NewIssuer("some-other-secret-0123456789")
	forged, _, _ := forger.Issue(auth.Request{Room: "r", Role: sfu.RoleTeacher, Name: "T", TTL: time.Hour})
	expired := func() string {
		// an expired token: issue with a 1 s TTL and wait it out (+ leeway)
		tok, _, _ := past.Issue(auth.Request{Room: "r", Role: sfu.RoleTeacher, Name: "T", TTL: time.Second})
		return tok
	}()
	for _, tc := range []struct {
		name   string
		token  string
		status int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"garbage", "abc", http.StatusUnauthorized},
		{"forged", forged, http.StatusUnauthorized},
		{"admin cannot join", ts.token(t, "r", sfu.RoleAdmin, "ops"), http.StatusForbidden},
		{"classroom before the teacher", ts.token(t, "r", sfu.RoleClassroom, "A"), http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := goclient.Dial(ctx, ts.URL, tc.token, goclient.Options{})
			var he *goclient.HTTPError
			if !errors.As(err, &he) || he.Status != tc.status || he.Message == "" {
				t.Fatalf("dial = %v, want HTTP %d with a message", err, tc.status)
			}
		})
	}
	if len(ts.SFU.Rooms.List()) != 0 {
		t.Fatal("refused clients created a lesson")
	}
	_ = expired
}

func TestOversizedMessageClosesSocket(t *testing.T) {
	ts := newTestServer(t)
	c := ts.dial(t, "big", sfu.RoleTeacher, "T", goclient.Options{})
	big := `{"v":1,"type":"chat","data":{"text":"` + strings.Repeat("a", MaxMessageSize) + `"}}`
	if err := c.SendRaw([]byte(big)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("socket still open after a message over 64 KiB")
	}
	_, _, err := c.Conn().ReadMessage()
	if err != nil && !websocket.IsCloseError(err, websocket.CloseMessageTooBig) && !strings.Contains(err.Error(), "close") && !strings.Contains(err.Error(), "use of closed") {
		t.Logf("read after close: %v", err)
	}
}

func TestRejoinReplacesOldSession(t *testing.T) {
	ts := newTestServer(t)
	ctx := testCtx(t)
	teacher, _ := ts.join(t, "rj", sfu.RoleTeacher, "T", goclient.Options{})
	first, _ := ts.join(t, "rj", sfu.RoleClassroom, "A", goclient.Options{})
	second, j := ts.join(t, "rj", sfu.RoleClassroom, "A", goclient.Options{})
	if j.Participant.ID != first.Self().ID {
		t.Fatalf("same identity got another id: %s vs %s", j.Participant.ID, first.Self().ID)
	}
	select {
	case <-first.Done():
	case <-ctx.Done():
		t.Fatal("the replaced session stayed open")
	}
	waitEvent(t, teacher, "participantLeft", nil)
	waitEvent(t, teacher, "participantJoined", func(d json.RawMessage) bool { return strings.Contains(string(d), j.Participant.ID) })
	room, _ := ts.SFU.Rooms.Room("rj")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ps := room.Participants()
		if len(ps) == 2 && ps[1].ID == j.Participant.ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("participants after rejoin: %+v, want the teacher and one %s", ps, j.Participant.ID)
		}
	}
	if err := second.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}
