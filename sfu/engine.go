package sfu

// CONTRACT: Config, New, SFU.Rooms, ICEServers and Close are used by
// cmd/podium and signaling; everything else here is the sfu's own.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/prometheus/client_golang/prometheus"

	"podium/internal/rtxrepair"
)

// Config is the sfu's part of podium's configuration.
type Config struct {
	// ICEUDPPort is the one UDP port every peer connection shares (ICE UDP
	// mux); 0 picks a free port.
	ICEUDPPort int
	// ICETCPPort is the port for ICE over TCP (RFC 6544) for schools whose
	// firewalls drop UDP; 0 picks a free port, -1 disables ICE-TCP.
	ICETCPPort int
	// ICETCPListener, when set, is ICE-TCP's listener instead of a port of
	// its own (ICETCPPort is then unused): a child of the node's shared
	// port (internal/portmux), so ICE-TCP candidates name that port.
	ICETCPListener net.Listener
	// PublicIPs are advertised instead of the host's addresses (1:1 NAT).
	PublicIPs []string
	// BindIP is the address the media ports listen on ("" = all).
	BindIP string
	// TURN is the embedded TURN server.
	TURN TURNConfig
	// EmptyLessonGrace is how long a lesson lives on after its last
	// teacher, classroom or RTSP source left (0: DefaultEmptyLessonGrace,
	// < 0: until someone ends it).
	EmptyLessonGrace time.Duration
	// UnbatchedSends writes each media datagram with its own sendto, as
	// pion does, instead of sendmmsg batches (batchconn.go): for
	// comparing the two.
	UnbatchedSends bool
	// NoGSO sends each batched datagram as a message of its own instead
	// of segmenting runs with UDP GSO: for comparing the two.
	NoGSO bool
}

// TURNConfig configures the embedded TURN server (pion/turn) that relays
// media for classrooms behind firewalls that allow only TCP.
type TURNConfig struct {
	Enabled bool
	UDPPort int // 0 picks a free port
	TCPPort int // 0 picks a free port
	// TCPListener, when set, carries TURN over TCP instead of a port of
	// its own (TCPPort is then unused); TLSListener carries TURN over TLS,
	// its connections already terminated (only with TCPListener). Both
	// are children of the node's shared port (internal/portmux).
	TCPListener net.Listener
	TLSListener net.Listener
	// TLSHost is the name turns: URLs give (the name in the node's
	// certificate, so the client's check passes; default the relay IP).
	TLSHost string
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

// Bandwidth estimator bounds for what the sfu sends to one subscriber. A
// subscriber starts at bweInitialBitrate, 360p, and its first keyframe's
// packet train raises it, up to bweTrainCeiling, 720p, where its line
// carries that (gcc.go, "The start").
const (
	bweInitialBitrate = 1_200_000
	bweTrainCeiling   = 2_500_000
	bweMinBitrate     = 100_000
	bweMaxBitrate     = 20_000_000
)

// SFU is the media server of one node.
type SFU struct {
	Rooms *Rooms
	cfg   Config
	log   *slog.Logger
	m     *metrics

	settings webrtc.SettingEngine
	udpConn  net.PacketConn
	udpMux   ice.UDPMux
	batcher  *batchConn // the ICE UDP socket's sendmmsg batches; nil when not UDP
	tcpLn    net.Listener
	tcpMux   ice.TCPMux
	turn     *turnServer
	probes   probeBudget // bandwidth probing, shared by all subscribers
	lines    lineMemory  // estimates of closed connections, for rejoins

	mu           sync.Mutex
	participants map[*Participant]struct{}
	closed       bool
}

// New builds the sfu: its WebRTC engine, media ports and TURN server.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*SFU, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &SFU{Rooms: NewRooms(log), cfg: cfg, log: log, participants: make(map[*Participant]struct{})}
	if cfg.EmptyLessonGrace != 0 {
		s.Rooms.SetEmptyLessonGrace(cfg.EmptyLessonGrace)
	}
	s.probes.max = nodeProbeBudget
	m, err := newMetrics(reg, s.Rooms)
	if err != nil {
		return nil, fmt.Errorf("sfu metrics: %w", err)
	}
	s.m = m
	if err := s.listen(); err != nil {
		s.closePorts()
		return nil, err
	}
	if err := registerBatchMetrics(reg, s.batcher); err != nil {
		s.closePorts()
		return nil, fmt.Errorf("sfu metrics: %w", err)
	}
	if cfg.TURN.Enabled {
		t, err := startTURN(cfg.TURN, cfg.BindIP, s.advertisedIP())
		if err != nil {
			s.closePorts()
			return nil, err
		}
		s.turn = t
	}
	log.Info("sfu media ports", "udp", s.UDPPort(), "tcp", s.TCPPort(), "turn", s.turn != nil)
	return s, nil
}

func (s *SFU) listen() error {
	bind := s.cfg.BindIP
	if bind == "" {
		bind = "0.0.0.0"
	}
	lf := logging.NewDefaultLoggerFactory()
	udp, err := net.ListenPacket("udp4", net.JoinHostPort(bind, strconv.Itoa(s.cfg.ICEUDPPort)))
	if err != nil {
		return fmt.Errorf("sfu: listen ICE UDP: %w", err)
	}
	s.udpConn = udp
	growSocketBuffers(udp, s.log)
	var muxConn net.PacketConn = udp
	if !s.cfg.UnbatchedSends {
		muxConn, s.batcher = newBatchConn(udp, s.log)
		if s.cfg.NoGSO && s.batcher != nil {
			s.batcher.gso.Store(false)
		}
	}
	s.udpMux = webrtc.NewICEUDPMux(lf.NewLogger("ice-udp"), muxConn)
	s.settings.SetICEUDPMux(s.udpMux)
	// The server has only host candidates. A classroom that reaches it
	// over ICE-TCP shows as peer-reflexive, one through TURN as relayed,
	// and pion waits 1 s and 2 s before it accepts such pairs in case a
	// better one succeeds: a classroom that can use UDP has done so within
	// milliseconds, so the wait only delayed a TCP-only school's first
	// picture (tcp443: join to first frame 1.4 s over ICE-TCP, 2.4 s
	// through TURN, against 0.5 s over UDP). A short wait is kept for
	// relays, whose checks run beside the direct ones.
	s.settings.SetPrflxAcceptanceMinWait(0)
	s.settings.SetRelayAcceptanceMinWait(300 * time.Millisecond)
	networks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
	if s.cfg.ICETCPListener != nil || s.cfg.ICETCPPort >= 0 {
		ln := s.cfg.ICETCPListener
		if ln == nil {
			if ln, err = net.Listen("tcp4", net.JoinHostPort(bind, strconv.Itoa(s.cfg.ICETCPPort))); err != nil {
				return fmt.Errorf("sfu: listen ICE TCP: %w", err)
			}
		}
		s.tcpLn = ln
		s.tcpMux = webrtc.NewICETCPMux(lf.NewLogger("ice-tcp"), ln, 64)
		s.settings.SetICETCPMux(s.tcpMux)
		networks = append(networks, webrtc.NetworkTypeTCP4)
	}
	s.settings.SetNetworkTypes(networks)
	s.settings.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if ip := net.ParseIP(s.cfg.BindIP); ip != nil && ip.IsLoopback() {
		s.settings.SetIncludeLoopbackCandidate(true)
	}
	if ip := net.ParseIP(s.cfg.BindIP); ip != nil && !ip.IsUnspecified() {
		s.settings.SetIPFilter(func(c net.IP) bool { return c.Equal(ip) })
	}
	if len(s.cfg.PublicIPs) > 0 {
		if err := s.settings.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External: s.cfg.PublicIPs, AsCandidateType: webrtc.ICECandidateTypeHost,
		}); err != nil {
			return fmt.Errorf("sfu: public IPs: %w", err)
		}
	}
	return nil
}

// advertisedIP is the address clients reach the node on: the first public
// IP, else the bind address, else the first non-loopback IPv4 address.
func (s *SFU) advertisedIP() string {
	if len(s.cfg.PublicIPs) > 0 {
		return s.cfg.PublicIPs[0]
	}
	if ip := net.ParseIP(s.cfg.BindIP); ip != nil && !ip.IsUnspecified() {
		return ip.String()
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// UDPPort is the port of the ICE UDP mux.
func (s *SFU) UDPPort() int {
	if s.udpConn == nil {
		return 0
	}
	return s.udpConn.LocalAddr().(*net.UDPAddr).Port
}

// TCPPort is the port of ICE-TCP, 0 when disabled.
func (s *SFU) TCPPort() int {
	if s.tcpLn == nil {
		return 0
	}
	return s.tcpLn.Addr().(*net.TCPAddr).Port
}

// registerCodecs limits what the sfu negotiates to what it can forward and
// switch: Opus (+RED), VP8 and constrained-baseline H.264, each video codec
// with RTX.
func registerCodecs(m *webrtc.MediaEngine) error {
	videoFB := []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	audio := []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "audio/red", ClockRate: 48000, Channels: 2, SDPFmtpLine: "111/111"}, PayloadType: 63},
	}
	video := []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: videoFB}, PayloadType: 96},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=96"}, PayloadType: 97},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", RTCPFeedback: videoFB}, PayloadType: 106},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=106"}, PayloadType: 107},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", RTCPFeedback: videoFB}, PayloadType: 102},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=102"}, PayloadType: 103},
	}
	for _, c := range audio {
		if err := m.RegisterCodec(c, webrtc.RTPCodecTypeAudio); err != nil {
			return err
		}
	}
	for _, c := range video {
		if err := m.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			return err
		}
	}
	return m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio)
}

// newPeerConnection builds a peer connection on an API of its own. A
// subscriber connection (subscriber) has no interceptors: its egress stamps
// transport-wide sequence numbers, answers NACKs from its ring and runs its
// own GCC; the TWCC header extension, transport-cc and NACK feedback are
// negotiated as before, and sender reports come from the down-tracks'
// counters (subscriber.sendReports). repair (publisher connections) unwraps
// the client's RTX retransmissions ahead of every other interceptor.
//
// keys (subscriber connections) learns the SRTP keys of the connection's
// DTLS handshake, on which the node takes the server's role (srtpkeys.go).
func (s *SFU) newPeerConnection(subscriber bool, repair *rtxrepair.Factory, keys *srtpKeys) (*webrtc.PeerConnection, error) {
	m := &webrtc.MediaEngine{}
	if err := registerCodecs(m); err != nil {
		return nil, fmt.Errorf("register codecs: %w", err)
	}
	reg := &interceptor.Registry{}
	if repair != nil {
		reg.Add(repair)
	}
	if subscriber {
		// What pion's TWCC and NACK configuration negotiated, in its order,
		// without their interceptors.
		for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
			if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI}, kind); err != nil {
				return nil, fmt.Errorf("twcc: %w", err)
			}
		}
		m.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack"}, webrtc.RTPCodecTypeVideo)
		m.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack", Parameter: "pli"}, webrtc.RTPCodecTypeVideo)
	} else {
		// Pion's defaults minus its stats interceptor (nothing here reads
		// GetStats, and it costs a lock per packet): NACKs and receiver
		// reports to the publisher, TWCC feedback for its estimator.
		if err := webrtc.ConfigureNack(m, reg); err != nil {
			return nil, fmt.Errorf("nack: %w", err)
		}
		if err := webrtc.ConfigureRTCPReports(reg); err != nil {
			return nil, fmt.Errorf("rtcp reports: %w", err)
		}
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		return nil, fmt.Errorf("simulcast extensions: %w", err)
	}
	if subscriber {
		m.RegisterFeedback(webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBTransportCC}, webrtc.RTPCodecTypeVideo)
		m.RegisterFeedback(webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBTransportCC}, webrtc.RTPCodecTypeAudio)
	} else if err := webrtc.ConfigureTWCCSender(m, reg); err != nil {
		return nil, fmt.Errorf("twcc feedback: %w", err)
	}
	settings := s.settings
	if keys != nil {
		if err := settings.SetAnsweringDTLSRole(webrtc.DTLSRoleServer); err != nil {
			return nil, fmt.Errorf("dtls role: %w", err)
		}
		settings.SetDTLSServerHelloMessageHook(keys.onServerHello)
		settings.SetDTLSKeyLogWriter(keys)
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(settings))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("new peer connection: %w", err)
	}
	return pc, nil
}

// waitGathered waits until the connection's candidates are in its local
// description: the sfu sends complete descriptions and never trickles, so a
// client cannot see a candidate before the description it belongs to.
func waitGathered(ctx context.Context, pc *webrtc.PeerConnection) error {
	gathered := webrtc.GatheringCompletePromise(pc)
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-gathered:
		return nil
	case <-ctx.Done():
		return ErrClosed
	case <-t.C:
		return errors.New("ICE gathering timed out")
	}
}

// ICEServers returns the STUN/TURN servers a client should use, with
// credentials for the given participant valid for the given duration.
func (s *SFU) ICEServers(participantID string) []ICEServer {
	if s.turn == nil {
		return nil
	}
	srv, err := s.turn.iceServer(participantID)
	if err != nil {
		s.log.Error("turn credentials", "err", err)
		return nil
	}
	return []ICEServer{srv}
}

// EndReasonShutdown is the lessonEnded reason of the rooms a node closes
// as it shuts down: the room ends there, the lesson does not (its
// participants reconnect), so the recorder keeps it open.
const EndReasonShutdown = "server shutting down"

// Close ends every lesson and releases the media ports.
func (s *SFU) Close() error {
	s.Rooms.EndAll(EndReasonShutdown)
	s.mu.Lock()
	s.closed = true
	ps := make([]*Participant, 0, len(s.participants))
	for p := range s.participants {
		ps = append(ps, p)
	}
	s.mu.Unlock()
	for _, p := range ps {
		p.Close("server shutting down")
	}
	return s.closePorts()
}

func (s *SFU) closePorts() error {
	var errs []error
	if s.turn != nil {
		errs = append(errs, s.turn.close())
	}
	if s.tcpMux != nil {
		errs = append(errs, s.tcpMux.Close())
	} else if s.tcpLn != nil {
		errs = append(errs, s.tcpLn.Close())
	}
	if s.udpMux != nil {
		errs = append(errs, s.udpMux.Close())
	} else if s.udpConn != nil {
		errs = append(errs, s.udpConn.Close())
	}
	return errors.Join(errs...)
}

func (s *SFU) addParticipant(p *Participant) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.participants[p] = struct{}{}
	return nil
}

func (s *SFU) removeParticipant(p *Participant) {
	s.mu.Lock()
	delete(s.participants, p)
	s.mu.Unlock()
}

// udpSocketBuffer is what the shared ICE UDP socket asks the kernel for,
// each way. Every publisher's media and every subscriber's feedback arrive
// on this one socket; at the default 208 KiB a scheduling hiccup of a few
// milliseconds on a busy node overflows it and the kernel drops packets
// from everyone (seen in the 200-classroom bench as loss on the teacher's
// uplink). 4 MiB holds about 100 ms of a full node's traffic.
const udpSocketBuffer = 4 << 20

// growSocketBuffers enlarges the socket's buffers and warns when the
// kernel grants less (net.core.rmem_max / wmem_max cap them).
func growSocketBuffers(conn net.PacketConn, log *slog.Logger) {
	udp, ok := conn.(*net.UDPConn)
	if !ok {
		return
	}
	if err := udp.SetReadBuffer(udpSocketBuffer); err != nil {
		log.Warn("cannot enlarge the UDP receive buffer", "err", err)
	}
	if err := udp.SetWriteBuffer(udpSocketBuffer); err != nil {
		log.Warn("cannot enlarge the UDP send buffer", "err", err)
	}
	rcv, snd := socketBufferSizes(udp)
	// Linux reports twice the size granted (it counts its bookkeeping).
	if rcv > 0 && rcv/2 < udpSocketBuffer || snd > 0 && snd/2 < udpSocketBuffer {
		log.Warn("UDP socket buffers are smaller than asked: raise net.core.rmem_max and net.core.wmem_max (docs/DEPLOY.md)",
			"receive_bytes", rcv/2, "send_bytes", snd/2, "wanted_bytes", udpSocketBuffer)
	}
}
