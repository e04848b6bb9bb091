package sfu

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/pion/rtp"
)

type countSink struct{ n atomic.Int64 }

func (c *countSink) WriteRTP(int, *rtp.Packet) { c.n.Add(1) }

func micTrack(id, owner string) *Track {
	return NewTrack(TrackInfo{ID: id, ParticipantID: owner, Kind: KindAudio, Source: SourceMicrophone,
		Codec: Codec{MimeType: "audio/opus", ClockRate: 48000, Channels: 2}}, nil)
}

// forwards reports whether a packet written to the track reaches a sink.
func forwards(t *Track) bool {
	s := &countSink{}
	t.AddSink("probe", s)
	defer t.RemoveSink("probe")
	t.WriteRTP(0, &rtp.Packet{Header: rtp.Header{SequenceNumber: 1}})
	return s.n.Load() == 1
}

func TestMicMuteIsParticipantState(t *testing.T) {
	r := newRoom(LessonInfo{ID: "m"}, 0, nil)
	defer r.End("test over")
	for _, p := range []ParticipantInfo{{ID: "t", Role: RoleTeacher}, {ID: "a", Role: RoleClassroom}, {ID: "b", Role: RoleClassroom}} {
		if err := r.AddParticipant(p); err != nil {
			t.Fatal(err)
		}
	}
	mic := micTrack("a-microphone", "a")
	cam := NewTrack(TrackInfo{ID: "a-camera", ParticipantID: "a", Kind: KindVideo, Source: SourceCamera}, nil)
	for _, tr := range []*Track{mic, cam} {
		if err := r.Publish(tr); err != nil {
			t.Fatal(err)
		}
	}

	// Self mute and unmute.
	if err := r.SetMicMuted("a", true, MutedBySelf, "a"); err != nil {
		t.Fatal(err)
	}
	if p, _ := r.Participant("a"); !p.MicMuted || p.MicMutedBy != MutedBySelf || forwards(mic) || !forwards(cam) {
		t.Fatalf("after self-mute: %+v, mic forwards %v, camera %v", p, forwards(mic), forwards(cam))
	}
	if err := r.SetMicMuted("a", false, MutedBySelf, "a"); err != nil || !forwards(mic) {
		t.Fatalf("self-unmute: %v, forwards %v", err, forwards(mic))
	}

	// The teacher's mute cannot be lifted by the classroom, and holds
	// across a rejoin and a new microphone.
	if err := r.SetMicMuted("a", true, MutedByTeacher, "t"); err != nil {
		t.Fatal(err)
	}
	if err := r.SetMicMuted("a", false, MutedBySelf, "a"); !errors.Is(err, ErrMutedByTeacher) {
		t.Fatalf("self-unmute under the teacher's mute: %v, want ErrMutedByTeacher", err)
	}
	if err := r.SetMicMuted("a", true, MutedBySelf, "a"); err != nil {
		t.Fatal(err)
	}
	if p, _ := r.Participant("a"); p.MicMutedBy != MutedByTeacher || forwards(mic) {
		t.Fatalf("a self-mute replaced the teacher's: %+v", p)
	}
	r.RemoveParticipant("a", "reconnect")
	if err := r.AddParticipant(ParticipantInfo{ID: "a", Role: RoleClassroom}); err != nil {
		t.Fatal(err)
	}
	mic2 := micTrack("a-microphone", "a")
	if err := r.Publish(mic2); err != nil {
		t.Fatal(err)
	}
	if p, _ := r.Participant("a"); !p.MicMuted || p.MicMutedBy != MutedByTeacher || !mic2.Info().Muted || forwards(mic2) {
		t.Fatalf("after rejoin: %+v, track muted %v", p, mic2.Info().Muted)
	}

	// Unmute all lifts it; mute all reaches every classroom, not the teacher.
	if n, err := r.MuteAllClassrooms(false, "t"); err != nil || n != 1 || !forwards(mic2) {
		t.Fatalf("unmute all: %d changed, %v, forwards %v", n, err, forwards(mic2))
	}
	if n, err := r.MuteAllClassrooms(true, "t"); err != nil || n != 2 || forwards(mic2) {
		t.Fatalf("mute all: %d changed, %v", n, err)
	}
	if p, _ := r.Participant("t"); p.MicMuted {
		t.Fatal("mute all muted the teacher")
	}
	if err := r.SetMicMuted("nobody", true, MutedByTeacher, "t"); !errors.Is(err, ErrNoSuchParticipant) {
		t.Fatalf("unknown participant: %v", err)
	}
}
