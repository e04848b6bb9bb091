package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"podium/internal/ridtag"
	"podium/internal/rtxrepair"
)

// peerOptions say what one synthetic participant's connections need.
type peerOptions struct {
	// link shapes incoming RTP (classrooms); nil for none.
	link *linkFactory
	// stamps records send times of outgoing video frames (teachers).
	stamps *stampFactory
	// loopbackOnly gathers only 127.0.0.1 candidates.
	loopbackOnly bool
	// transport is a classroom's --transport; "" (teachers) is TransportUDP.
	transport string
}

// Classroom transports (--transport): what a classroom's connections may
// use to reach the server.
const (
	// TransportUDP gathers UDP and TCP host candidates, as a browser does;
	// ICE then picks UDP.
	TransportUDP = "udp"
	// TransportTCP gathers TCP candidates only (ICE-TCP, RFC 6544): the
	// classroom opens no UDP socket at all, as behind a firewall that lets
	// only TCP out.
	TransportTCP = "tcp"
	// TransportTURNTCP relays everything through the server's TURN over
	// TCP (the join reply's ?transport=tcp URLs, relay policy).
	TransportTURNTCP = "turn-tcp"
)

// registerCodecs offers what a browser offers and Podium forwards: Opus with
// in-band FEC (and RED over it), VP8 and constrained-baseline H.264, each video codec with RTX
// and the feedback a browser announces.
func registerCodecs(m *webrtc.MediaEngine) error {
	fb := []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "transport-cc"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	codecs := []struct {
		c    webrtc.RTPCodecParameters
		kind webrtc.RTPCodecType
	}{
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111}, webrtc.RTPCodecTypeAudio},
		// RED (RFC 2198) over that Opus, as Chromium offers it: the server
		// adds redundancy by the classroom's loss.
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "audio/red", ClockRate: 48000, Channels: 2, SDPFmtpLine: "111/111"}, PayloadType: 63}, webrtc.RTPCodecTypeAudio},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: fb}, PayloadType: 96}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=96"}, PayloadType: 97}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", RTCPFeedback: fb}, PayloadType: 106}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=106"}, PayloadType: 107}, webrtc.RTPCodecTypeVideo},
	}
	for _, c := range codecs {
		if err := m.RegisterCodec(c.c, c.kind); err != nil {
			return err
		}
	}
	return nil
}

// newAPI builds a pion API for one participant. The interceptor order is
// the point: the emulated link comes first (nearest the network) so NACK,
// receiver reports and TWCC feedback all see the shaped stream; the
// simulcast tagger next, so it also tags the NACK responder's RTX packets;
// the stamp recorder last (nearest the packetizer), so it sees only
// originals.
func newAPI(o peerOptions) (*peerAPI, error) {
	m := &webrtc.MediaEngine{}
	if err := registerCodecs(m); err != nil {
		return nil, fmt.Errorf("codecs: %w", err)
	}
	reg := &interceptor.Registry{}
	if o.link != nil && o.link.profile.Active() {
		reg.Add(o.link)
	}
	// Retransmissions rejoin their stream before NACK, reports and TWCC
	// look at it, as in a browser (pion alone would NACK repaired packets
	// again and again).
	repair := rtxrepair.NewFactory()
	reg.Add(repair)
	if o.stamps != nil && o.stamps.layers != nil {
		reg.Add(ridtag.New(o.stamps.layers.tags))
	}
	if err := webrtc.ConfigureNack(m, reg); err != nil {
		return nil, fmt.Errorf("nack: %w", err)
	}
	if err := webrtc.ConfigureRTCPReports(reg); err != nil {
		return nil, fmt.Errorf("rtcp reports: %w", err)
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		return nil, fmt.Errorf("simulcast: %w", err)
	}
	if err := webrtc.ConfigureTWCCSender(m, reg); err != nil {
		return nil, fmt.Errorf("twcc: %w", err)
	}
	if o.stamps != nil {
		reg.Add(o.stamps)
	}
	var se webrtc.SettingEngine
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// A measuring client, not a target: replay windows cost per packet and
	// protect nothing here.
	se.DisableSRTPReplayProtection(true)
	se.DisableSRTCPReplayProtection(true)
	// The tool closes its connections itself (closeConns); pion closing one
	// on the server's DTLS close_notify, from a goroutine of its own, would
	// race with the end-of-run reading of the selected pair (GetStats).
	se.DisableCloseByDTLS(true)
	switch o.transport {
	case TransportTCP:
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	case TransportTURNTCP:
		// A relay candidate is a UDP address on the TURN server, so pion
		// publishes relay candidates only with UDP4 enabled; the classroom
		// itself sends nothing over UDP: the relay policy gathers no host
		// candidates and relayConfig keeps only TURN URLs over TCP.
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	default:
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4})
	}
	if o.loopbackOnly {
		se.SetIncludeLoopbackCandidate(true)
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))
	return &peerAPI{API: api, repair: repair}, nil
}

// iceServer is one entry of the join reply's iceServers.
type iceServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username"`
	Credential string   `json:"credential"`
}

// connConfig is the configuration of a connection of a participant on
// transport: with TransportTURNTCP only the relay, through the join
// reply's TURN URLs over TCP (turn: and turns:); otherwise pion's default,
// no ICE servers (the tool and the server share the host).
func connConfig(transport string, servers []iceServer) (webrtc.Configuration, error) {
	if transport != TransportTURNTCP {
		return webrtc.Configuration{}, nil
	}
	var relays []webrtc.ICEServer
	for _, s := range servers {
		var urls []string
		for _, u := range s.URLs {
			if (strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:")) && strings.Contains(u, "transport=tcp") {
				urls = append(urls, u)
			}
		}
		if len(urls) > 0 {
			relays = append(relays, webrtc.ICEServer{URLs: urls, Username: s.Username, Credential: s.Credential})
		}
	}
	if len(relays) == 0 {
		return webrtc.Configuration{}, errors.New("transport turn-tcp: the join reply names no TURN URL over TCP (is the server's TURN on? --single-port turns it on)")
	}
	return webrtc.Configuration{ICEServers: relays, ICETransportPolicy: webrtc.ICETransportPolicyRelay}, nil
}

// transportOf names what a connection's selected candidate pair runs over,
// seen from the tool's side: "udp", "tcp" (ICE-TCP), or "relay-" and the
// protocol to the TURN server ("relay-tcp"); "" while no pair is selected.
// It asks pion's agent, so it must not run inside a pion callback.
func transportOf(pc *webrtc.PeerConnection) string {
	var ice *webrtc.ICETransport
	for _, t := range pc.GetTransceivers() {
		if r := t.Receiver(); r != nil && r.Transport() != nil {
			ice = r.Transport().ICETransport() // one for all: bundled
			break
		}
	}
	if ice == nil {
		return ""
	}
	pair, ok := ice.GetSelectedCandidatePairStats()
	if !ok {
		return ""
	}
	local, ok := pc.GetStats()[pair.LocalCandidateID].(webrtc.ICECandidateStats)
	if !ok {
		return ""
	}
	if local.CandidateType == webrtc.ICECandidateTypeRelay {
		return "relay-" + local.RelayProtocol
	}
	return local.Protocol
}

// peerAPI is one participant's pion API (one per connection) and the RTX
// unwrapper of that connection, which must read every remote description
// before it is set.
type peerAPI struct {
	*webrtc.API
	repair *rtxrepair.Factory
}

// completeLocal sets a local description and waits until its candidates
// are gathered, so the description can be sent whole (no trickle).
func completeLocal(ctx context.Context, pc *webrtc.PeerConnection, desc webrtc.SessionDescription) (string, error) {
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(desc); err != nil {
		return "", fmt.Errorf("set local description: %w", err)
	}
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", ctx.Err()
	case <-t.C:
		return "", errors.New("ICE gathering timed out")
	}
	return pc.LocalDescription().SDP, nil
}
