package sfu

// CONTRACT between sfu (WebRTC) and signaling. The exported names and
// signatures in this file are what package signaling codes against; the
// bodies are the sfu's own business. Change a signature only together with
// its callers.

import (
	"errors"
	"time"

	"github.com/pion/webrtc/v4"
)

// Target names one of a participant's two peer connections. Every
// participant has up to two: the publisher connection, offered by the client,
// carries what it sends; the subscriber connection, offered by the server,
// carries what it receives. Two connections mean no offer glare and no
// renegotiation of the uplink when someone else publishes.
type Target string

const (
	TargetPublisher  Target = "publisher"
	TargetSubscriber Target = "subscriber"
)

// Signaler carries server-to-client signaling for one participant;
// package signaling implements it over the websocket. Calls never block for
// long (the implementation queues).
type Signaler interface {
	// SendOffer sends a server-made offer for the subscriber connection;
	// the client answers through Participant.SetAnswer.
	SendOffer(offer webrtc.SessionDescription)
	// SendCandidate trickles one of the server's ICE candidates.
	SendCandidate(target Target, c webrtc.ICECandidateInit)
}

// PublishTrack tells the sfu what a track in a client's offer is. TrackID is
// the MediaStreamTrack id (the second part of a=msid in the SDP).
type PublishTrack struct {
	TrackID string `json:"trackId"`
	Source  Source `json:"source"`
	Name    string `json:"name,omitempty"`
}

// Quality is a participant's connection as the server sees it.
type Quality struct {
	// EstimatedBitrate is the bandwidth estimate for what the server sends
	// to this participant, in bit/s (0 when unknown).
	EstimatedBitrate uint64 `json:"estimatedBitrate"`
	// SendBitrate is what the server currently sends to it, in bit/s.
	SendBitrate uint64 `json:"sendBitrate"`
	// Loss is the fraction of packets lost towards the participant (0..1), from receiver reports.
	Loss float64 `json:"loss"`
	// RTT is the round-trip time from RTCP, 0 when unknown.
	RTT time.Duration `json:"rtt"`
	// Layers maps a subscribed video track id to the simulcast layer index forwarded now.
	Layers map[string]int `json:"layers,omitempty"`
}

// Errors returned by Participant methods.
var (
	ErrNotAllowed     = errors.New("not allowed for this role")
	ErrBadSDP         = errors.New("bad session description")
	ErrClosed         = errors.New("participant has left")
	ErrNotImplemented = errors.New("not implemented yet")
)

// Participant is one WebRTC client in a lesson (a teacher, a classroom, a
// viewer, a WHIP publisher or a WHEP player).
type Participant struct {
	info ParticipantInfo
	room *Room
}

// JoinOptions are the participant-specific knobs of a join.
type JoinOptions struct {
	// AutoSubscribe subscribes the participant to what its role should see:
	// a classroom or viewer gets the teacher's tracks and the on-stage
	// classroom's; a teacher gets every classroom's camera and mic. Tracks
	// published later are added as they come.
	AutoSubscribe bool
}

// Join adds a WebRTC participant to a room. info.ID must be unique in the
// room; the caller (signaling) chooses it. sig may be nil for WHIP/WHEP,
// which negotiate in one request.
func (s *SFU) Join(room *Room, info ParticipantInfo, sig Signaler, opts JoinOptions) (*Participant, error) {
	return nil, ErrNotImplemented
}

// ID returns the participant's id.
func (p *Participant) ID() string { return p.info.ID }

// Info returns the participant's description.
func (p *Participant) Info() ParticipantInfo { return p.info }

// Room returns the participant's room.
func (p *Participant) Room() *Room { return p.room }

// Publish takes a client's offer for the publisher connection (first or
// renegotiated) with what its tracks are, and returns the answer. Only
// teachers, classrooms and WHIP publishers may publish; a classroom may not
// publish a screen.
func (p *Participant) Publish(offer webrtc.SessionDescription, tracks []PublishTrack) (webrtc.SessionDescription, error) {
	return webrtc.SessionDescription{}, ErrNotImplemented
}

// Watch takes a WHEP player's recvonly offer and answers it with the given
// tracks (the teacher's camera and mic, typically) attached.
func (p *Participant) Watch(offer webrtc.SessionDescription, trackIDs []string) (webrtc.SessionDescription, error) {
	return webrtc.SessionDescription{}, ErrNotImplemented
}

// SetAnswer applies the client's answer to the last offer sent through
// Signaler.SendOffer.
func (p *Participant) SetAnswer(answer webrtc.SessionDescription) error {
	return ErrNotImplemented
}

// AddCandidate adds a client's trickled ICE candidate to one connection.
func (p *Participant) AddCandidate(target Target, c webrtc.ICECandidateInit) error {
	return ErrNotImplemented
}

// Subscribe forwards the given tracks to the participant (renegotiating the
// subscriber connection); already subscribed ids are ignored.
func (p *Participant) Subscribe(trackIDs ...string) error { return ErrNotImplemented }

// Unsubscribe stops forwarding the given tracks.
func (p *Participant) Unsubscribe(trackIDs ...string) error { return ErrNotImplemented }

// SetMaxLayer caps the simulcast layer forwarded for one subscribed track
// (the teacher's grid wants small pictures); -1 removes the cap.
func (p *Participant) SetMaxLayer(trackID string, layer int) error { return ErrNotImplemented }

// RestartICE makes a new offer with fresh ICE credentials for the
// subscriber connection (the client restarts the publisher side itself by
// sending an offer with iceRestart).
func (p *Participant) RestartICE() error { return ErrNotImplemented }

// Quality reports the participant's connection as the server sees it.
func (p *Participant) Quality() Quality { return Quality{} }

// Done is closed once the participant has left (Close, or its connections failed for good).
func (p *Participant) Done() <-chan struct{} { return nil }

// Close leaves the room: its tracks are unpublished, its connections closed.
func (p *Participant) Close(reason string) {}
