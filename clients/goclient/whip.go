package goclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/pion/webrtc/v4"

	"podium/internal/sdpfrag"
)

func wsURL(base, path string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("server url: %w", err)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	case "ws", "wss":
	default:
		return "", fmt.Errorf("server url %q: want http(s) or ws(s)", base)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = path
	}
	u.RawQuery = ""
	return u.String(), nil
}

// HTTPSession is a WHIP publisher or WHEP player.
type HTTPSession struct {
	PC       *webrtc.PeerConnection
	Location string // absolute URL of the resource
	// ETag names the server's ICE session (new after each ICE restart);
	// PATCH requests send it as If-Match.
	ETag  string
	token string
}

// Trickle sends candidates to the session (RFC 9725 §4.3.1: PATCH with a
// trickle-ice-sdpfrag naming the current ICE credentials).
func (s *HTTPSession) Trickle(ctx context.Context, cands []webrtc.ICECandidateInit) error {
	local := sdpfrag.FromSDP(s.PC.LocalDescription().SDP)
	frag := sdpfrag.Frag{Ufrag: local.Ufrag, Pwd: local.Pwd, Media: local.Media, Mid: local.Mid, Candidates: cands}
	resp, err := s.patch(ctx, s.ETag, frag.String())
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PATCH %s: %s", s.Location, resp.Status)
	}
	return nil
}

// RestartICE restarts ICE without a new offer, as RFC 9725 §4.3.2 does it:
// new local credentials and candidates go to the server in a PATCH with
// If-Match "*", and the server's new credentials and candidates from its
// 200 reply take the old ones' place in the remote description.
func (s *HTTPSession) RestartICE(ctx context.Context) error {
	offer, err := s.PC.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		return fmt.Errorf("ICE restart offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(s.PC)
	if err := s.PC.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("ICE restart: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return ctx.Err()
	}
	resp, err := s.patch(ctx, "*", sdpfrag.FromSDP(s.PC.LocalDescription().SDP).String())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ICE restart: PATCH %s: %s: %s", s.Location, resp.Status, body)
	}
	remote, err := sdpfrag.Parse(string(body))
	if err != nil || remote.Ufrag == "" || remote.Pwd == "" {
		return fmt.Errorf("ICE restart: the server's fragment has no credentials (%v): %s", err, body)
	}
	answer := webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdpfrag.WithCredentials(s.PC.RemoteDescription().SDP, remote.Ufrag, remote.Pwd)}
	if err := s.PC.SetRemoteDescription(answer); err != nil {
		return fmt.Errorf("ICE restart: apply the server's credentials: %w", err)
	}
	for _, c := range remote.Candidates {
		if err := s.PC.AddICECandidate(webrtc.ICECandidateInit{Candidate: c.Candidate}); err != nil {
			return fmt.Errorf("ICE restart: server candidate: %w", err)
		}
	}
	s.ETag = resp.Header.Get("ETag")
	return nil
}

func (s *HTTPSession) patch(ctx context.Context, ifMatch, body string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, s.Location, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", sdpfrag.MediaType)
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	resp, err := HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("PATCH %s: %w", s.Location, err)
	}
	return resp, nil
}

// Close DELETEs the resource and closes the connection.
func (s *HTTPSession) Close(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, s.Location, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := HTTPClient.Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
			err = fmt.Errorf("DELETE %s: %s", s.Location, resp.Status)
		}
	}
	_ = s.PC.Close()
	return err
}

// WHIPPublish publishes tracks to POST {serverURL}/whip/{room}.
func WHIPPublish(ctx context.Context, api *webrtc.API, serverURL, room, token string, tracks ...webrtc.TrackLocal) (*HTTPSession, error) {
	return httpNegotiate(ctx, api, serverURL+"/whip/"+room, token, func(pc *webrtc.PeerConnection) error {
		for _, t := range tracks {
			if _, err := pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
				return fmt.Errorf("add track: %w", err)
			}
		}
		return nil
	})
}

// WHEPWatch watches the teacher's camera and microphone through
// POST {serverURL}/whep/{room}; onTrack gets each received track.
func WHEPWatch(ctx context.Context, api *webrtc.API, serverURL, room, token string, onTrack func(*webrtc.TrackRemote, *webrtc.RTPReceiver)) (*HTTPSession, error) {
	return httpNegotiate(ctx, api, serverURL+"/whep/"+room, token, func(pc *webrtc.PeerConnection) error {
		for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
			if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				return fmt.Errorf("add transceiver: %w", err)
			}
		}
		pc.OnTrack(onTrack)
		return nil
	})
}

// httpNegotiate does the one-request offer/answer of WHIP and WHEP, with
// every candidate gathered into the offer (no trickle).
func httpNegotiate(ctx context.Context, api *webrtc.API, endpoint, token string, setup func(*webrtc.PeerConnection) error) (*HTTPSession, error) {
	if api == nil {
		var err error
		if api, err = NewAPI(true); err != nil {
			return nil, err
		}
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*HTTPSession, error) { _ = pc.Close(); return nil, err }
	if err := setup(pc); err != nil {
		return fail(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fail(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return fail(err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(pc.LocalDescription().SDP))
	if err != nil {
		return fail(err)
	}
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := HTTPClient.Do(req)
	if err != nil {
		return fail(fmt.Errorf("POST %s: %w", endpoint, err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		var e struct{ Error, Code string }
		_ = json.NewDecoder(bytes.NewReader(body)).Decode(&e)
		return fail(&HTTPError{Status: resp.StatusCode, Code: e.Code, Message: e.Error})
	}
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return fail(fmt.Errorf("POST %s: no Location in the answer", endpoint))
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)}); err != nil {
		return fail(fmt.Errorf("set answer: %w", err))
	}
	return &HTTPSession{PC: pc, Location: loc.String(), ETag: resp.Header.Get("ETag"), token: token}, nil
}
