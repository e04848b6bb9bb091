package clients

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"podium/clients/goclient"
	"podium/internal/testenv"
	"podium/internal/testmedia"
)

// receivedVideo is, per classroom, the video bytes the teacher's page has
// received (its subscriber connection's inbound-rtp).
const receivedVideo = `(async () => {
  const s = window.podium.session;
  const bytes = {};
  (await s.sub.getStats()).forEach((r) => { if (r.type === 'inbound-rtp' && r.kind === 'video') bytes[r.trackIdentifier] = r.bytesReceived; });
  const out = {};
  for (const info of s.remote.values()) if (info.track.kind === 'video') out[info.participantId] = bytes[info.track.id] || 0;
  return out;
})()`

// TestTeacherReceivesOnlyThePicturesItShows: with more classrooms than
// tiles, the teacher's console shows a list and tiles only for raised
// hands and the stage. It receives only the pictures the tiles show (200
// classrooms would otherwise be 200 videos to receive and decode); a
// classroom that raises its hand gets a tile, and its picture plays in it.
func TestTeacherReceivesOnlyThePicturesItShows(t *testing.T) {
	files := testmedia.ForTest(t)
	browser := testenv.StartChromium(t)
	node := testenv.StartPodium(t)
	const room = "many-pictures"
	teacher := openPage(t, browser, "teacher", node.URL+"/teacher#token="+node.Token(room, "teacher", "Ms Rivera"))
	teacher.waitState(t, "ready")
	goLive(t, teacher)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	const n = 6 // more than the console tiles without a reason
	classes := make([]*goclient.Client, n)
	ids := make([]string, n)
	for i := range classes {
		name := fmt.Sprintf("%s School", schoolNames[i])
		c, err := goclient.Dial(ctx, node.URL, node.Token(room, "classroom", name), goclient.Options{OnTrack: drain})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		j, err := c.Join(ctx, true)
		if err != nil {
			t.Fatalf("%s join: %v", name, err)
		}
		cam, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "cam", "class-"+j.Participant.ID)
		if err != nil {
			t.Fatal(err)
		}
		pctx, pcancel := context.WithTimeout(ctx, time.Minute)
		err = c.Publish(pctx, goclient.LocalTrack{Track: cam, Source: "camera"})
		pcancel()
		if err != nil {
			t.Fatalf("%s publish: %v", name, err)
		}
		go func() { _ = testmedia.PlayIVF(ctx, files.VP8[0], cam, true) }()
		classes[i], ids[i] = c, j.Participant.ID
	}

	var got map[string]float64
	read := func() map[string]float64 {
		got = map[string]float64{}
		if err := teacher.eval(receivedVideo, &got); err != nil {
			t.Logf("teacher: getStats: %v", err)
		}
		return got
	}
	teacher.waitUntil(t, "every classroom's picture negotiated to the teacher", func() (bool, string) {
		return len(read()) == n, fmt.Sprint(got)
	})
	// Nothing is tiled: after a moment, no classroom's bytes grow.
	time.Sleep(2 * time.Second)
	before := read()
	time.Sleep(3 * time.Second)
	after := read()
	for _, id := range ids {
		if grew := after[id] - before[id]; grew > 0 {
			t.Errorf("the teacher received %.0f bytes of %s's picture in 3 s with no tile showing it", grew, id)
		}
	}

	// A hand goes up: that classroom gets a tile and its picture plays.
	if err := classes[2].RaiseHand(ctx, true); err != nil {
		t.Fatal(err)
	}
	tile := fmt.Sprintf(`#grid .tile[data-participant=%q] video`, ids[2])
	f := teacher.waitPlaying(t, tile)
	now := read()
	for i, id := range ids {
		grew := now[id] - after[id]
		if (i == 2) != (grew > 0) {
			t.Errorf("classroom %d: %.0f bytes since the hand went up (only the tiled one should come)", i, grew)
		}
	}
	t.Logf("with a hand up, the tile plays %.0fx%.0f (%.0f frames); bytes received per classroom: %v", f.Width, f.Height, f.Frames, now)
}
