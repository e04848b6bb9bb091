package sfu

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// callLog records, in order, what a track hands its sinks.
type callLog struct{ calls []string }

func (l *callLog) add(format string, args ...any) {
	l.calls = append(l.calls, fmt.Sprintf(format, args...))
}

func (l *callLog) take() string {
	s := strings.Join(l.calls, " ")
	l.calls = l.calls[:0]
	return s
}

// loggedDownTrack stands for a down-track: a shared sink taking the layers
// in wants, whose every packet (and the payload it holds) is logged.
type loggedDownTrack struct {
	name  string
	log   *callLog
	wants uint32
}

func (d *loggedDownTrack) WriteRTP(int, *rtp.Packet) { panic("a down-track takes the shared payload") }
func (d *loggedDownTrack) wantedLayers() uint32      { return d.wants }
func (d *loggedDownTrack) prefetch(int)              {}
func (d *loggedDownTrack) writeShared(layer int, pkt *rtp.Packet, body *sharedPayload, _ *redBuilds, _ time.Time) {
	if body != nil && string(body.buf[:body.n]) != string(pkt.Payload) {
		d.log.add("%s:payload-mismatch", d.name)
	}
	d.log.add("%s%d:%d:%s", d.name, layer, pkt.SequenceNumber, pkt.Payload)
}

func (d *loggedDownTrack) writePicture(layer int, f *pendingFrame) {
	for i := 0; i < f.n; i++ {
		d.writeShared(layer, &f.pkts[i], f.bodies[i], nil, f.nows[i])
	}
}

// loggedSink stands for the recorder: a sink of every packet, as it comes.
type loggedSink struct {
	name string
	log  *callLog
}

func (s *loggedSink) WriteRTP(layer int, pkt *rtp.Packet) {
	s.log.add("%s%d:%d:%s", s.name, layer, pkt.SequenceNumber, pkt.Payload)
}

func videoPacket(seq uint16, ts uint32, marker bool, payload string) *rtp.Packet {
	return &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts, Marker: marker}, Payload: []byte(payload)}
}

// TestPicturesGoToEachClassroomWhole: a video layer's packets reach the
// recorder as they come, and the classrooms' down-tracks when the picture
// is complete, one classroom's whole picture after the other's. A picture
// whose marker never came goes when the next one starts; a muted track's
// half picture is not shown later; a picture larger than what is held
// goes in parts.
func TestPicturesGoToEachClassroomWhole(t *testing.T) {
	log := &callLog{}
	track := NewTrack(TrackInfo{ID: "cam", Kind: KindVideo, Layers: []string{"q", "f"}}, nil)
	track.AddSink("rec", &loggedSink{name: "R", log: log})
	track.AddSink("a", &loggedDownTrack{name: "A", log: log, wants: 1 << 1})
	track.AddSink("b", &loggedDownTrack{name: "B", log: log, wants: 1 << 1})
	expect := func(when, want string) {
		t.Helper()
		if got := log.take(); got != want {
			t.Fatalf("%s: %q, want %q", when, got, want)
		}
	}

	track.WriteRTP(1, videoPacket(1, 100, false, "x"))
	track.WriteRTP(1, videoPacket(2, 100, false, "y"))
	expect("before the picture's last packet", "R1:1:x R1:2:y")
	track.WriteRTP(1, videoPacket(3, 100, true, "z"))
	expect("at the picture's last packet", "R1:3:z A1:1:x A1:2:y A1:3:z B1:1:x B1:2:y B1:3:z")

	// The marker of the picture at 200 is lost: it goes when 300 starts.
	track.WriteRTP(1, videoPacket(4, 200, false, "p"))
	track.WriteRTP(1, videoPacket(6, 300, false, "r"))
	expect("a picture without its marker", "R1:4:p A1:4:p B1:4:p R1:6:r")

	// Muted mid-picture: the half picture is dropped, and what comes
	// after the unmute starts afresh.
	track.SetMuted(true)
	track.WriteRTP(1, videoPacket(7, 300, true, "s"))
	track.SetMuted(false)
	track.WriteRTP(1, videoPacket(8, 400, true, "t"))
	expect("muted mid-picture", "R1:8:t A1:8:t B1:8:t")

	// Layer q is nobody's: the down-tracks are not visited for it.
	track.WriteRTP(0, videoPacket(1, 100, true, "q"))
	expect("a layer no classroom takes", "R0:1:q")

	// A keyframe of more packets than a picture holds goes in parts: the
	// first maxPendingPackets to A, then to B, then the rest to each.
	var wantParts []string
	for _, part := range [][2]int{{0, maxPendingPackets}, {maxPendingPackets, maxPendingPackets + 2}} {
		for _, d := range []string{"A", "B"} {
			for i := part[0]; i < part[1]; i++ {
				wantParts = append(wantParts, fmt.Sprintf("%s1:%d:k", d, 100+i))
			}
		}
	}
	for i := 0; i < maxPendingPackets+2; i++ {
		track.WriteRTP(1, videoPacket(uint16(100+i), 500, i == maxPendingPackets+1, "k"))
	}
	var gotParts []string
	for _, c := range strings.Fields(log.take()) {
		if !strings.HasPrefix(c, "R") {
			gotParts = append(gotParts, c)
		}
	}
	if got, want := strings.Join(gotParts, " "), strings.Join(wantParts, " "); got != want {
		t.Fatalf("a large picture: %q, want %q", got, want)
	}
}

// TestLayerListsFollowTheDownTracks: a down-track is on the sink list of
// the layer it forwards and of the one it is switching to, and on no
// other; a switch moves it.
func TestLayerListsFollowTheDownTracks(t *testing.T) {
	track := NewTrack(TrackInfo{ID: "cam", Kind: KindVideo, Codec: Codec{MimeType: "video/VP8", ClockRate: 90000}, Layers: []string{"q", "h", "f"}}, nil)
	d := boundDownTrack(t, track, &discardWriter{})
	track.AddSink("d", d)
	expectOn := func(when, want string) {
		t.Helper()
		var on []string
		for l := range track.layerSinks {
			for _, e := range *track.layerSinks[l].Load() {
				if e.shared == sharedSink(d) {
					on = append(on, fmt.Sprint(l))
				}
			}
		}
		if got := strings.Join(on, ","); got != want {
			t.Fatalf("%s: on layers %q, want %q", when, got, want)
		}
	}
	expectOn("a new down-track (its target's)", "2")
	src := &layerSource{seq: 1, ts: 1, pic: 1}
	track.WriteRTP(2, src.next(true))
	expectOn("forwarding f", "2")
	d.setTarget(0)
	expectOn("switching down to q", "0,2")
	q := &layerSource{seq: 1000, ts: 1, pic: 1}
	track.WriteRTP(0, q.next(true))
	expectOn("switched to q", "0")
}
