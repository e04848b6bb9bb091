package sfu

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/pion/rtp"
)

// TestClassroomsShareOnePayload: a packet fanned out to three classrooms is
// one shared copy in their three rings; each classroom still gets its own
// VP8 picture ids (a 7-bit id widened to 15 bits, as a forwarder sends
// them) ahead of the publisher's bytes; and a ring that has moved on lets
// go of its hold.
func TestClassroomsShareOnePayload(t *testing.T) {
	track := NewTrack(TrackInfo{ID: "t", Kind: KindVideo, Codec: Codec{MimeType: "video/VP8", ClockRate: 90000}}, nil)
	ready := &atomic.Bool{}
	ready.Store(true)
	const classrooms = 3
	egresses := make([]*egress, classrooms)
	writers := make([]*recordingWriter, classrooms)
	for i := range egresses {
		egresses[i], writers[i] = newEgress(), &recordingWriter{}
		d := newDownTrack(track, egresses[i], ready, nil)
		d.bound, d.ssrc, d.pt, d.resync = true, 1234, 96, true
		d.stream = &egressStream{writer: writers[i], ssrc: 1234}
		d.setTarget(0)
		track.AddSink(fmt.Sprint(i), d)
	}
	body := bytes.Repeat([]byte("slide 7 of the fractions lesson "), 30)
	// X, S; I; a 7-bit picture id (M clear); a VP8 keyframe header; body.
	payload := append([]byte{0x90, 0x80, 0x45, 0x00}, body...)
	track.WriteRTP(0, &rtp.Packet{Header: rtp.Header{Version: 2, Marker: true, PayloadType: 100, SequenceNumber: 9, Timestamp: 3000, SSRC: 99}, Payload: payload})

	shared := egresses[0].bodies[0]
	for i, e := range egresses {
		if e.bodies[0] != shared || shared == nil {
			t.Fatalf("classroom %d holds payload %p, classroom 0 %p: not one shared copy", i, e.bodies[0], shared)
		}
	}
	if got := shared.refs.Load(); got != classrooms {
		t.Fatalf("the shared payload is held %d times after the fan-out, want %d (one per ring)", got, classrooms)
	}
	for i, e := range egresses {
		e.drain()
		pkts := writers[i].packets()
		if len(pkts) != 1 {
			t.Fatalf("classroom %d got %d packets, want 1", i, len(pkts))
		}
		got := pkts[0].Payload
		d, ok := parseVP8(got)
		if !ok || !d.longPictureID || d.pictureID != 0x45 {
			t.Fatalf("classroom %d: descriptor %x (%+v), want the picture id 0x45 in 15 bits", i, got[:min(6, len(got))], d)
		}
		if !bytes.Equal(got[d.size:], payload[3:]) {
			t.Fatalf("classroom %d: the bytes after the descriptor differ from the publisher's", i)
		}
	}

	// Classroom 0's ring fills with newer packets and lets the old one go.
	e := egresses[0]
	st := e.slots[0].stream
	for seq := range minRingSlots {
		hdr := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(100 + seq), SSRC: 1234}
		if !e.push(st, &hdr, []byte{1, 2, 3}, nil, nil, true) {
			t.Fatalf("packet %d was not queued", seq)
		}
		e.pace.at = 0
		e.drain()
	}
	if got := shared.refs.Load(); got != classrooms-1 {
		t.Fatalf("the shared payload is held %d times after one ring moved on, want %d", got, classrooms-1)
	}
}
