package signaling

import (
	"context"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"podium/clients/goclient"
	"podium/internal/testenv"
	"podium/internal/testmedia"
	"podium/sfu"
)

// An encoder that publishes again with the same identity, without DELETE
// (it lost its network, or was restarted), replaces its stale session at
// once: the old session is gone from the lesson, the new one feeds the
// same tracks, a WHEP player already watching decodes the new publisher's
// picture without reconnecting, and a new player gets live tracks.
func TestWHIPReconnectReplacesStaleSession(t *testing.T) {
	files := testmedia.ForTest(t)
	testenv.RequireBinary(t, "ffprobe")
	ts := newTestServer(t)
	const room = "studio-again"

	// The first session sends the 640-pixel picture, the second the
	// 320-pixel one, so the player's decoded frames tell who it sees.
	first := startWHIPPlaying(t, ts, room, "OBS", nil, files.VP8[1])
	testenv.WaitFor(t, 20*time.Second, "the 2 WHIP tracks to be published", func() bool {
		r, ok := ts.SFU.Rooms.Room(room)
		return ok && len(r.Tracks()) == 2
	})
	lesson, _ := ts.SFU.Rooms.Room(room)
	trackIDs := func() []string {
		var ids []string
		for _, tr := range lesson.Tracks() {
			ids = append(ids, tr.ID())
		}
		return ids
	}
	before := trackIDs()

	watching, player := watchCaptured(t, ts, room, "V")
	watching.waitPackets("whep/camera", 60)

	// The encoder goes quiet with its connection still open (no DELETE),
	// then publishes again with a token of the same identity.
	first.stop()
	second := startWHIPPlaying(t, ts, room, "OBS", nil, files.VP8[0])
	replacedAt := time.Now()

	// The old session is gone at once: its resource answers 404, the
	// lesson holds one publisher, and the tracks kept their ids.
	req, _ := http.NewRequest(http.MethodDelete, first.sess.Location, nil)
	req.Header.Set("Authorization", "Bearer "+ts.token(t, room, sfu.RoleTeacher, "OBS"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("DELETE of the replaced session = %d, want 404 (gone)", resp.StatusCode)
	}
	publishers := 0
	for _, p := range lesson.Participants() {
		if p.Role == sfu.RoleTeacher {
			publishers++
		}
	}
	if publishers != 1 {
		t.Errorf("%d publishers in the lesson after the reconnect, want 1: %+v", publishers, lesson.Participants())
	}
	ts.Sig.mu.Lock()
	whip := 0
	for _, hs := range ts.Sig.resources {
		if hs.kind == "whip" && hs.room == room {
			whip++
		}
	}
	ts.Sig.mu.Unlock()
	if whip != 1 {
		t.Errorf("%d WHIP sessions of the lesson, want 1", whip)
	}
	if after := trackIDs(); !slices.Equal(after, before) {
		t.Errorf("tracks after the reconnect %v, want the same ids %v", after, before)
	}

	// The player already watching sees the new publisher's picture.
	testenv.WaitFor(t, 30*time.Second, "the watching player to decode the new publisher's frames", func() bool {
		return slices.Contains(frameWidthsSoFar(t, watching, "whep/camera"), 320)
	})
	t.Logf("the watching player decoded the new publisher's picture %.1f s after the reconnect", time.Since(replacedAt).Seconds())

	// A player arriving now gets live tracks.
	fresh, late := watchCaptured(t, ts, room, "V2")
	fresh.waitPackets("whep/camera", 60)
	if n := fresh.decodedFrames("whep/camera"); n < 5 {
		t.Fatalf("a player joining after the reconnect decoded %d frames", n)
	}

	// The encoder stops for good (DELETE): the players have nothing left
	// to watch, and their sessions end, so they see their connections
	// close instead of sitting on dead tracks.
	if err := second.sess.Close(context.Background()); err != nil {
		t.Fatalf("DELETE of the new session: %v", err)
	}
	testenv.WaitFor(t, 45*time.Second, "the players' sessions to end with the publisher", func() bool {
		ts.Sig.mu.Lock()
		defer ts.Sig.mu.Unlock()
		for _, hs := range ts.Sig.resources {
			if hs.room == room {
				return false
			}
		}
		return true
	})
	for _, pc := range []*webrtc.PeerConnection{player.PC, late.PC} {
		testenv.WaitFor(t, 45*time.Second, "a player's connection to close", func() bool {
			st := pc.ConnectionState()
			return st == webrtc.PeerConnectionStateClosed || st == webrtc.PeerConnectionStateFailed
		})
	}
}

// watchCaptured starts a WHEP player whose camera goes to a capture (key
// "whep/camera").
func watchCaptured(t *testing.T, ts *testServer, room, name string) (*videoCapture, *goclient.HTTPSession) {
	t.Helper()
	vc := newVideoCapture(t)
	player, err := goclient.WHEPWatch(testCtx(t), nil, ts.URL, room, ts.token(t, room, sfu.RoleViewer, name), func(tr *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		vc.onTrack(goclient.RemoteTrack{Track: tr, Receiver: r, Info: goclient.TrackInfo{ParticipantID: "whep", Source: "camera"}})
	})
	if err != nil {
		t.Fatalf("WHEP: %v", err)
	}
	t.Cleanup(func() { _ = player.PC.Close() })
	return vc, player
}

// frameWidthsSoFar decodes what a capture has written up to now (the file
// keeps growing, so a cut last frame is no error) and returns each
// frame's width.
func frameWidthsSoFar(t *testing.T, vc *videoCapture, k string) []int {
	t.Helper()
	vc.mu.Lock()
	path := vc.files[k]
	vc.mu.Unlock()
	if path == "" {
		return nil
	}
	out, _ := exec.Command(testenv.RequireBinary(t, "ffprobe"), "-v", "quiet", "-select_streams", "v:0",
		"-show_entries", "frame=width", "-of", "csv=p=0", path).Output()
	var ws []int
	for _, l := range strings.Fields(string(out)) {
		if w, err := strconv.Atoi(strings.Trim(l, ",")); err == nil {
			ws = append(ws, w)
		}
	}
	return ws
}
