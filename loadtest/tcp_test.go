package loadtest

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"podium/internal/testenv"
)

// Classrooms with no UDP reach a `--single-port` node through its one HTTP
// port (websocket, and media over ICE-TCP or relayed by TURN over TCP on
// that port): every classroom receives the teacher's video, every selected
// candidate pair is TCP, and the emulated link still shapes what arrives
// (it sits above the transport, in the interceptor chain).
func TestTCPOnlyClassroomsThroughOnePort(t *testing.T) {
	testenv.RequireBinary(t, "ffmpeg")
	srv := testenv.StartPodium(t, "--single-port")
	for _, tc := range []struct {
		transport string
		pair      string // what transportOf names every selected pair
	}{
		{TransportTCP, "tcp"},
		{TransportTURNTCP, "relay-tcp"},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			jsonPath := filepath.Join(t.TempDir(), "report.json")
			var out bytes.Buffer
			err := Main(ctx, []string{
				"--server", srv.URL, "--secret", srv.Secret, "--lesson-prefix", "tcp-" + tc.transport,
				"--classrooms", "3", "--join-rate", "10", "--duration", "6s", "--progress", "0",
				"--transport", tc.transport, "--link", "rate=4mbit,loss=2%", "--json", jsonPath,
			}, &out)
			t.Log("\n" + out.String())
			if err != nil {
				t.Fatal(err)
			}
			rep := readReport(t, jsonPath)
			if rep.Classrooms != 3 || rep.Failed != 0 {
				t.Fatalf("classrooms %d failed %d (errors %v), want 3 and 0", rep.Classrooms, rep.Failed, rep.Errors)
			}
			if rep.Receiving != 3 || rep.VideoKbps.N != 3 || rep.VideoKbps.P50 <= 0 {
				t.Fatalf("%d of 3 classrooms received video (kbit/s %+v)", rep.Receiving, rep.VideoKbps)
			}
			if len(rep.Transports) != 1 || rep.Transports[tc.pair] != 3 {
				t.Fatalf("selected pairs %v, want %s=3 and nothing else", rep.Transports, tc.pair)
			}
			if rep.Config["transport"] != tc.transport {
				t.Fatalf("report config transport %v, want %s", rep.Config["transport"], tc.transport)
			}
			if rep.LinkDroppedPackets == 0 {
				t.Fatal("the 2% loss link dropped nothing over TCP: the link emulation did not apply")
			}
		})
	}
}

// A turn-tcp classroom needs the TURN URLs of the Podium join reply, and
// an unknown transport is refused before anything starts.
func TestTransportValidation(t *testing.T) {
	base := Config{Server: "http://127.0.0.1:1", Secret: "0123456789abcdef0123", Lessons: 1, Classrooms: 1,
		JoinRate: 1, Duration: time.Second, Codec: "vp8", Publish: "ws", Subscribe: "ws"}
	for _, tc := range []struct {
		transport, subscribe string
		ok                   bool
	}{
		{"", "ws", true},
		{TransportUDP, "whep", true},
		{TransportTCP, "whep", true},
		{TransportTURNTCP, "ws", true},
		{TransportTURNTCP, "whep", false},
		{"quic", "ws", false},
	} {
		c := base
		c.Transport, c.Subscribe = tc.transport, tc.subscribe
		if err := c.validate(); (err == nil) != tc.ok {
			t.Errorf("transport %q subscribe %s: validate() = %v, want ok=%v", tc.transport, tc.subscribe, err, tc.ok)
		}
	}
}

// Only TURN URLs over TCP survive for a turn-tcp classroom, with their
// credentials; other transports get pion's default configuration.
func TestConnConfig(t *testing.T) {
	servers := []iceServer{{
		URLs:     []string{"turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:443?transport=tcp", "turns:podium.example.org:443?transport=tcp", "stun:127.0.0.1:3478"},
		Username: "u", Credential: "c",
	}}
	cfg, err := connConfig(TransportTURNTCP, servers)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ICETransportPolicy.String() != "relay" || len(cfg.ICEServers) != 1 {
		t.Fatalf("config %+v: want relay policy and one server", cfg)
	}
	got := cfg.ICEServers[0]
	if len(got.URLs) != 2 || got.URLs[0] != "turn:127.0.0.1:443?transport=tcp" || got.URLs[1] != "turns:podium.example.org:443?transport=tcp" || got.Username != "u" || got.Credential != "c" {
		t.Fatalf("server %+v: want the two TCP URLs with the credentials", got)
	}
	if _, err := connConfig(TransportTURNTCP, []iceServer{{URLs: []string{"turn:127.0.0.1:3478?transport=udp"}}}); err == nil {
		t.Fatal("no TCP TURN URL: want an error")
	}
	if cfg, err := connConfig(TransportTCP, servers); err != nil || len(cfg.ICEServers) != 0 {
		t.Fatalf("tcp: config %+v err %v, want the default", cfg, err)
	}
}
