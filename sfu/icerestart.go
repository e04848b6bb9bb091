package sfu

import (
	"context"
	"fmt"
	"sync"

	"github.com/pion/webrtc/v4"

	"podium/internal/sdpfrag"
)

// restartAnswererICE restarts ICE on a connection the client offered, with
// the client's new credentials and no new offer (a WHIP or WHEP PATCH): the
// client's last offer is applied again with the new ufrag and pwd, which
// pion takes as an ICE restart of the answering side, and the new answer
// carries the server's new credentials and candidates. negMu is the
// connection's negotiation lock.
func restartAnswererICE(ctx context.Context, pc *webrtc.PeerConnection, negMu *sync.Mutex, ufrag, pwd string) (webrtc.SessionDescription, error) {
	negMu.Lock()
	defer negMu.Unlock()
	cur := pc.RemoteDescription()
	if cur == nil || cur.Type != webrtc.SDPTypeOffer {
		return webrtc.SessionDescription{}, fmt.Errorf("%w: ICE restart without an offer: this connection was not offered by the client", ErrBadSDP)
	}
	offer := webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdpfrag.WithCredentials(cur.SDP, ufrag, pwd)}
	if err := pc.SetRemoteDescription(offer); err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("%w: ICE restart: %v", ErrBadSDP, err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("ICE restart: answer: %w", err)
	}
	if err := pc.SetLocalDescription(answer); err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("ICE restart: set local description: %w", err)
	}
	if err := waitGathered(ctx, pc); err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("ICE restart: %w", err)
	}
	return *pc.LocalDescription(), nil
}
