package signaling

// WHIP (RFC 9725) and WHEP: one HTTP request carries the whole offer/answer,
// so these sessions have no websocket; the resource URL in Location is how
// the client ends them (DELETE) or trickles candidates (PATCH).

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/pion/webrtc/v4"

	"podium/internal/httpx"
	"podium/internal/sdpfrag"
	"podium/sfu"
	"podium/signaling/auth"
)

// httpSession is one WHIP publisher or WHEP player.
type httpSession struct {
	id   string
	kind string // "whip" or "whep"
	room string
	p    *sfu.Participant
	// mu serializes the session's PATCH requests and guards the ICE
	// session they act on: ufrag is the client's ICE username fragment (a
	// PATCH with another one restarts ICE), etag the entity-tag of the
	// server's side of the ICE session (If-Match), new after each restart.
	mu    sync.Mutex
	ufrag string
	etag  string
	// tokenID is the id of the token that opened the session (revocation
	// ends it); release returns its slot of that token's cap.
	tokenID string
	release func()
}

const maxSDPSize = 256 << 10

func (s *Server) mountWHIP(rt *auth.Router) {
	for _, kind := range []string{"whip", "whep"} {
		scope := auth.OfLesson("room", sfu.RoleTeacher)
		post := s.postWHIP
		if kind == "whep" {
			scope = auth.OfLesson("room", sfu.RoleTeacher, sfu.RoleClassroom, sfu.RoleViewer, sfu.RoleAdmin)
			post = s.postWHEP
		}
		rt.Handle("POST /"+kind+"/{room}", scope, http.HandlerFunc(post), cors)
		rt.Handle("DELETE /"+kind+"/{room}/{id}", scope, s.resourceHandler(kind, s.deleteResource), cors)
		rt.Handle("PATCH /"+kind+"/{room}/{id}", scope, s.resourceHandler(kind, s.patchResource), cors)
		rt.Handle("OPTIONS /"+kind+"/{room}", auth.PublicScope(), http.HandlerFunc(preflight), cors)
		rt.Handle("OPTIONS /"+kind+"/{room}/{id}", auth.PublicScope(), http.HandlerFunc(preflight), cors)
	}
}

// cors lets browser-based WHIP/WHEP players from any origin use the
// endpoints; the bearer token, not the origin, is what authorizes.
func cors(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Access-Control-Allow-Origin", "*")
		hd.Set("Access-Control-Expose-Headers", "Location, ETag, Link, Accept-Patch")
		h.ServeHTTP(w, r)
	})
}

func preflight(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Access-Control-Allow-Methods", "POST, DELETE, PATCH, OPTIONS")
	hd.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
	hd.Set("Access-Control-Max-Age", "86400")
	hd.Set("Accept-Post", "application/sdp")
	hd.Set("Accept-Patch", sdpfrag.MediaType)
	w.WriteHeader(http.StatusNoContent)
}

func hasContentType(r *http.Request, want string) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && strings.EqualFold(mt, want)
}

// readOffer checks the request's content type and SDP.
func readOffer(w http.ResponseWriter, r *http.Request) (string, bool) {
	if !hasContentType(r, "application/sdp") {
		httpx.WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/sdp")
		return "", false
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSDPSize))
	if err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", "cannot read the offer: "+err.Error())
		return "", false
	}
	if err := checkSDP(webrtc.SDPTypeOffer, string(b)); err != nil {
		writeProtocolError(w, err)
		return "", false
	}
	return string(b), true
}

func newResourceID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// offeredTracks names the tracks of a WHIP offer from their msid lines:
// video is the camera, audio the microphone (a WHIP encoder sends one of each).
// offerUfrag returns the ICE username fragment of an offer.
func offerUfrag(offer string) string {
	for _, line := range strings.Split(offer, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "a=ice-ufrag:"); ok {
			return v
		}
	}
	return ""
}

func offeredTracks(offer string) []sfu.PublishTrack {
	desc := webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}
	parsed, err := desc.Unmarshal()
	if err != nil {
		return nil
	}
	var out []sfu.PublishTrack
	for _, md := range parsed.MediaDescriptions {
		msid, ok := md.Attribute("msid")
		if !ok {
			continue
		}
		parts := strings.Fields(msid)
		if len(parts) != 2 {
			continue
		}
		src := sfu.SourceCamera
		if md.MediaName.Media == "audio" {
			src = sfu.SourceMicrophone
		}
		out = append(out, sfu.PublishTrack{TrackID: parts[1], Source: src})
	}
	return out
}

func (s *Server) postWHIP(w http.ResponseWriter, r *http.Request) {
	if s.Draining() {
		httpx.WriteError(w, http.StatusServiceUnavailable, "draining", "server is shutting down")
		return
	}
	offer, ok := readOffer(w, r)
	if !ok {
		return
	}
	c := claimsOf(r)
	release, ok := s.admitSession(w, c)
	if !ok {
		return
	}
	room, created, err := s.sfu.Rooms.GetOrCreateRoom(r.PathValue("room"))
	if err != nil {
		release()
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	// A publish that fails leaves no lesson behind (and so no recording).
	fail := func(p *sfu.Participant, err error) {
		if p != nil {
			p.Close("publish failed")
		}
		if created {
			room.End("the publisher's offer was refused")
		}
		release()
		writeProtocolError(w, err)
	}
	// The participant id comes from the token's identity, so an encoder
	// that publishes again (a reconnect without DELETE) replaces its stale
	// self at once, and its tracks keep their ids and their viewers.
	pid := "whip-" + participantID(c.Identity())
	old := s.whipSessionOf(room.ID(), pid)
	opts := sfu.JoinOptions{}
	if old != nil {
		opts.Replaces = old.p
	}
	info := sfu.ParticipantInfo{ID: pid, Name: c.Name, Role: sfu.RoleTeacher}
	p, err := s.sfu.Join(room, info, nil, opts)
	if errors.Is(err, sfu.ErrParticipantPresent) {
		release()
		httpx.WriteError(w, http.StatusConflict, "conflict", "another publish of this identity is under way; retry in a moment")
		return
	}
	if err != nil {
		fail(nil, err)
		return
	}
	if old != nil {
		s.endResource(old, "replaced by a new publish of the same identity")
		s.log.Info("WHIP publisher replaced its old session", "lesson", room.ID(), "participant", pid, "old", old.id)
	}
	answer, err := p.Publish(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}, offeredTracks(offer))
	if err != nil {
		fail(p, err)
		return
	}
	s.answerResource(w, &httpSession{id: newResourceID(), kind: "whip", room: room.ID(), p: p, ufrag: offerUfrag(offer), tokenID: c.ID, release: release}, answer)
}

// whipSessionOf returns the live WHIP session of a participant id in a
// lesson, or nil.
func (s *Server) whipSessionOf(room, pid string) *httpSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, hs := range s.resources {
		if hs.kind == "whip" && hs.room == room && hs.p.ID() == pid {
			return hs
		}
	}
	return nil
}

func (s *Server) postWHEP(w http.ResponseWriter, r *http.Request) {
	if s.Draining() {
		httpx.WriteError(w, http.StatusServiceUnavailable, "draining", "server is shutting down")
		return
	}
	c := claimsOf(r)
	room, found := s.sfu.Rooms.Room(r.PathValue("room"))
	if !found {
		httpx.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("lesson %q has not started", r.PathValue("room")))
		return
	}
	offer, ok := readOffer(w, r)
	if !ok {
		return
	}
	var ids []string
	for _, t := range room.Tracks() {
		ti := t.Info()
		if ti.Source != sfu.SourceCamera && ti.Source != sfu.SourceMicrophone {
			continue
		}
		if owner, ok := room.Participant(ti.ParticipantID); ok && owner.Role == sfu.RoleTeacher {
			ids = append(ids, ti.ID)
		}
	}
	if len(ids) == 0 {
		httpx.WriteError(w, http.StatusNotFound, "not_found", "the teacher is not sending a camera or microphone yet")
		return
	}
	release, ok := s.admitSession(w, c)
	if !ok {
		return
	}
	id := newResourceID()
	info := sfu.ParticipantInfo{ID: "whep-" + id[:10], Name: c.Name, Role: sfu.RoleViewer}
	p, err := s.sfu.Join(room, info, nil, sfu.JoinOptions{})
	if err != nil {
		release()
		writeProtocolError(w, err)
		return
	}
	answer, err := p.Watch(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}, ids)
	if err != nil {
		p.Close("watch failed")
		release()
		writeProtocolError(w, err)
		return
	}
	s.answerResource(w, &httpSession{id: id, kind: "whep", room: room.ID(), p: p, ufrag: offerUfrag(offer), tokenID: c.ID, release: release}, answer)
}

// answerResource registers the session, watches for its end, and writes
// the 201 reply.
func (s *Server) answerResource(w http.ResponseWriter, hs *httpSession, answer webrtc.SessionDescription) {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		hs.p.Close("server shutting down")
		hs.release()
		httpx.WriteError(w, http.StatusServiceUnavailable, "draining", "server is shutting down")
		return
	}
	hs.etag = newETag()
	s.resources[hs.id] = hs
	s.wg.Add(1)
	s.mu.Unlock()
	s.metrics.httpSessions.WithLabelValues(hs.kind).Inc()
	go func() {
		defer s.wg.Done()
		select {
		case <-hs.p.Done():
		case <-s.ctx.Done():
		}
		s.endResource(hs, "ended")
	}()
	loc := fmt.Sprintf("/%s/%s/%s", hs.kind, hs.room, hs.id)
	w.Header().Set("Location", loc)
	w.Header().Set("ETag", hs.etag)
	w.Header().Set("Accept-Patch", sdpfrag.MediaType)
	for _, ice := range s.sfu.ICEServers(hs.p.ID()) {
		for _, u := range ice.URLs {
			link := fmt.Sprintf(`<%s>; rel="ice-server"`, u)
			if ice.Username != "" {
				link += fmt.Sprintf(`; username=%q; credential=%q; credential-type="password"`, ice.Username, ice.Credential)
			}
			w.Header().Add("Link", link)
		}
	}
	w.Header().Set("Content-Type", "application/sdp")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer.SDP)
	s.log.Info("http session started", "kind", hs.kind, "lesson", hs.room, "participant", hs.p.ID())
}

// endResource closes a WHIP/WHEP session once.
func (s *Server) endResource(hs *httpSession, reason string) {
	s.mu.Lock()
	_, live := s.resources[hs.id]
	delete(s.resources, hs.id)
	s.mu.Unlock()
	if !live {
		return
	}
	s.metrics.httpSessions.WithLabelValues(hs.kind).Dec()
	hs.p.Close(reason)
	hs.release()
}

func (s *Server) resourceHandler(kind string, fn func(http.ResponseWriter, *http.Request, *httpSession)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		hs, ok := s.resources[r.PathValue("id")]
		s.mu.Unlock()
		if !ok || hs.kind != kind || hs.room != r.PathValue("room") {
			httpx.WriteError(w, http.StatusNotFound, "not_found", "no such session")
			return
		}
		fn(w, r, hs)
	})
}

func (s *Server) deleteResource(w http.ResponseWriter, r *http.Request, hs *httpSession) {
	s.endResource(hs, "deleted by the client")
	w.WriteHeader(http.StatusOK)
}

// patchResource is a WHIP/WHEP PATCH (RFC 9725 §4.3, the WHEP draft
// alike): a trickle-ice-sdpfrag body with candidates to add (204), or with
// new ICE credentials, an ICE restart, answered 200 with the server's new
// credentials and candidates and a new ETag. If-Match must name the
// current ICE session's entity-tag or be "*" (required for a restart);
// a stale one is refused with 412. Nothing changes on a refused request.
func (s *Server) patchResource(w http.ResponseWriter, r *http.Request, hs *httpSession) {
	if !hasContentType(r, sdpfrag.MediaType) {
		httpx.WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be "+sdpfrag.MediaType)
		return
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", "cannot read the fragment: "+err.Error())
		return
	}
	frag, err := sdpfrag.Parse(string(b))
	if err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	ifMatch := strings.TrimSpace(r.Header.Get("If-Match"))
	restart := frag.Ufrag != "" && frag.Ufrag != hs.ufrag
	switch {
	case ifMatch == "" && restart:
		httpx.WriteError(w, http.StatusPreconditionRequired, "precondition_required", `an ICE restart needs If-Match: "*" or the session's ETag`)
		return
	case ifMatch != "" && ifMatch != "*" && !etagListed(ifMatch, hs.etag):
		httpx.WriteError(w, http.StatusPreconditionFailed, "precondition_failed", "If-Match does not name the current ICE session (it was restarted since?)")
		return
	}
	target := sfu.TargetPublisher
	if hs.kind == "whep" {
		target = sfu.TargetSubscriber
	}
	if !restart {
		for _, c := range frag.Candidates {
			if err := hs.p.AddCandidate(target, c); err != nil {
				writeProtocolError(w, err)
				return
			}
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if frag.Pwd == "" {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", "an ICE restart needs a=ice-pwd with the new a=ice-ufrag")
		return
	}
	answer, err := hs.p.RestartClientICE(target, frag.Ufrag, frag.Pwd)
	if err != nil {
		writeProtocolError(w, err)
		return
	}
	for _, c := range frag.Candidates {
		if err := hs.p.AddCandidate(target, c); err != nil {
			s.log.Debug("candidate of an ICE restart", "session", hs.id, "err", err)
		}
	}
	hs.ufrag = frag.Ufrag
	hs.etag = newETag()
	s.log.Info("ICE restarted over PATCH", "kind", hs.kind, "lesson", hs.room, "participant", hs.p.ID())
	w.Header().Set("ETag", hs.etag)
	w.Header().Set("Content-Type", sdpfrag.MediaType)
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, sdpfrag.FromSDP(answer.SDP).String())
}

// newETag makes the entity-tag of a new ICE session.
func newETag() string { return `"` + newResourceID() + `"` }

// etagListed reports whether an If-Match value (one entity-tag or a comma
// list, weak ones never matching) names etag.
func etagListed(ifMatch, etag string) bool {
	for _, t := range strings.Split(ifMatch, ",") {
		if strings.TrimSpace(t) == etag {
			return true
		}
	}
	return false
}
