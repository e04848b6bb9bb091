package signaling

import (
	"context"
	"encoding/json"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"podium/clients/goclient"
	"podium/internal/testmedia"
	"podium/sfu"
)

// packetCounter counts the RTP packets a client receives per
// participantId/source (audio and video alike).
type packetCounter struct {
	mu sync.Mutex
	n  map[string]*atomic.Int64
}

func newPacketCounter() *packetCounter { return &packetCounter{n: map[string]*atomic.Int64{}} }

func (pc *packetCounter) counter(k string) *atomic.Int64 {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	c := pc.n[k]
	if c == nil {
		c = &atomic.Int64{}
		pc.n[k] = c
	}
	return c
}

func (pc *packetCounter) onTrack(rt goclient.RemoteTrack) {
	c := pc.counter(key(rt.Info))
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := rt.Track.Read(buf); err != nil {
				return
			}
			c.Add(1)
		}
	}()
}

// flowing reports whether packets of k arrive: more than min within d.
func (pc *packetCounter) flowing(k string, d time.Duration, min int64) bool {
	c := pc.counter(k)
	before := c.Load()
	time.Sleep(d)
	return c.Load()-before > min
}

// waitFlowing waits (up to 15 s) until packets of k flow or stop.
func (pc *packetCounter) waitFlowing(t *testing.T, k string, want bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		// 50 Opus packets a second: over 400 ms a flowing track sends
		// about 20, a stopped one none (a few in flight at the switch).
		if got := pc.flowing(k, 400*time.Millisecond, 3); got == want {
			return
		}
	}
	t.Fatalf("packets of %s flowing: want %v within 15 s (have %d)", k, want, pc.counter(k).Load())
}

// micState waits for a participantUpdated about id with the microphone
// state given, and returns how long it took from start.
func micState(t *testing.T, c *goclient.Client, id string, muted bool, by string, start time.Time) time.Duration {
	t.Helper()
	waitEvent(t, c, "participantUpdated", func(d json.RawMessage) bool {
		var p ParticipantEventData
		if err := json.Unmarshal(d, &p); err != nil {
			return false
		}
		return p.Participant.ID == id && p.Participant.MicMuted == muted && p.Participant.MicMutedBy == by
	})
	return time.Since(start)
}

// publishMic publishes an Opus microphone (track id "mic-<self>") playing
// the file in a loop until the test ends.
func publishMic(t *testing.T, c *goclient.Client, opus string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	self := c.Self().ID
	mic, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "mic-"+self, "s-"+self)
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
	defer pcancel()
	if err := c.Publish(pctx, goclient.LocalTrack{Track: mic, Source: "microphone"}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = testmedia.PlayOgg(ctx, opus, mic, true) }()
}

// TestMuteIsServerState: a classroom muting itself and the teacher muting
// it are one state on the server, announced to everyone, and the
// microphone's packets really stop reaching the teacher. How long the state
// took to reach every client is logged (the goal is 300 ms), not asserted.
func TestMuteIsServerState(t *testing.T) {
	files := testmedia.ForTest(t)
	ts := newTestServer(t)
	ctx := testCtx(t)
	heard := newPacketCounter()
	teacher, _ := ts.join(t, "mute", sfu.RoleTeacher, "T", goclient.Options{OnTrack: heard.onTrack})
	a, _ := ts.join(t, "mute", sfu.RoleClassroom, "Room A", goclient.Options{})
	b, _ := ts.join(t, "mute", sfu.RoleClassroom, "Room B", goclient.Options{})
	aID := a.Self().ID
	aMic := aID + "/microphone"
	publishMic(t, a, files.Opus)
	heard.waitFlowing(t, aMic, true)

	everyone := []*goclient.Client{teacher, a, b}
	var delays []time.Duration
	took := func(_, _ string, d time.Duration) { delays = append(delays, d) }
	reachesEveryone := func(what string, start time.Time, muted bool, by string) {
		t.Helper()
		for _, c := range everyone {
			took(what, c.Self().Name, micState(t, c, aID, muted, by, start))
		}
	}

	// The classroom mutes itself with its own MediaStreamTrack id, as the
	// older page did: everyone sees it, the teacher hears nothing.
	start := time.Now()
	if err := a.Mute(ctx, "mic-"+aID, true); err != nil {
		t.Fatalf("self-mute by local track id: %v", err)
	}
	reachesEveryone("self-mute", start, true, sfu.MutedBySelf)
	heard.waitFlowing(t, aMic, false)
	if tr, ok := teacher.Track(aID + "-microphone"); !ok || !tr.Muted {
		t.Fatalf("teacher's view of the track after self-mute: %+v (found %v), want muted", tr, ok)
	}
	start = time.Now()
	if err := a.MuteParticipant(ctx, aID, false); err != nil {
		t.Fatalf("self-unmute: %v", err)
	}
	reachesEveryone("self-unmute", start, false, "")
	heard.waitFlowing(t, aMic, true)

	// The teacher mutes the classroom: everyone sees "by teacher", the
	// classroom is asked (muteRequest), the packets stop.
	start = time.Now()
	if err := teacher.MuteParticipant(ctx, aID, true); err != nil {
		t.Fatalf("teacher mute: %v", err)
	}
	// The muteRequest (what older pages act on) comes just before.
	waitEvent(t, a, "muteRequest", func(d json.RawMessage) bool {
		var r MuteRequestData
		return json.Unmarshal(d, &r) == nil && r.ParticipantID == aID && r.Muted && r.By == teacher.Self().ID
	})
	reachesEveryone("teacher mute", start, true, sfu.MutedByTeacher)
	heard.waitFlowing(t, aMic, false)

	// The classroom cannot lift it, neither by participant nor by track id;
	// muting itself again changes nothing. Another classroom cannot
	// unmute it either. It may raise its hand.
	expectError(t, a, ctx, "mute", map[string]any{"participantId": aID, "muted": false}, CodeMutedByTeacher)
	expectError(t, a, ctx, "mute", map[string]any{"trackId": aID + "-microphone", "muted": false}, CodeMutedByTeacher)
	expectError(t, b, ctx, "mute", map[string]any{"participantId": aID, "muted": false}, CodeForbidden)
	expectError(t, a, ctx, "mute", map[string]any{"participantId": aID, "trackId": "x", "muted": false}, CodeBadRequest)
	expectError(t, teacher, ctx, "mute", map[string]any{"participantId": "nobody", "muted": true}, CodeNotFound)
	if err := a.MuteParticipant(ctx, aID, true); err != nil {
		t.Fatalf("self-mute while muted by the teacher: %v", err)
	}
	if err := a.RaiseHand(ctx, true); err != nil {
		t.Fatalf("raise hand while muted: %v", err)
	}
	if p, _ := mustRoom(t, ts, "mute").Participant(aID); !p.MicMuted || p.MicMutedBy != sfu.MutedByTeacher || !p.HandRaised {
		t.Fatalf("room state %+v, want muted by the teacher with the hand up", p)
	}
	if heard.flowing(aMic, 500*time.Millisecond, 0) {
		t.Fatal("the muted classroom's microphone reached the teacher")
	}

	// The teacher's mute outlives a reconnect: the same classroom comes
	// back muted, and its new microphone is not forwarded.
	_ = a.Close()
	a2, j := ts.join(t, "mute", sfu.RoleClassroom, "Room A", goclient.Options{})
	if j.Participant.ID != aID || !j.Participant.MicMuted || j.Participant.MicMutedBy != sfu.MutedByTeacher {
		t.Fatalf("rejoined as %+v, want %s muted by the teacher", j.Participant, aID)
	}
	publishMic(t, a2, files.Opus)
	waitEvent(t, teacher, "trackPublished", func(d json.RawMessage) bool {
		var e TrackEventData
		return json.Unmarshal(d, &e) == nil && e.Track.ParticipantID == aID && e.Track.Source == sfu.SourceMicrophone && e.Track.Muted
	})
	if heard.flowing(aMic, time.Second, 0) {
		t.Fatal("the muted classroom's new microphone reached the teacher")
	}
	everyone = []*goclient.Client{teacher, a2, b}

	// Unmute-all lifts it; mute-all mutes every classroom, including one
	// without a microphone.
	start = time.Now()
	if err := teacher.MuteAll(ctx, false); err != nil {
		t.Fatalf("unmute all: %v", err)
	}
	reachesEveryone("unmute all", start, false, "")
	heard.waitFlowing(t, aMic, true)
	expectError(t, b, ctx, "muteAll", map[string]bool{"muted": true}, CodeForbidden)
	start = time.Now()
	if err := teacher.MuteAll(ctx, true); err != nil {
		t.Fatalf("mute all: %v", err)
	}
	for _, c := range everyone {
		seen := map[string]bool{}
		waitEvent(t, c, "participantUpdated", func(d json.RawMessage) bool {
			var p ParticipantEventData
			if json.Unmarshal(d, &p) == nil && p.Participant.MicMuted && p.Participant.MicMutedBy == sfu.MutedByTeacher {
				seen[p.Participant.ID] = true
			}
			return seen[aID] && seen[b.Self().ID]
		})
		took("mute all", c.Self().Name, time.Since(start))
	}
	heard.waitFlowing(t, aMic, false)
	if p, _ := mustRoom(t, ts, "mute").Participant(teacher.Self().ID); p.MicMuted {
		t.Fatal("mute all muted the teacher")
	}
	sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
	t.Logf("state reached every client in %v (median) .. %v (max), %d deliveries", delays[len(delays)/2], delays[len(delays)-1], len(delays))
}

func mustRoom(t *testing.T, ts *testServer, id string) *sfu.Room {
	t.Helper()
	r, ok := ts.SFU.Rooms.Room(id)
	if !ok {
		t.Fatalf("no lesson %q", id)
	}
	return r
}
