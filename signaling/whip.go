package signaling

// WHIP (RFC 9725) and WHEP: one HTTP request carries the whole offer/answer,
// so these sessions have no websocket; the resource URL in Location is how
// the client ends them (DELETE) or trickles candidates (PATCH).

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/pion/webrtc/v4"

	"podium/internal/httpx"
	"podium/sfu"
	"podium/signaling/auth"
)

// httpSession is one WHIP publisher or WHEP player.
type httpSession struct {
	id   string
	kind string // "whip" or "whep"
	room string
	p    *sfu.Participant
	// ufrag is the client's ICE username fragment from its offer; a PATCH
	// with another one asks for an ICE restart.
	ufrag string
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
	hd.Set("Accept-Patch", "application/trickle-ice-sdpfrag")
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
	w.Header().Set("ETag", `"`+hs.id+`"`)
	w.Header().Set("Accept-Patch", "application/trickle-ice-sdpfrag")
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

// patchResource adds trickled candidates (RFC 8840 SDP fragment). ICE
// restarts through PATCH are not supported: the client POSTs again.
func (s *Server) patchResource(w http.ResponseWriter, r *http.Request, hs *httpSession) {
	if !hasContentType(r, "application/trickle-ice-sdpfrag") {
		httpx.WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/trickle-ice-sdpfrag")
		return
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", "cannot read the fragment: "+err.Error())
		return
	}
	cands, ufrag, err := ParseSDPFrag(string(b))
	if err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if ufrag != "" && ufrag != hs.ufrag {
		httpx.WriteError(w, http.StatusUnprocessableEntity, "ice_restart_unsupported", "ICE restart over PATCH is not supported; POST a new offer")
		return
	}
	target := sfu.TargetPublisher
	if hs.kind == "whep" {
		target = sfu.TargetSubscriber
	}
	for _, c := range cands {
		if err := hs.p.AddCandidate(target, c); err != nil {
			writeProtocolError(w, err)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// ParseSDPFrag reads the candidates and the ICE username fragment of a
// trickle-ice-sdpfrag body (RFC 8840).
func ParseSDPFrag(frag string) (cands []webrtc.ICECandidateInit, ufrag string, err error) {
	var mid *string
	var index uint16
	sections := -1
	sc := bufio.NewScanner(strings.NewReader(frag))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
		case strings.HasPrefix(line, "m="):
			sections++
			index = uint16(sections)
			mid = nil
		case strings.HasPrefix(line, "a=mid:"):
			v := strings.TrimPrefix(line, "a=mid:")
			mid = &v
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			ufrag = strings.TrimPrefix(line, "a=ice-ufrag:")
		case strings.HasPrefix(line, "a=candidate:"):
			c := webrtc.ICECandidateInit{Candidate: strings.TrimPrefix(line, "a=")}
			if mid != nil {
				m := *mid
				c.SDPMid = &m
			}
			if sections >= 0 {
				i := index
				c.SDPMLineIndex = &i
			}
			if mid == nil && sections < 0 {
				return nil, "", fmt.Errorf("candidate before any a=mid or m= line")
			}
			cands = append(cands, c)
		case strings.HasPrefix(line, "a=end-of-candidates"), strings.HasPrefix(line, "a="):
		default:
			return nil, "", fmt.Errorf("unexpected line in sdpfrag: %q", truncate(line, 60))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, "", fmt.Errorf("read sdpfrag: %w", err)
	}
	return cands, ufrag, nil
}
