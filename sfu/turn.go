package sfu

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/pion/turn/v5"
)

// turnCredentialTTL is how long the TURN credentials handed out in a join
// reply stay valid; a lesson longer than this re-joins with fresh ones.
const turnCredentialTTL = 12 * time.Hour

// turnServer is the embedded TURN relay (UDP and TCP listeners, and TLS
// on a shared port) for classrooms whose firewalls let only TCP through.
type turnServer struct {
	srv     *turn.Server
	host    string // address handed to clients
	tlsHost string // name turns: URLs give; "" without TURN over TLS
	udpPort int
	tcpPort int
	secret  string
}

// startTURN listens on bindIP and relays through relayIP (the address
// clients reach), authenticating TURN-REST style: username
// "<expiry unix>:<participant>", password HMAC-SHA1(secret, username).
func startTURN(cfg TURNConfig, bindIP, relayIP string) (*turnServer, error) {
	if cfg.Secret == "" {
		return nil, fmt.Errorf("turn: a secret is required")
	}
	ip := net.ParseIP(relayIP)
	if ip == nil {
		return nil, fmt.Errorf("turn: relay address %q is not an IP", relayIP)
	}
	listenIP := bindIP
	if listenIP == "" {
		listenIP = "0.0.0.0"
	}
	udp, err := net.ListenPacket("udp4", net.JoinHostPort(listenIP, strconv.Itoa(cfg.UDPPort)))
	if err != nil {
		return nil, fmt.Errorf("turn: listen udp: %w", err)
	}
	tcp := cfg.TCPListener
	if tcp == nil {
		if tcp, err = net.Listen("tcp4", net.JoinHostPort(listenIP, strconv.Itoa(cfg.TCPPort))); err != nil {
			udp.Close()
			return nil, fmt.Errorf("turn: listen tcp: %w", err)
		}
	}
	realm := cfg.Realm
	if realm == "" {
		realm = "podium"
	}
	gen := func() turn.RelayAddressGenerator {
		return &turn.RelayAddressGeneratorStatic{RelayAddress: ip, Address: listenIP}
	}
	listeners := []turn.ListenerConfig{{Listener: tcp, RelayAddressGenerator: gen()}}
	tlsHost := ""
	if cfg.TLSListener != nil && cfg.TCPListener != nil {
		// The shared port hands over connections already terminated:
		// pion/turn reads them as it reads TCP.
		listeners = append(listeners, turn.ListenerConfig{Listener: cfg.TLSListener, RelayAddressGenerator: gen()})
		tlsHost = cfg.TLSHost
		if tlsHost == "" {
			tlsHost = relayIP
		}
	}
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm:             realm,
		AuthHandler:       turn.LongTermTURNRESTAuthHandler(cfg.Secret, nil),
		PacketConnConfigs: []turn.PacketConnConfig{{PacketConn: udp, RelayAddressGenerator: gen()}},
		ListenerConfigs:   listeners,
	})
	if err != nil {
		udp.Close()
		tcp.Close()
		if cfg.TLSListener != nil {
			cfg.TLSListener.Close()
		}
		return nil, fmt.Errorf("turn: %w", err)
	}
	return &turnServer{
		srv:     srv,
		host:    relayIP,
		tlsHost: tlsHost,
		udpPort: udp.LocalAddr().(*net.UDPAddr).Port,
		tcpPort: tcp.Addr().(*net.TCPAddr).Port,
		secret:  cfg.Secret,
	}, nil
}

// iceServer returns the TURN server entry with credentials for one
// participant.
func (t *turnServer) iceServer(participantID string) (ICEServer, error) {
	user, pass, err := turn.GenerateLongTermTURNRESTCredentials(t.secret, participantID, turnCredentialTTL)
	if err != nil {
		return ICEServer{}, fmt.Errorf("turn credentials: %w", err)
	}
	hp := net.JoinHostPort(t.host, strconv.Itoa(t.udpPort))
	tp := net.JoinHostPort(t.host, strconv.Itoa(t.tcpPort))
	urls := []string{"turn:" + hp + "?transport=udp", "turn:" + tp + "?transport=tcp"}
	if t.tlsHost != "" {
		urls = append(urls, "turns:"+net.JoinHostPort(t.tlsHost, strconv.Itoa(t.tcpPort))+"?transport=tcp")
	}
	return ICEServer{
		URLs:       urls,
		Username:   user,
		Credential: pass,
	}, nil
}

func (t *turnServer) close() error { return t.srv.Close() }
