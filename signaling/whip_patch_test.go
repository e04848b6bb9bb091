package signaling

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"podium/clients/goclient"
	"podium/internal/sdpfrag"
	"podium/internal/testenv"
	"podium/sfu"
)

// WHIP and WHEP PATCH (RFC 9725 §4.3) with real pion peers: trickled
// candidates are taken; a PATCH that is stale (wrong ETag), of the wrong
// type, for no session, or a restart without If-Match is refused and
// changes nothing; an ICE restart of the player and of the publisher gives
// new credentials and a new ETag, and the player keeps receiving the
// picture after both.
func TestWHIPWHEPPatchTrickleAndICERestart(t *testing.T) {
	ts := newTestServer(t)
	const room = "patchy"
	pub := startWHIP(t, ts, room, "OBS", nil)
	testenv.WaitFor(t, 20*time.Second, "the 2 WHIP tracks to be published", func() bool {
		r, ok := ts.SFU.Rooms.Room(room)
		return ok && len(r.Tracks()) == 2
	})
	viewer := ts.token(t, room, sfu.RoleViewer, "V")
	var videoPackets atomic.Int64
	player, err := goclient.WHEPWatch(testCtx(t), nil, ts.URL, room, viewer, func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		go func() {
			buf := make([]byte, 1500)
			for {
				if _, _, err := tr.Read(buf); err != nil {
					return
				}
				if tr.Kind() == webrtc.RTPCodecTypeVideo {
					videoPackets.Add(1)
				}
			}
		}()
	})
	if err != nil {
		t.Fatalf("WHEP: %v", err)
	}
	defer player.PC.Close()
	receiving := func(what string) {
		t.Helper()
		from := videoPackets.Load()
		// 150 packets are a few seconds of the 640x360 picture: longer
		// than media could flow on a path ICE gave up.
		testenv.WaitFor(t, 30*time.Second, what, func() bool { return videoPackets.Load() >= from+150 })
	}
	receiving("the player to receive the picture")
	if player.ETag == "" || pub.sess.ETag == "" {
		t.Fatalf("no ETag in the 201 replies (player %q, publisher %q)", player.ETag, pub.sess.ETag)
	}

	// Trickle: the player's own candidates again, as a late trickle.
	local := sdpfrag.FromSDP(player.PC.LocalDescription().SDP)
	if err := player.Trickle(testCtx(t), local.Candidates); err != nil {
		t.Fatalf("trickle: %v", err)
	}

	// Refused PATCHes change nothing.
	session := func(loc string) *httpSession {
		ts.Sig.mu.Lock()
		defer ts.Sig.mu.Unlock()
		return ts.Sig.resources[loc[strings.LastIndex(loc, "/")+1:]]
	}
	hs := session(player.Location)
	hs.mu.Lock()
	etag, ufrag := hs.etag, hs.ufrag
	hs.mu.Unlock()
	restartBody := sdpfrag.Frag{Ufrag: "newufrag", Pwd: "newpasswordnewpassword", Media: local.Media, Mid: local.Mid}.String()
	for _, tc := range []struct {
		name, location, contentType, ifMatch, body string
		want                                       int
	}{
		{"stale ETag", player.Location, sdpfrag.MediaType, `"not-the-session"`, restartBody, http.StatusPreconditionFailed},
		{"wrong content type", player.Location, "application/sdp", "*", restartBody, http.StatusUnsupportedMediaType},
		{"unknown session", strings.TrimSuffix(player.Location, hs.id) + "0123456789abcdef01234567", sdpfrag.MediaType, "*", restartBody, http.StatusNotFound},
		{"restart without If-Match", player.Location, sdpfrag.MediaType, "", restartBody, http.StatusPreconditionRequired},
		{"not a fragment", player.Location, sdpfrag.MediaType, "*", "v=0\r\nhello\r\n", http.StatusBadRequest},
	} {
		req, _ := http.NewRequest(http.MethodPatch, tc.location, strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+viewer)
		req.Header.Set("Content-Type", tc.contentType)
		if tc.ifMatch != "" {
			req.Header.Set("If-Match", tc.ifMatch)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: PATCH = %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
	hs.mu.Lock()
	if hs.etag != etag || hs.ufrag != ufrag {
		t.Errorf("refused PATCHes changed the ICE session: etag %s→%s ufrag %s→%s", etag, hs.etag, ufrag, hs.ufrag)
	}
	hs.mu.Unlock()
	if st := player.PC.ConnectionState(); st != webrtc.PeerConnectionStateConnected {
		t.Errorf("after refused PATCHes the player is %s", st)
	}
	receiving("the picture after the refused PATCHes")

	// ICE restart of the player, then of the publisher.
	for _, s := range []struct {
		name string
		sess *goclient.HTTPSession
	}{{"player", player}, {"publisher", pub.sess}} {
		oldETag := s.sess.ETag
		oldUfrag := sdpfrag.FromSDP(s.sess.PC.RemoteDescription().SDP).Ufrag
		if err := s.sess.RestartICE(testCtx(t)); err != nil {
			t.Fatalf("%s ICE restart: %v", s.name, err)
		}
		if s.sess.ETag == "" || s.sess.ETag == oldETag {
			t.Errorf("%s ICE restart: ETag %q, want a new one (was %q)", s.name, s.sess.ETag, oldETag)
		}
		if now := sdpfrag.FromSDP(s.sess.PC.RemoteDescription().SDP).Ufrag; now == oldUfrag {
			t.Errorf("%s ICE restart: the server kept its ICE credentials (%s)", s.name, now)
		}
		receiving("the picture after the " + s.name + "'s ICE restart")
		if st := s.sess.PC.ConnectionState(); st != webrtc.PeerConnectionStateConnected {
			t.Errorf("after the %s's ICE restart its connection is %s", s.name, st)
		}
	}
	// The ETag before the restart is stale now.
	req, _ := http.NewRequest(http.MethodPatch, player.Location, strings.NewReader(local.String()))
	req.Header.Set("Authorization", "Bearer "+viewer)
	req.Header.Set("Content-Type", sdpfrag.MediaType)
	req.Header.Set("If-Match", etag)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPreconditionFailed {
		t.Errorf("PATCH with the ETag from before the restart = %d, want 412", resp.StatusCode)
	}
	_ = player.Close(context.Background())
}
