package cascade

import (
	"context"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/transport/v5/vnet"

	"podium/internal/testenv"
	"podium/internal/testmedia"
	"podium/sfu"
)

// seqSink records which sequence numbers of one layer reached the edge.
type seqSink struct {
	mu   sync.Mutex
	seen map[uint16]bool
}

func (s *seqSink) WriteRTP(_ int, pkt *rtp.Packet) {
	s.mu.Lock()
	s.seen[pkt.SequenceNumber] = true
	s.mu.Unlock()
}

func (s *seqSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// TestNACKRecoversLossBetweenNodes relays a teacher's camera from origin
// to edge over a virtual network that drops 10 % of the origin's media
// packets: the edge's NACKs make the origin resend them, so the edge ends
// up with (almost) every packet the publisher sent.
func TestNACKRecoversLossBetweenNodes(t *testing.T) {
	files := testmedia.ForTest(t)
	router, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "10.9.0.0/24", LoggerFactory: logging.NewDefaultLoggerFactory()})
	if err != nil {
		t.Fatal(err)
	}
	originIP := net.ParseIP("10.9.0.1")
	newNet := func(ip string) *vnet.Net {
		n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
		if err != nil {
			t.Fatal(err)
		}
		if err := router.AddNet(n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	originNet, edgeNet := newNet("10.9.0.1"), newNet("10.9.0.2")
	var lossy atomic.Bool
	var dropped atomic.Int64
	rng := rand.New(rand.NewPCG(1, 2))
	var rngMu sync.Mutex
	router.AddChunkFilter(func(c vnet.Chunk) bool {
		src, ok := c.SourceAddr().(*net.UDPAddr)
		if !ok || !lossy.Load() || !src.IP.Equal(originIP) || len(c.UserData()) < 200 {
			return true // keep ICE, DTLS, RTCP and everything edge -> origin
		}
		rngMu.Lock()
		drop := rng.Float64() < 0.10
		rngMu.Unlock()
		if drop {
			dropped.Add(1)
		}
		return !drop
	})
	if err := router.Start(); err != nil {
		t.Fatal(err)
	}
	defer router.Stop()

	rooms := sfu.NewRooms(nil)
	room, err := rooms.CreateRoom(sfu.LessonInfo{ID: "phys"})
	if err != nil {
		t.Fatal(err)
	}
	defer room.End("test over")
	if err := room.AddParticipant(sfu.ParticipantInfo{ID: "t", Role: sfu.RoleTeacher}); err != nil {
		t.Fatal(err)
	}
	cam := sfu.NewTrack(sfu.TrackInfo{ID: "cam", ParticipantID: "t", Kind: sfu.KindVideo, Codec: sfu.Codec{MimeType: "video/VP8", ClockRate: 90000}}, nil)
	if err := room.Publish(cam); err != nil {
		t.Fatal(err)
	}
	origin, _, err := New(rooms, Config{Key: testKey, Net: originNet}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(origin.Handler())
	defer func() { srv.Close(); origin.Close() }()

	edgeRooms := sfu.NewRooms(nil)
	edgeRoom, err := edgeRooms.CreateRoom(sfu.LessonInfo{ID: "phys"})
	if err != nil {
		t.Fatal(err)
	}
	defer edgeRoom.End("test over")
	if err := edgeRoom.AddParticipant(sfu.ParticipantInfo{ID: "t", Role: sfu.RoleTeacher}); err != nil {
		t.Fatal(err)
	}
	_, edge, err := New(edgeRooms, Config{Key: testKey, Net: edgeNet}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Go(func() { _ = edge.Pull(ctx, srv.URL, edgeRoom, cam.Info()) })

	// The publisher: what it sent, by sequence number.
	var sentMu sync.Mutex
	var sent []uint16
	recorder := sinkFunc(func(_ int, pkt *rtp.Packet) {
		if lossy.Load() {
			sentMu.Lock()
			sent = append(sent, pkt.SequenceNumber)
			sentMu.Unlock()
		}
	})
	cam.AddSink("sent", recorder)
	wg.Go(func() {
		_ = testmedia.PlayIVF(ctx, files.VP8[1], newFeeder(cam, 0, &codecs.VP8Payloader{}, 96, 90000), true)
	})

	received := &seqSink{seen: map[uint16]bool{}}
	testenv.WaitFor(t, 20*time.Second, "the relayed track on the edge", func() bool {
		tr, ok := edgeRoom.Track("cam")
		if ok {
			tr.AddSink("seq", received)
		}
		return ok
	})
	testenv.WaitFor(t, 20*time.Second, "media through the relay", func() bool { return received.count() > 20 })

	lossy.Store(true)
	testenv.WaitFor(t, 20*time.Second, "300 packets sent through the lossy link", func() bool {
		sentMu.Lock()
		defer sentMu.Unlock()
		return len(sent) >= 300
	})
	lossy.Store(false)
	cam.RemoveSink("sent")
	time.Sleep(500 * time.Millisecond) // let the last retransmissions land

	sentMu.Lock()
	defer sentMu.Unlock()
	received.mu.Lock()
	defer received.mu.Unlock()
	missing := 0
	for _, seq := range sent {
		if !received.seen[seq] {
			missing++
		}
	}
	t.Logf("sent %d, dropped on the link %d, missing at the edge after NACK %d", len(sent), dropped.Load(), missing)
	if dropped.Load() < 10 {
		t.Fatalf("the link dropped only %d packets; the test shows nothing", dropped.Load())
	}
	if missing*100 > len(sent) {
		t.Fatalf("%d of %d packets missing at the edge (link dropped %d): NACKs did not recover them", missing, len(sent), dropped.Load())
	}
}

type sinkFunc func(int, *rtp.Packet)

func (f sinkFunc) WriteRTP(layer int, pkt *rtp.Packet) { f(layer, pkt) }
