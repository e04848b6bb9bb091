package cascade

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"podium/internal/httpx"
	"podium/sfu"
)

// Origin serves the lessons of this node to edges.
type Origin struct {
	rooms   *sfu.Rooms
	api     *webrtc.API
	key     string
	log     *slog.Logger
	mirrors *mirrorSet
	edge    *Edge // mirrors edges' own classrooms back into this node's rooms

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	sessions map[string]*originSession
	backs    map[string]bool // "<lesson> <edge url>" mirrored back now
	journals map[*sfu.Room]*journal
}

func newOrigin(rooms *sfu.Rooms, cfg Config, log *slog.Logger, mirrors *mirrorSet, edge *Edge) (*Origin, error) {
	api, err := newAPI(cfg)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Origin{rooms: rooms, api: api, key: cfg.Key, log: log, mirrors: mirrors, edge: edge,
		ctx: ctx, cancel: cancel, sessions: map[string]*originSession{}, backs: map[string]bool{},
		journals: map[*sfu.Room]*journal{}}, nil
}

// Handler serves, under PathPrefix:
//
//	GET    {lesson}                  the participants and tracks relayed to edges
//	POST   {lesson}/tracks/{track}   an edge's recvonly offer -> answer, relay starts
//	DELETE {lesson}/sessions/{id}    the edge stops the relay
//	GET    {lesson}/events           the lesson's events, a websocket (control.go)
func (o *Origin) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathPrefix+"{lesson}", o.serveList)
	mux.HandleFunc("POST "+PathPrefix+"{lesson}/tracks/{track}", o.servePull)
	mux.HandleFunc("DELETE "+PathPrefix+"{lesson}/sessions/{id}", o.serveStop)
	mux.HandleFunc("GET "+PathPrefix+"{lesson}/events", o.serveEvents)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !authorized(r, o.key) {
			httpx.WriteError(w, http.StatusUnauthorized, "unauthorized", "cascade: missing or wrong cluster key")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (o *Origin) serveList(w http.ResponseWriter, r *http.Request) {
	room, ok := o.rooms.Room(r.PathValue("lesson"))
	if !ok {
		httpx.WriteError(w, http.StatusNotFound, "not_found", "no such lesson on this node")
		return
	}
	own := r.URL.Query().Get("scope") == scopeOwn
	edgeURL := r.URL.Query().Get("edge")
	list := trackList{Participants: []sfu.ParticipantInfo{}, Tracks: []sfu.TrackInfo{}}
	seen := map[string]bool{}
	// fromEdge: the asking edge's own classroom, mirrored here; it has it.
	fromEdge := func(id string) bool { return edgeURL != "" && o.mirrors.from(room.ID(), id, edgeURL) }
	for _, p := range room.Participants() {
		// An origin shows its teachers to every edge, tracks or not: their
		// chat and mute requests name them.
		if own && o.ownClassroom(room, p) || !own && p.Role == sfu.RoleTeacher && !fromEdge(p.ID) {
			list.Participants = append(list.Participants, p)
			seen[p.ID] = true
		}
	}
	for _, t := range room.Tracks() {
		info := t.Info()
		if own && !seen[info.ParticipantID] || !own && (!relayed(room, info) || fromEdge(info.ParticipantID)) {
			continue
		}
		list.Tracks = append(list.Tracks, info)
		if !seen[info.ParticipantID] {
			seen[info.ParticipantID] = true
			if p, ok := room.Participant(info.ParticipantID); ok {
				list.Participants = append(list.Participants, p)
			}
		}
	}
	if !own {
		list.Stage = room.Stage()
		info := room.Info()
		list.ChatEnabled, list.Recording = &info.ChatEnabled, &info.Recording
		if edgeURL != "" {
			o.mirrorBack(room, edgeURL)
		}
	}
	httpx.WriteJSON(w, http.StatusOK, list)
}

// ownClassroom: a classroom (or viewer) of this node's own, not a mirror
// of another's: what an edge shows its origin.
func (o *Origin) ownClassroom(room *sfu.Room, p sfu.ParticipantInfo) bool {
	return (p.Role == sfu.RoleClassroom || p.Role == sfu.RoleViewer) && !o.mirrors.has(room.ID(), p.ID)
}

// mirrorBack starts, once per edge and lesson, mirroring the edge's own
// classrooms into room: the teacher sees them, and the one on stage is
// relayed from here to every other edge.
func (o *Origin) mirrorBack(room *sfu.Room, edgeURL string) {
	if !validPeerURL(edgeURL) {
		return
	}
	key := room.ID() + " " + edgeURL
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.backs[key] || o.ctx.Err() != nil {
		return
	}
	o.backs[key] = true
	o.wg.Go(func() {
		defer func() {
			o.mu.Lock()
			delete(o.backs, key)
			o.mu.Unlock()
		}()
		err := o.edge.mirror(o.ctx, edgeURL, room, true)
		o.log.Info("cascade: flow back from edge ended", "lesson", room.ID(), "edge", edgeURL, "err", err)
	})
}

func (o *Origin) serveStop(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	s, ok := o.sessions[r.PathValue("id")]
	o.mu.Unlock()
	if !ok || s.lesson != r.PathValue("lesson") {
		httpx.WriteError(w, http.StatusNotFound, "not_found", "no such cascade session")
		return
	}
	s.stop()
	w.WriteHeader(http.StatusNoContent)
}

func (o *Origin) servePull(w http.ResponseWriter, r *http.Request) {
	room, ok := o.rooms.Room(r.PathValue("lesson"))
	if !ok {
		httpx.WriteError(w, http.StatusNotFound, "not_found", "no such lesson on this node")
		return
	}
	track, ok := room.Track(r.PathValue("track"))
	if ok {
		info := track.Info()
		p, _ := room.Participant(info.ParticipantID)
		ok = relayed(room, info) || o.ownClassroom(room, p)
	}
	if !ok {
		httpx.WriteError(w, http.StatusNotFound, "not_found", "no such relayed track")
		return
	}
	var req pullRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil || req.SDP == "" {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", "body must be {\"sdp\": \"<offer>\"}")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	s, answer, err := o.startSession(ctx, room, track, req.SDP)
	if err != nil {
		o.log.Warn("cascade pull refused", "lesson", room.ID(), "track", track.ID(), "err", err)
		httpx.WriteError(w, http.StatusBadRequest, "bad_sdp", err.Error())
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, pullResponse{Session: s.id, SDP: answer})
}

// originSession relays one track, every layer, to one edge.
type originSession struct {
	id     string
	lesson string
	track  *sfu.Track
	pc     *webrtc.PeerConnection
	layers []*layerWriter
	once   sync.Once
	done   chan struct{}
	origin *Origin
}

// layerWriter is the Sink for one layer: it strips the publisher's header
// extensions (their ids belong to the publisher's connection, not this
// one) and writes to the relay connection without allocating.
type layerWriter struct {
	local   *webrtc.TrackLocalStaticRTP
	scratch rtp.Packet // only touched on the layer's publisher goroutine
}

// sink fans the origin track's packets to the per-layer writers.
type sink struct{ layers []*layerWriter }

func (s *sink) WriteRTP(layer int, pkt *rtp.Packet) {
	if layer < 0 || layer >= len(s.layers) {
		return
	}
	lw := s.layers[layer]
	lw.scratch.Header = pkt.Header
	lw.scratch.Header.Extension = false
	lw.scratch.Header.Extensions = nil
	lw.scratch.Header.ExtensionProfile = 0
	lw.scratch.Payload = pkt.Payload
	lw.scratch.PaddingSize = 0
	lw.scratch.Header.Padding = false
	_ = lw.local.WriteRTP(&lw.scratch) // a failed write is a lost packet; NACK recovers it
	lw.scratch.Payload = nil
}

func (o *Origin) startSession(ctx context.Context, room *sfu.Room, track *sfu.Track, offer string) (*originSession, string, error) {
	info := track.Info()
	if _, err := rtpKind(info.Kind); err != nil {
		return nil, "", err
	}
	pc, err := o.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, "", fmt.Errorf("peer connection: %w", err)
	}
	fail := func(err error) (*originSession, string, error) {
		pc.Close()
		return nil, "", err
	}
	s := &originSession{id: newID(), lesson: room.ID(), track: track, pc: pc, done: make(chan struct{}), origin: o}
	// One sendonly transceiver per layer, added before the offer is applied:
	// pion matches them in order to the edge's recvonly sections, so the
	// edge knows a packet's layer from the section it arrives on.
	var senders []*webrtc.RTPSender
	for i := range info.Layers {
		local, err := webrtc.NewTrackLocalStaticRTP(codecCapability(info.Codec), fmt.Sprintf("%s-%d", info.ID, i), info.ParticipantID)
		if err != nil {
			return fail(err)
		}
		tr, err := pc.AddTransceiverFromTrack(local, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return fail(fmt.Errorf("layer %d: %w", i, err))
		}
		senders = append(senders, tr.Sender())
		s.layers = append(s.layers, &layerWriter{local: local})
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return fail(fmt.Errorf("%w: %v", sfu.ErrBadSDP, err))
	}
	for i, tr := range pc.GetTransceivers() {
		if i < len(info.Layers) && tr.Mid() == "" {
			return fail(fmt.Errorf("offer has no media section for layer %d of track %s", i, info.ID))
		}
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", sfu.ErrBadSDP, err))
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return fail(fmt.Errorf("%w: %v", sfu.ErrBadSDP, err))
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return fail(fmt.Errorf("ice gathering: %w", ctx.Err()))
	}

	o.mu.Lock()
	if o.ctx.Err() != nil {
		o.mu.Unlock()
		return fail(errors.New("origin closed"))
	}
	o.sessions[s.id] = s
	o.wg.Add(1 + len(s.layers))
	o.mu.Unlock()

	for i, sender := range senders {
		go s.readRTCP(i, sender)
	}
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateClosed {
			s.stop()
		}
	})
	track.AddSink(s.sinkID(), &sink{layers: s.layers})
	go s.watch(room)
	o.log.Info("cascade relay started", "lesson", room.ID(), "track", info.ID, "layers", len(s.layers), "session", s.id)
	return s, pc.LocalDescription().SDP, nil
}

func (s *originSession) sinkID() string { return "cascade-" + s.id }

// readRTCP turns the edge's keyframe requests for one layer into the
// track's (merged, throttled) request to the publisher. NACKs are answered
// by the NACK responder interceptor before they get here.
func (s *originSession) readRTCP(layer int, sender *webrtc.RTPSender) {
	defer s.origin.wg.Done()
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				s.track.RequestKeyframe(layer)
			}
		}
	}
}

// watch ends the session with the lesson, the origin, or the edge.
func (s *originSession) watch(room *sfu.Room) {
	defer s.origin.wg.Done()
	select {
	case <-room.Done():
	case <-s.origin.ctx.Done():
	case <-s.done:
	}
	s.stop()
}

func (s *originSession) stop() {
	s.once.Do(func() {
		close(s.done)
		s.track.RemoveSink(s.sinkID())
		s.pc.Close() // ends the readRTCP loops
		s.origin.mu.Lock()
		delete(s.origin.sessions, s.id)
		s.origin.mu.Unlock()
		s.origin.log.Info("cascade relay stopped", "lesson", s.lesson, "track", s.track.ID(), "session", s.id)
	})
}

// Close stops every relay and waits for their goroutines.
func (o *Origin) Close() {
	o.mu.Lock()
	o.cancel()
	for room, j := range o.journals {
		j.cancel()
		delete(o.journals, room)
	}
	o.mu.Unlock()
	o.wg.Wait()
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
