package cascade

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pion/rtp"

	"podium/internal/testenv"
	"podium/sfu"
)

// BenchmarkOriginRelayPacket is the origin's per-packet cost of relaying a
// track to one edge: the sink strips header extensions and pion encrypts
// (SRTP) and sends the packet over loopback; the edge receives it.
func BenchmarkOriginRelayPacket(b *testing.B) {
	rooms := sfu.NewRooms(nil)
	room, err := rooms.CreateRoom(sfu.LessonInfo{ID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer room.End("bench over")
	if err := room.AddParticipant(sfu.ParticipantInfo{ID: "t", Role: sfu.RoleTeacher}); err != nil {
		b.Fatal(err)
	}
	cam := sfu.NewTrack(sfu.TrackInfo{ID: "cam", ParticipantID: "t", Kind: sfu.KindVideo, Codec: sfu.Codec{MimeType: "video/VP8", ClockRate: 90000}}, nil)
	if err := room.Publish(cam); err != nil {
		b.Fatal(err)
	}
	origin, _, err := New(rooms, loopbackConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(origin.Handler())
	defer func() { srv.Close(); origin.Close() }()

	edgeRooms := sfu.NewRooms(nil)
	edgeRoom, err := edgeRooms.CreateRoom(sfu.LessonInfo{ID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer edgeRoom.End("bench over")
	if err := edgeRoom.AddParticipant(sfu.ParticipantInfo{ID: "t", Role: sfu.RoleTeacher}); err != nil {
		b.Fatal(err)
	}
	_, edge, err := New(edgeRooms, loopbackConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- edge.Pull(ctx, srv.URL, edgeRoom, cam.Info()) }()
	defer func() { cancel(); <-done }()
	received := &countSink{}
	testenv.WaitFor(b, 20*time.Second, "the relayed track on the edge", func() bool {
		t, ok := edgeRoom.Track("cam")
		if ok {
			t.AddSink("count", received)
		}
		return ok
	})
	// Wait for the connection: packets written before it are dropped.
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: 1, Marker: true}, Payload: make([]byte, 1000)}
	testenv.WaitFor(b, 20*time.Second, "media through the relay", func() bool {
		pkt.SequenceNumber++
		cam.WriteRTP(0, pkt)
		return received.pkts.Load() > 0
	})
	b.SetBytes(int64(len(pkt.Payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		pkt.SequenceNumber++
		pkt.Timestamp += 3000
		cam.WriteRTP(0, pkt)
	}
	b.StopTimer()
	time.Sleep(100 * time.Millisecond)
	b.ReportMetric(float64(received.pkts.Load())/float64(b.N), "delivered/op")
}
