package signaling

import (
	"testing"
	"time"

	"podium/clients/goclient"
	"podium/internal/testmedia"
	"podium/sfu"
)

// packets is how many video packets of k the capture has so far.
func (vc *videoCapture) packetsOf(k string) int64 {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if c := vc.packets[k]; c != nil {
		return c.Load()
	}
	return 0
}

// TestPausedPictureCostsNothing: the teacher's console shows a few
// classrooms' pictures of many. A picture it pauses stops coming (the
// track stays negotiated) while the others flow; shown again, it comes
// back at once from a keyframe and decodes.
func TestPausedPictureCostsNothing(t *testing.T) {
	files := testmedia.ForTest(t)
	ts := newTestServer(t)
	ctx := testCtx(t)
	seen := newVideoCapture(t)
	teacher, _ := ts.join(t, "pause", sfu.RoleTeacher, "Ms T", goclient.Options{OnTrack: seen.onTrack})
	a, _ := ts.join(t, "pause", sfu.RoleClassroom, "School A", goclient.Options{})
	b, _ := ts.join(t, "pause", sfu.RoleClassroom, "School B", goclient.Options{})
	publishFile(t, a, files.VP8[0], "")
	publishFile(t, b, files.VP8[0], "")
	ka, kb := a.Self().ID+"/camera", b.Self().ID+"/camera"
	seen.waitPackets(ka, 60)
	seen.waitPackets(kb, 60)

	room, _ := ts.SFU.Rooms.Room("pause")
	var camA string
	for _, tr := range room.TracksOf(a.Self().ID) {
		if tr.Info().Kind == sfu.KindVideo {
			camA = tr.ID()
		}
	}
	if err := teacher.Pause(ctx, true, camA); err != nil {
		t.Fatalf("pause: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // what was on its way arrives
	a0, b0 := seen.packetsOf(ka), seen.packetsOf(kb)
	seen.waitPackets(kb, b0+60) // two seconds of B's picture
	if got := seen.packetsOf(ka) - a0; got > 0 {
		t.Fatalf("the paused picture of A still came: %d packets while B sent %d", got, seen.packetsOf(kb)-b0)
	}

	if err := teacher.Pause(ctx, false, camA); err != nil {
		t.Fatalf("resume: %v", err)
	}
	seen.waitPackets(ka, a0+90)
	// Before the pause and after it, one file: it decodes (the picture
	// came back at a keyframe), about a frame per three packets.
	if got := seen.decodedFrames(ka); got < int(a0+90)/4 {
		t.Fatalf("A's picture, paused and shown again, decodes to %d frames from %d packets", got, a0+90)
	}

	// A track the teacher does not receive, and an empty list, are refused.
	if err := teacher.Pause(ctx, true, "nope"); err == nil {
		t.Error("pausing an unknown track was accepted")
	}
	if err := teacher.Pause(ctx, true); err == nil {
		t.Error("pausing nothing was accepted")
	}
}
