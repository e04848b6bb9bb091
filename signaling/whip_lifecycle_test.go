package signaling

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"podium/clients/goclient"
	"podium/internal/testenv"
	"podium/internal/testmedia"
	"podium/recorder"
	"podium/sfu"
	"podium/storage"
	"podium/storage/s3/s3test"
)

// whipPublisher is an OBS-like WHIP encoder: a pion peer sending the test
// VP8 camera and Opus microphone until stopped.
type whipPublisher struct {
	sess *goclient.HTTPSession
	stop func()
}

func startWHIP(t *testing.T, ts *testServer, room, name string, api *webrtc.API) *whipPublisher {
	t.Helper()
	return startWHIPPlaying(t, ts, room, name, api, testmedia.ForTest(t).VP8[1])
}

// startWHIPPlaying is startWHIP sending the given VP8 file as the camera.
func startWHIPPlaying(t *testing.T, ts *testServer, room, name string, api *webrtc.API, ivf string) *whipPublisher {
	t.Helper()
	files := testmedia.ForTest(t)
	if api == nil {
		var err error
		if api, err = goclient.NewAPI(true); err != nil {
			t.Fatal(err)
		}
	}
	cam, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "obs-video", "obs")
	mic, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "obs-audio", "obs")
	sess, err := goclient.WHIPPublish(testCtx(t), api, ts.URL, room, ts.token(t, room, sfu.RoleTeacher, name), cam, mic)
	if err != nil {
		t.Fatalf("WHIP: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = testmedia.PlayIVF(ctx, ivf, cam, true) }()
	go func() { defer wg.Done(); _ = testmedia.PlayOgg(ctx, files.Opus, mic, true) }()
	p := &whipPublisher{sess: sess, stop: func() { cancel(); wg.Wait() }}
	t.Cleanup(func() { p.stop(); _ = sess.PC.Close() })
	return p
}

// unpluggableAPI is a pion API whose ICE traffic all goes through one UDP
// socket the test owns: closing it is the encoder losing power or its
// network, with no DTLS close_notify and no DELETE.
func unpluggableAPI(t *testing.T) (*webrtc.API, func()) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEUDPMux(webrtc.NewICEUDPMux(nil, conn))
	t.Cleanup(func() { _ = conn.Close() })
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)),
		func() { _ = conn.Close() }
}

// lessonLive asks the API, as an operator would, whether the lesson is live
// and how many are in it.
func lessonLive(t *testing.T, ts *testServer, room string) (live bool, participants int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/lessons/"+room, nil)
	req.Header.Set("Authorization", "Bearer "+ts.token(t, room, sfu.RoleAdmin, "ops"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return false, 0
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/lessons/%s: %d %s", room, resp.StatusCode, body)
	}
	var v struct {
		Participants []json.RawMessage `json:"participants"`
	}
	_ = json.Unmarshal(body, &v)
	return true, len(v.Participants)
}

// recordingComplete waits for the recorder to say the lesson's recording
// is complete and returns its manifest.
func recordingComplete(t *testing.T, store storage.Store, rec *recorder.Recorder, room string, within time.Duration) recorder.Manifest {
	t.Helper()
	testenv.WaitFor(t, within, "the recording of "+room+" to complete", func() bool {
		st, err := rec.Status(room)
		return err == nil && st.State == "complete"
	})
	rc, _, err := store.Get(context.Background(), storage.ManifestKey(room))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var m recorder.Manifest
	if err := json.NewDecoder(rc).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// A lesson published over WHIP (what OBS and hardware encoders do) ends by
// itself once its publisher is gone — by DELETE, or by a connection that
// dies without one — after the grace period, and its recording completes,
// although a WHEP player is still watching.
func TestWHIPLessonEndsWhenPublisherLeaves(t *testing.T) {
	ts := newTestServer(t)
	const grace = 2 * time.Second
	ts.SFU.Rooms.SetEmptyLessonGrace(grace)
	_, store := s3test.Start(t, "recordings")
	rec, err := recorder.New(recorder.Config{Store: store, SpoolDir: t.TempDir(), SegmentDuration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = rec.Close(ctx)
	})
	rec.Attach(ts.SFU.Rooms, true)

	api, unplug := unpluggableAPI(t)
	for _, tc := range []struct {
		room  string
		api   *webrtc.API
		leave func(*whipPublisher) error
		// within: the grace period plus how long the server takes to
		// notice that the publisher is gone.
		within time.Duration
	}{
		{"obs-delete", nil, func(p *whipPublisher) error { p.stop(); return p.sess.Close(context.Background()) }, grace + 5*time.Second},
		// The encoder stops without DELETE: its connection closes
		// (DTLS close_notify).
		{"obs-no-delete", nil, func(p *whipPublisher) error { p.stop(); return p.sess.PC.Close() }, grace + 5*time.Second},
		// The encoder's machine loses power: nothing more arrives, the
		// server's ICE agent gives up (5 s disconnected, 25 s more to
		// failed).
		{"obs-power-loss", api, func(p *whipPublisher) error { unplug(); return nil }, grace + 60*time.Second},
	} {
		t.Run(tc.room, func(t *testing.T) {
			pub := startWHIP(t, ts, tc.room, "OBS", tc.api)
			testenv.WaitFor(t, 20*time.Second, "the 2 WHIP tracks to be published", func() bool {
				room, ok := ts.SFU.Rooms.Room(tc.room)
				return ok && len(room.Tracks()) == 2
			})
			watch, err := goclient.WHEPWatch(testCtx(t), nil, ts.URL, tc.room, ts.token(t, tc.room, sfu.RoleViewer, "V"), nil)
			if err != nil {
				t.Fatalf("WHEP: %v", err)
			}
			defer watch.PC.Close()
			testenv.WaitFor(t, 20*time.Second, "recorded segments", func() bool {
				st, err := rec.Status(tc.room)
				if err != nil || len(st.Tracks) != 2 {
					return false
				}
				return st.Tracks[0].Segments > 0 && st.Tracks[1].Segments > 0
			})
			if live, n := lessonLive(t, ts, tc.room); !live || n != 2 {
				t.Fatalf("before the publisher leaves: live %v with %d participants, want live with the publisher and the player", live, n)
			}

			left := time.Now()
			if err := tc.leave(pub); err != nil {
				t.Fatalf("publisher leaves: %v", err)
			}
			room, _ := ts.SFU.Rooms.Room(tc.room)
			select {
			case <-room.Done():
			case <-time.After(tc.within):
				live, n := lessonLive(t, ts, tc.room)
				t.Fatalf("%s after the publisher left the lesson is still live (%v) with %d participants", tc.within, live, n)
			}
			took := time.Since(left)
			t.Logf("lesson ended %.1f s after the publisher left", took.Seconds())
			if took < grace {
				t.Errorf("the lesson ended %s after the publisher left, before the %s grace period", took, grace)
			}
			if live, _ := lessonLive(t, ts, tc.room); live {
				t.Error("the API still lists the lesson as live")
			}
			m := recordingComplete(t, store, rec, tc.room, 30*time.Second)
			if !m.Complete || m.EndedAt.IsZero() || len(m.Tracks) != 2 {
				t.Fatalf("manifest after the end: complete %v, ended %v, %d tracks", m.Complete, m.EndedAt, len(m.Tracks))
			}
			for _, tr := range m.Tracks {
				if len(tr.Segments) == 0 {
					t.Errorf("recorded track %s has no segments", tr.ID)
				}
			}
			// The player's session ended with the lesson.
			testenv.WaitFor(t, 10*time.Second, "no WHIP/WHEP session left", func() bool {
				ts.Sig.mu.Lock()
				defer ts.Sig.mu.Unlock()
				for _, hs := range ts.Sig.resources {
					if hs.room == tc.room {
						return false
					}
				}
				return true
			})
		})
	}
}
