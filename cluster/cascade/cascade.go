// Package cascade relays a lesson from the node that owns it (the origin)
// to edge nodes that serve more of its classrooms, so that everyone sees
// one lesson.
//
// Media: each relayed track travels, with every simulcast layer, over one
// WebRTC connection between the two nodes, so the edge's keyframe
// requests (PLI) and NACKs flow back to the origin exactly as a browser's
// would, and the edge's own subscribers see an ordinary sfu.Track. The
// origin relays its teacher's, sources' and on-stage classroom's tracks to
// edges, and mirrors each edge's own classrooms back (the teacher sees
// them and may put one on stage).
//
// Control: each mirror also reads its peer's lesson events over one
// websocket (control.go): origin -> edge the chat, stage, mute state,
// mute requests for the edge's classrooms, speakers and lessonEnded;
// edge -> origin its own participants' presence, raised hands, chat, mute
// state and speakers. A node only relays events about what it owns, and
// an edge never gets back what it sent, so nothing loops. Events carry a
// per-lesson sequence, and a broken stream resumes where it stopped.
//
// It knows sfu rooms and tracks, pion/webrtc and HTTP. It does not decide
// which node is an origin or an edge (package cluster places lessons).
package cascade

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"

	"podium/sfu"
)

// Config is shared by origins and edges.
type Config struct {
	// Key authenticates edges to origins (a bearer token every node
	// shares). An origin with an empty key refuses every edge.
	Key string
	// IPFilter limits the addresses used between nodes (nil: all).
	IPFilter func(net.IP) bool
	// IncludeLoopback allows loopback candidates (single-host tests and
	// several nodes on one machine).
	IncludeLoopback bool
	// Net replaces the host's network for the connections between nodes
	// (tests run them over a lossy virtual network); nil uses the host's.
	Net transport.Net
	// SelfURL is this node's base URL as other nodes reach it. An edge
	// gives it to the origin, which then mirrors the edge's own classrooms
	// back (empty: nothing flows back).
	SelfURL string
	// Metrics records the control streams between nodes (nil: nothing).
	Metrics *Metrics
}

// scopeOwn asks a node for its own classrooms (not the ones it mirrors):
// what flows back from an edge to the origin.
const scopeOwn = "own"

// mirrorSet records which participants of which local rooms are mirrors
// of another node's (and of which node), so they are never offered back
// as this node's own.
type mirrorSet struct {
	mu sync.Mutex
	m  map[string]map[string]string // room -> participant id -> peer URL
}

func (s *mirrorSet) add(room, participant, peer string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[room] == nil {
		s.m[room] = map[string]string{}
	}
	s.m[room][participant] = peer
}

func (s *mirrorSet) remove(room, participant string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m[room], participant)
	if len(s.m[room]) == 0 {
		delete(s.m, room)
	}
}

func (s *mirrorSet) has(room, participant string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[room][participant]
	return ok
}

// from reports whether a participant is a mirror of peer's.
func (s *mirrorSet) from(room, participant, peer string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.m[room][participant]
	return ok && p == peer
}

// New makes one node's cascade: the origin side (serving this node's
// lessons, and mirroring back the own classrooms of edges that pull from
// it) and the edge side (mirroring lessons owned elsewhere).
func New(rooms *sfu.Rooms, cfg Config, log *slog.Logger) (*Origin, *Edge, error) {
	mirrors := &mirrorSet{m: map[string]map[string]string{}}
	edge, err := newEdge(cfg, log, mirrors)
	if err != nil {
		return nil, nil, err
	}
	origin, err := newOrigin(rooms, cfg, log, mirrors, edge)
	if err != nil {
		return nil, nil, err
	}
	return origin, edge, nil
}

// PathPrefix is where an origin's handler lives.
const PathPrefix = "/cluster/cascade/"

// trackList is what an origin tells an edge about a lesson.
type trackList struct {
	Participants []sfu.ParticipantInfo `json:"participants"`
	Tracks       []sfu.TrackInfo       `json:"tracks"`
	// Stage is the on-stage participant (origin lists only).
	Stage string `json:"stage,omitempty"`
	// ChatEnabled and Recording are the lesson's state (origin lists
	// only; nil from an edge or an older origin).
	ChatEnabled *bool `json:"chatEnabled,omitempty"`
	Recording   *bool `json:"recording,omitempty"`
}

// pullRequest / pullResponse negotiate one relayed track.
type pullRequest struct {
	SDP string `json:"sdp"`
}

type pullResponse struct {
	Session string `json:"session"`
	SDP     string `json:"sdp"`
}

// newAPI builds the WebRTC API both ends use: the default codecs (VP8,
// H.264, Opus, ...) and the default interceptors (NACK generator and
// responder, RTCP reports), with ICE limited as configured.
func newAPI(cfg Config) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("cascade codecs: %w", err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		return nil, fmt.Errorf("cascade interceptors: %w", err)
	}
	se := webrtc.SettingEngine{}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	// Nodes know each other's addresses; no multicast DNS between them.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if cfg.IPFilter != nil {
		se.SetIPFilter(cfg.IPFilter)
	}
	se.SetIncludeLoopbackCandidate(cfg.IncludeLoopback)
	if cfg.Net != nil {
		se.SetNet(cfg.Net)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// authorized checks the edge's bearer key in constant time.
func authorized(r *http.Request, key string) bool {
	if key == "" {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(key)) == 1
}

// codecCapability turns the sfu's codec description into pion's.
func codecCapability(c sfu.Codec) webrtc.RTPCodecCapability {
	return webrtc.RTPCodecCapability{MimeType: c.MimeType, ClockRate: c.ClockRate, Channels: c.Channels, SDPFmtpLine: c.SDPFmtpLine}
}

func rtpKind(k sfu.Kind) (webrtc.RTPCodecType, error) {
	switch k {
	case sfu.KindAudio:
		return webrtc.RTPCodecTypeAudio, nil
	case sfu.KindVideo:
		return webrtc.RTPCodecTypeVideo, nil
	}
	return 0, fmt.Errorf("unknown track kind %q", k)
}

var errNotFound = errors.New("not found")

// relayed says whether a track of the room goes to edges: the teacher's
// and the room's sources' (cameras, whiteboards), and the on-stage
// classroom's, which every classroom sees.
func relayed(room *sfu.Room, t sfu.TrackInfo) bool {
	p, ok := room.Participant(t.ParticipantID)
	if !ok {
		return false
	}
	return p.Role == sfu.RoleTeacher || p.Role == sfu.RoleSource || p.ID == room.Stage()
}
