package cascade

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"podium/internal/testenv"
	"podium/sfu"
)

// roomLog records a room's events, as its participants see them.
type roomLog struct {
	mu     sync.Mutex
	events []sfu.Event
}

func recordRoom(t *testing.T, room *sfu.Room) *roomLog {
	l := &roomLog{}
	t.Cleanup(room.OnEvent(func(e sfu.Event) {
		l.mu.Lock()
		l.events = append(l.events, e)
		l.mu.Unlock()
	}))
	return l
}

// chats returns "from: text" for every chat event, in order.
func (l *roomLog) chats() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.events {
		if e.Type == sfu.EventChat {
			out = append(out, e.Chat.From+": "+e.Chat.Text)
		}
	}
	return out
}

func (l *roomLog) chat(text string) (sfu.ChatMessage, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if e.Type == sfu.EventChat && e.Chat.Text == text {
			return *e.Chat, true
		}
	}
	return sfu.ChatMessage{}, false
}

func (l *roomLog) count(match func(sfu.Event) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if match(e) {
			n++
		}
	}
	return n
}

func (l *roomLog) hasChat(text string) func() bool {
	return func() bool { _, ok := l.chat(text); return ok }
}

// silentTrack publishes a track nobody feeds: the control plane is under
// test, not the media.
func silentTrack(t *testing.T, room *sfu.Room, id, participant string) {
	t.Helper()
	tr := sfu.NewTrack(sfu.TrackInfo{ID: id, ParticipantID: participant, Kind: sfu.KindVideo, Source: sfu.SourceCamera,
		Codec: sfu.Codec{MimeType: "video/VP8", ClockRate: 90000}}, nil)
	if err := room.Publish(tr); err != nil {
		t.Fatal(err)
	}
}

func addParticipant(t *testing.T, room *sfu.Room, p sfu.ParticipantInfo) {
	t.Helper()
	if err := room.AddParticipant(p); err != nil {
		t.Fatal(err)
	}
}

// startMirror runs edge's Mirror of the origin at url until the test ends;
// the returned channel gets its result.
func startMirror(t *testing.T, n *cascadeNode, url string) <-chan error {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- n.edge.Mirror(ctx, url, n.room)
	}()
	t.Cleanup(func() { cancel(); <-finished })
	return done
}

// noEventRefused checks that no node refused an event of its peer: none
// sent back what it got, or what was not its to send.
func noEventRefused(t *testing.T, origin, edgeA, edgeB *cascadeNode) {
	t.Helper()
	for name, n := range map[string]float64{
		"edge A from its origin": testutil.ToFloat64(edgeA.metrics.events.WithLabelValues("origin", "rejected")),
		"edge B from its origin": testutil.ToFloat64(edgeB.metrics.events.WithLabelValues("origin", "rejected")),
		"the origin from edges":  testutil.ToFloat64(origin.metrics.events.WithLabelValues("edge", "rejected")),
	} {
		if n != 0 {
			t.Errorf("%s: %v events refused", name, n)
		}
	}
}

func isMuteRequest(track string) func(sfu.Event) bool {
	return func(e sfu.Event) bool { return e.Type == sfu.EventMuteRequest && e.Track.ID == track }
}

// TestControlEventsCrossNodes: one origin with the teacher, two edges
// with a classroom each. Every room shows the same chat, once each and in
// order, with the sender's name and time; a raised hand on an edge shows
// on the origin; the stage, the teacher's mute request for an edge
// classroom's camera (to that edge only) and the teacher speaking reach
// the edges; the lesson's end reaches both edges with its reason.
func TestControlEventsCrossNodes(t *testing.T) {
	o := startCascadeNode(t, "hist-3")
	a := startCascadeNode(t, "hist-3")
	b := startCascadeNode(t, "hist-3")
	addParticipant(t, o.room, sfu.ParticipantInfo{ID: "teacher", Name: "Ms. Li", Role: sfu.RoleTeacher})
	addParticipant(t, a.room, sfu.ParticipantInfo{ID: "village-a", Name: "Village A", Role: sfu.RoleClassroom})
	silentTrack(t, a.room, "a-cam", "village-a")
	addParticipant(t, b.room, sfu.ParticipantInfo{ID: "village-b", Name: "Village B", Role: sfu.RoleClassroom})
	logs := map[string]*roomLog{"origin": recordRoom(t, o.room), "edge A": recordRoom(t, a.room), "edge B": recordRoom(t, b.room)}
	doneA := startMirror(t, a, o.url)
	doneB := startMirror(t, b, o.url)

	// Both edges show the teacher (no track of its own yet), the origin
	// both classrooms and village-a's camera.
	testenv.WaitFor(t, 20*time.Second, "the teacher on both edges and the classrooms on the origin", func() bool {
		_, ta := a.room.Participant("teacher")
		_, tb := b.room.Participant("teacher")
		_, ca := o.room.Participant("village-a")
		_, cb := o.room.Participant("village-b")
		_, cam := o.room.Track("a-cam")
		return ta && tb && ca && cb && cam
	})
	testenv.WaitFor(t, 20*time.Second, "both event streams up", func() bool {
		return testutil.ToFloat64(a.metrics.streams.WithLabelValues("origin")) == 1 &&
			testutil.ToFloat64(b.metrics.streams.WithLabelValues("origin")) == 1 &&
			testutil.ToFloat64(o.metrics.streams.WithLabelValues("edge")) == 2
	})

	// The teacher's chat reaches both edges.
	if err := o.room.Chat("teacher", "good morning"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "the teacher's chat on both edges", func() bool {
		return logs["edge A"].hasChat("good morning")() && logs["edge B"].hasChat("good morning")()
	})
	// An edge classroom's chat reaches the origin and the other edge.
	if err := a.room.Chat("village-a", "we can hear you"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "village-a's chat on the origin and edge B", func() bool {
		return logs["origin"].hasChat("we can hear you")() && logs["edge B"].hasChat("we can hear you")()
	})
	sent, _ := logs["edge A"].chat("we can hear you")
	if got, _ := logs["edge B"].chat("we can hear you"); got.FromName != "Village A" || !got.Time.Equal(sent.Time) {
		t.Fatalf("edge B shows the chat as %+v, want it as sent %+v", got, sent)
	}

	// A raised hand on edge A shows on the origin.
	if err := a.room.RaiseHand("village-a", true); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "village-a's hand on the origin", func() bool {
		p, ok := o.room.Participant("village-a")
		return ok && p.HandRaised
	})

	// The teacher puts village-a on stage: both edges show it.
	if err := o.room.SetStage("village-a"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "the stage on both edges", func() bool { return a.room.Stage() == "village-a" && b.room.Stage() == "village-a" })

	// The teacher mutes village-a's camera: edge A marks it muted and asks
	// its classroom; edge B shows it muted (it is on stage) but is asked
	// nothing.
	if err := o.room.RequestMute("a-cam", true, "teacher"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "the mute request on edge A", func() bool {
		tr, ok := a.room.Track("a-cam")
		return ok && tr.Info().Muted && logs["edge A"].count(isMuteRequest("a-cam")) == 1
	})
	testenv.WaitFor(t, 20*time.Second, "village-a's camera muted on edge B", func() bool {
		tr, ok := b.room.Track("a-cam")
		return ok && tr.Info().Muted
	})

	// The teacher speaks: the edges show it.
	o.room.SetSpeaking("teacher", true)
	testenv.WaitFor(t, 20*time.Second, "the teacher speaking on both edges", func() bool {
		return slices.Contains(a.room.Speakers(), "teacher") && slices.Contains(b.room.Speakers(), "teacher")
	})

	// Last words from both sides: once they are everywhere, nothing
	// earlier can still be on its way.
	if err := o.room.Chat("teacher", "that is all"); err != nil {
		t.Fatal(err)
	}
	if err := a.room.Chat("village-a", "thank you"); err != nil {
		t.Fatal(err)
	}
	for name, l := range logs {
		testenv.WaitFor(t, 20*time.Second, "the last chat on "+name, func() bool { return l.hasChat("that is all")() && l.hasChat("thank you")() })
	}
	want := []string{"teacher: good morning", "village-a: we can hear you"}
	for name, l := range logs {
		got := l.chats()
		if len(got) != 4 || !slices.Equal(got[:2], want) {
			t.Errorf("%s shows chat %q, want %q then the last two once each", name, got, want)
		}
	}
	if n := logs["edge B"].count(isMuteRequest("a-cam")); n != 0 {
		t.Errorf("edge B got %d mute requests for edge A's camera", n)
	}
	if n := logs["edge A"].count(isMuteRequest("a-cam")); n != 1 {
		t.Errorf("edge A got %d mute requests, want 1", n)
	}
	trackUpdates := func(e sfu.Event) bool { return e.Type == sfu.EventTrackUpdated && e.Track.ID == "a-cam" }
	if n := logs["origin"].count(trackUpdates); n != 1 {
		t.Errorf("the origin announced village-a's camera muted %d times, want once (no echo from the edge)", n)
	}
	hands := func(e sfu.Event) bool {
		return e.Type == sfu.EventParticipantUpdated && e.Participant.ID == "village-a"
	}
	if n := logs["origin"].count(hands); n != 1 {
		t.Errorf("the origin announced village-a's hand %d times, want once", n)
	}
	// Nothing was refused: no node sent back what it got.
	noEventRefused(t, o, a, b)

	// The teacher ends the lesson: both edges learn why.
	o.room.End("the teacher ended the lesson")
	for name, done := range map[string]<-chan error{"edge A": doneA, "edge B": doneB} {
		select {
		case err := <-done:
			var ended *EndedError
			if !errors.As(err, &ended) || ended.Reason != "the teacher ended the lesson" || !errors.Is(err, ErrLessonEnded) {
				t.Errorf("%s mirror returned %v, want the lesson ended by the teacher", name, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s did not learn the lesson ended", name)
		}
	}
}

// cutProxy forwards TCP to a target until cut: then it drops every
// connection and refuses new ones until restored.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() { ln.Close(); p.cut(); p.wg.Wait() })
	return p
}

func (p *cutProxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *cutProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		p.wg.Go(func() { _, _ = io.Copy(up, c); up.Close(); c.Close() })
		p.wg.Go(func() { _, _ = io.Copy(c, up); up.Close(); c.Close() })
	}
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *cutProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// TestEventStreamResumesAfterBreak: the link between edge and origin
// breaks; the edge reconnects with backoff (counted in its metrics) and
// resumes where it stopped, so a chat sent during the break arrives once.
func TestEventStreamResumesAfterBreak(t *testing.T) {
	o := startCascadeNode(t, "bio-7")
	e := startCascadeNode(t, "bio-7")
	addParticipant(t, o.room, sfu.ParticipantInfo{ID: "teacher", Name: "Mr. Okafor", Role: sfu.RoleTeacher})
	addParticipant(t, e.room, sfu.ParticipantInfo{ID: "village-c", Role: sfu.RoleClassroom})
	edgeLog := recordRoom(t, e.room)
	proxy := startCutProxy(t, strings.TrimPrefix(o.url, "http://"))
	startMirror(t, e, proxy.url())
	streams := e.metrics.streams.WithLabelValues("origin")
	testenv.WaitFor(t, 20*time.Second, "the event stream up", func() bool { return testutil.ToFloat64(streams) == 1 })

	if err := o.room.Chat("teacher", "one"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "the first chat", edgeLog.hasChat("one"))

	proxy.cut()
	testenv.WaitFor(t, 20*time.Second, "the edge to notice the break", func() bool {
		return testutil.ToFloat64(streams) == 0 && testutil.ToFloat64(e.metrics.reconnects.WithLabelValues("origin")) >= 1
	})
	if err := o.room.Chat("teacher", "two"); err != nil {
		t.Fatal(err)
	}
	// Still cut: retries fail and are counted.
	testenv.WaitFor(t, 20*time.Second, "a failed retry", func() bool {
		return testutil.ToFloat64(e.metrics.reconnects.WithLabelValues("origin")) >= 2
	})
	proxy.restore()
	testenv.WaitFor(t, 20*time.Second, "the event stream back", func() bool { return testutil.ToFloat64(streams) == 1 })
	if err := o.room.Chat("teacher", "three"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "the last chat", edgeLog.hasChat("three"))
	if got, want := edgeLog.chats(), []string{"teacher: one", "teacher: two", "teacher: three"}; !slices.Equal(got, want) {
		t.Fatalf("edge shows chat %q, want %q", got, want)
	}
}

// TestEventStreamRefusesBadInput: the event endpoint refuses requests
// without the key or with bad parameters, and an edge refuses a peer's
// events that are malformed or not the peer's to send, changing nothing.
func TestEventStreamRefusesBadInput(t *testing.T) {
	_, originURL := startOrigin(t, "geo")
	for _, tc := range []struct {
		name, path, key string
		status          int
		code            string
	}{
		{"no key", "geo/events", "", 401, "unauthorized"},
		{"unknown lesson", "chem/events", testKey, 404, "not_found"},
		{"bad scope", "geo/events?scope=all", testKey, 400, "bad_request"},
		{"bad edge", "geo/events?edge=ftp://x", testKey, 400, "bad_request"},
		{"bad after", "geo/events?after=-1", testKey, 400, "bad_request"},
		{"not a websocket", "geo/events", testKey, 400, "bad_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", originURL+PathPrefix+tc.path, nil)
			if tc.key != "" {
				req.Header.Set("Authorization", "Bearer "+tc.key)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var e struct{ Error, Code string }
			_ = json.NewDecoder(res.Body).Decode(&e)
			if res.StatusCode != tc.status || e.Code != tc.code || e.Error == "" {
				t.Fatalf("got %d %+v, want %d %s", res.StatusCode, e, tc.status, tc.code)
			}
		})
	}

	// A bad peer: it lists a teacher, then streams events it must not send.
	long := strings.Repeat("x", maxChatLen+1)
	bad := []sfu.Event{
		{Type: sfu.EventChat, Chat: &sfu.ChatMessage{From: "village-d", Text: "forged from the edge's own classroom"}},
		{Type: sfu.EventChat, Chat: &sfu.ChatMessage{From: "teacher", Text: "  "}},
		{Type: sfu.EventChat, Chat: &sfu.ChatMessage{From: "teacher", Text: long}},
		{Type: sfu.EventChat},
		{Type: "bogus"},
		{Type: sfu.EventChat, Room: "other", Chat: &sfu.ChatMessage{From: "teacher", Text: "wrong lesson"}},
		{Type: sfu.EventMuteRequest, Track: &sfu.TrackInfo{ID: "d-cam", Muted: true}, By: "stranger"},
		{Type: sfu.EventMuteRequest, Track: &sfu.TrackInfo{ID: "nope", Muted: true}, By: "teacher"},
		{Type: sfu.EventTrackUpdated, Track: &sfu.TrackInfo{ID: "d-cam", ParticipantID: "village-d", Muted: true}},
		{Type: sfu.EventParticipantUpdated, Participant: &sfu.ParticipantInfo{ID: "village-d", HandRaised: true}},
	}
	var peer http.ServeMux
	peer.HandleFunc("GET "+PathPrefix+"{lesson}", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(trackList{Participants: []sfu.ParticipantInfo{{ID: "teacher", Name: "T", Role: sfu.RoleTeacher}}, Tracks: []sfu.TrackInfo{}})
	})
	peer.HandleFunc("GET "+PathPrefix+"{lesson}/events", func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		lesson := r.PathValue("lesson")
		_ = conn.WriteJSON(wireEvent{Event: sfu.Event{Type: typeHello, Room: lesson}, Epoch: "bad-peer"})
		for i, e := range bad {
			if e.Room == "" {
				e.Room = lesson
			}
			_ = conn.WriteJSON(wireEvent{Event: e, Seq: uint64(i + 1)})
		}
		// A well-formed chat out of sequence (a replay) is refused too.
		_ = conn.WriteJSON(wireEvent{Event: sfu.Event{Type: sfu.EventChat, Room: lesson,
			Chat: &sfu.ChatMessage{From: "teacher", FromName: "T", Text: "replayed"}}, Seq: 1})
		_ = conn.WriteJSON(wireEvent{Event: sfu.Event{Type: sfu.EventChat, Room: lesson,
			Chat: &sfu.ChatMessage{From: "teacher", FromName: "T", Text: "the only real message"}}, Seq: uint64(len(bad) + 1)})
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	})
	srv := httptest.NewServer(&peer)
	t.Cleanup(srv.Close)

	e := startCascadeNode(t, "geo")
	addParticipant(t, e.room, sfu.ParticipantInfo{ID: "village-d", Role: sfu.RoleClassroom})
	silentTrack(t, e.room, "d-cam", "village-d")
	l := recordRoom(t, e.room)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.edge.Mirror(ctx, srv.URL, e.room) }()
	t.Cleanup(func() { cancel(); <-done; srv.CloseClientConnections() })

	testenv.WaitFor(t, 20*time.Second, "the peer's one good event", l.hasChat("the only real message"))
	if got := l.chats(); !slices.Equal(got, []string{"teacher: the only real message"}) {
		t.Errorf("edge shows chat %q, want only the good one", got)
	}
	if n := testutil.ToFloat64(e.metrics.events.WithLabelValues("origin", "rejected")); n != float64(len(bad)+1) {
		t.Errorf("%v events rejected, want %d", n, len(bad)+1)
	}
	if tr, _ := e.room.Track("d-cam"); tr.Info().Muted {
		t.Error("a forged event muted the edge's own camera")
	}
	if p, _ := e.room.Participant("village-d"); p.HandRaised {
		t.Error("a forged event raised the edge's own classroom's hand")
	}
	if n := l.count(isMuteRequest("d-cam")); n != 0 {
		t.Errorf("%d forged mute requests reached the classroom", n)
	}
}

// TestControlStateCrossesNodes: the lesson's control state is the same on
// every node. The teacher on the origin switches the chat off, records,
// turns the camera off and mutes an edge classroom: the edge's pages show
// all of it (the classroom "muted by the teacher", unable to lift it), and
// an edge that starts mirroring later finds the chat off. A classroom
// muting itself on its edge shows on the origin's roster.
func TestControlStateCrossesNodes(t *testing.T) {
	o := startCascadeNode(t, "geo-5")
	a := startCascadeNode(t, "geo-5")
	b := startCascadeNode(t, "geo-5")
	addParticipant(t, o.room, sfu.ParticipantInfo{ID: "teacher", Name: "Mr. Osei", Role: sfu.RoleTeacher})
	silentTrack(t, o.room, "t-cam", "teacher")
	addParticipant(t, a.room, sfu.ParticipantInfo{ID: "village-a", Name: "Village A", Role: sfu.RoleClassroom})
	mic := sfu.NewTrack(sfu.TrackInfo{ID: "a-mic", ParticipantID: "village-a", Kind: sfu.KindAudio, Source: sfu.SourceMicrophone,
		Codec: sfu.Codec{MimeType: "audio/opus", ClockRate: 48000, Channels: 2}}, nil)
	if err := a.room.Publish(mic); err != nil {
		t.Fatal(err)
	}
	startMirror(t, a, o.url)
	testenv.WaitFor(t, 20*time.Second, "the teacher on edge A and village-a on the origin", func() bool {
		_, ta := a.room.Participant("teacher")
		_, ca := o.room.Participant("village-a")
		_, am := o.room.Track("a-mic")
		return ta && ca && am && testutil.ToFloat64(a.metrics.streams.WithLabelValues("origin")) == 1
	})

	// Chat off and recording, on the origin: edge A shows both and refuses
	// its classroom's chat.
	if err := o.room.SetChatEnabled(false); err != nil {
		t.Fatal(err)
	}
	o.room.SetRecording(true)
	testenv.WaitFor(t, 20*time.Second, "chat off and recording on edge A", func() bool {
		info := a.room.Info()
		return !info.ChatEnabled && info.Recording
	})
	if err := a.room.Chat("village-a", "can we ask?"); !errors.Is(err, sfu.ErrChatDisabled) {
		t.Errorf("edge A took its classroom's chat while the teacher has it off: %v", err)
	}

	// The teacher's camera off: edge A's classrooms are told.
	if err := o.room.SetCameraOff("teacher", true); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "the teacher's camera off on edge A", func() bool {
		p, _ := a.room.Participant("teacher")
		tr, ok := a.room.Track("t-cam")
		return p.CameraOff && (!ok || tr.Info().Muted)
	})

	// The teacher mutes village-a: on its edge it is muted by the teacher,
	// and the classroom cannot lift it itself.
	if err := o.room.SetMicMuted("village-a", true, sfu.MutedByTeacher, "teacher"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "village-a muted by the teacher on edge A", func() bool {
		p, _ := a.room.Participant("village-a")
		tr, _ := a.room.Track("a-mic")
		return p.MicMuted && p.MicMutedBy == sfu.MutedByTeacher && tr.Info().Muted
	})
	if err := a.room.SetMicMuted("village-a", false, sfu.MutedBySelf, ""); !errors.Is(err, sfu.ErrMutedByTeacher) {
		t.Errorf("village-a lifted the teacher's mute itself: %v", err)
	}
	// The teacher lifts it; village-a then mutes itself on its edge: the
	// origin's roster shows it muted by itself.
	if err := o.room.SetMicMuted("village-a", false, sfu.MutedByTeacher, "teacher"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "village-a unmuted on edge A", func() bool {
		p, _ := a.room.Participant("village-a")
		return !p.MicMuted
	})
	if err := a.room.SetMicMuted("village-a", true, sfu.MutedBySelf, ""); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "village-a muted by itself on the origin", func() bool {
		p, _ := o.room.Participant("village-a")
		return p.MicMuted && p.MicMutedBy == sfu.MutedBySelf
	})

	// An edge that starts mirroring now finds the chat off and the
	// recording on from the origin's list.
	startMirror(t, b, o.url)
	testenv.WaitFor(t, 20*time.Second, "chat off and recording on edge B", func() bool {
		info := b.room.Info()
		p, _ := b.room.Participant("teacher")
		return !info.ChatEnabled && info.Recording && p.CameraOff
	})

	noEventRefused(t, o, a, b)
}
