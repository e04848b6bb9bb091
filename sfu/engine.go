package sfu

// CONTRACT: Config, New, SFU.Rooms, ICEServers and Close are used by
// cmd/podium and signaling. The sfu helper owns everything else here.

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// Config is the sfu's part of podium's configuration.
type Config struct {
	// ICEUDPPort is the one UDP port every peer connection shares (ICE UDP
	// mux); 0 picks a free port.
	ICEUDPPort int
	// ICETCPPort is the port for ICE over TCP (RFC 6544) for schools whose
	// firewalls drop UDP; 0 picks a free port, -1 disables ICE-TCP.
	ICETCPPort int
	// PublicIPs are advertised instead of the host's addresses (1:1 NAT).
	PublicIPs []string
	// BindIP is the address the media ports listen on ("" = all).
	BindIP string
	// TURN is the embedded TURN server.
	TURN TURNConfig
}

// TURNConfig configures the embedded TURN server (pion/turn) that relays
// media for classrooms behind firewalls that allow only TCP.
type TURNConfig struct {
	Enabled bool
	UDPPort int // 0 picks a free port
	TCPPort int // 0 picks a free port
	Realm   string
	// Secret signs short-lived TURN credentials (RFC 8489 long-term
	// credentials derived per user, TURN REST API style).
	Secret string
}

// ICEServer is one STUN/TURN server handed to clients in the join reply.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// SFU is the media server of one node.
type SFU struct {
	Rooms *Rooms
	cfg   Config
	log   *slog.Logger
}

// New builds the sfu: its WebRTC engine, media ports and TURN server.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*SFU, error) {
	if log == nil {
		log = slog.Default()
	}
	return &SFU{Rooms: NewRooms(log), cfg: cfg, log: log}, nil
}

// ICEServers returns the STUN/TURN servers a client should use, with
// credentials for the given participant valid for the given duration.
func (s *SFU) ICEServers(participantID string) []ICEServer { return nil }

// Close ends every lesson and releases the media ports.
func (s *SFU) Close() error {
	s.Rooms.EndAll("server shutting down")
	return nil
}
