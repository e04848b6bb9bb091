package sfu

import (
	"net/netip"

	"github.com/pion/webrtc/v4"
)

// ReceiveStats is what the server forwards to one participant, as the
// teacher's per-classroom dashboard needs it (package signaling grades it):
// the receiving connection and, per subscribed video track, the layer
// forwarded and the best one it could have.
type ReceiveStats struct {
	// Connection is the subscriber connection's state ("connected",
	// "disconnected", ...; webrtc.PeerConnectionState names), "" when the
	// participant receives nothing.
	Connection string
	// Transport is how that connection runs, from the selected ICE pair:
	// "udp", "tcp" (ICE-TCP) or "turn" (the client sends through a relay);
	// "" before a pair is selected.
	Transport string
	Video     []VideoForward
}

// VideoForward is one subscribed video track.
type VideoForward struct {
	TrackID string
	// Layers names the track's simulcast layers, lowest first ("q", "h",
	// "f"; one "" layer without simulcast).
	Layers []string
	// Layer is the layer forwarded now, -1 before the first keyframe.
	Layer int
	// Top is the highest layer the publisher is sending now that the
	// subscriber has not capped itself below (setMaxLayer): Layer below
	// Top means the link, not the choice, holds the picture down.
	Top int
	// Stills: only a keyframe every few seconds is forwarded (the
	// subscriber's link cannot carry video, sfu/stills.go).
	Stills bool
	// FramesSent counts the frames forwarded so far.
	FramesSent uint64
}

// layerLiveRate is the measured rate above which a layer counts as being
// sent: a paused layer's smoothed rate decays towards 0 over a few seconds.
const layerLiveRate = 20_000

// ReceiveStats reports what the participant receives now.
func (p *Participant) ReceiveStats() ReceiveStats {
	p.mu.Lock()
	sub := p.sub
	p.mu.Unlock()
	if sub == nil {
		return ReceiveStats{}
	}
	return sub.receiveStats()
}

func (s *subscriber) receiveStats() ReceiveStats {
	st := ReceiveStats{Connection: s.pc.ConnectionState().String(), Transport: s.transport.Load().(string)}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, sub := range s.downs {
		if sub.dt.kind != KindVideo {
			continue
		}
		top := 0
		for l, r := range sub.rates {
			if r >= layerLiveRate {
				top = l
			}
		}
		if c := sub.dt.maxLayerCap(); c >= 0 && top > c {
			top = c
		}
		st.Video = append(st.Video, VideoForward{
			TrackID:    id,
			Layers:     sub.dt.track.info.Layers,
			Layer:      sub.dt.CurrentLayer(),
			Top:        top,
			Stills:     forwardMode(sub.dt.mode.Load()) == forwardStills,
			FramesSent: sub.dt.framesSent.Load(),
		})
	}
	return st
}

// watchTransport keeps the name of the selected ICE candidate pair's
// transport as pion announces it. Asking pion for the selected pair from
// another goroutine (the dashboard's) reads the ICE agent's candidates
// while it works on them: a data race.
func (s *subscriber) watchTransport() {
	s.transport.Store("")
	ice := s.pc.SCTP().Transport().ICETransport()
	ice.OnSelectedCandidatePairChange(func(pair *webrtc.ICECandidatePair) {
		s.transport.Store(transportName(pair))
		s.queue.setDestination(directDestination(pair))
		s.routeRTCP()
	})
}

// directDestination is where the egress may send SRTP itself for a
// selected pair: the remote address when the node's end is UDP (the node's
// one UDP socket; a relayed classroom's relay address is UDP too), 0 when
// it is TCP (ICE-TCP framing stays pion's), IPv6 or a name.
func directDestination(pair *webrtc.ICECandidatePair) udp4Dest {
	if pair == nil || pair.Local == nil || pair.Remote == nil || pair.Local.Protocol != webrtc.ICEProtocolUDP {
		return 0
	}
	ip, err := netip.ParseAddr(pair.Remote.Address)
	if err != nil {
		return 0
	}
	return udp4DestOf(netip.AddrPortFrom(ip, pair.Remote.Port))
}

// transportName names a candidate pair's transport.
func transportName(pair *webrtc.ICECandidatePair) string {
	if pair == nil || pair.Local == nil || pair.Remote == nil {
		return ""
	}
	if pair.Remote.Typ == webrtc.ICECandidateTypeRelay || pair.Local.Typ == webrtc.ICECandidateTypeRelay {
		return "turn"
	}
	return pair.Local.Protocol.String()
}
