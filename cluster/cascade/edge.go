package cascade

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"podium/sfu"
)

// Edge mirrors lessons of origins into this node's rooms (New makes it).
type Edge struct {
	api     *webrtc.API
	key     string
	selfURL string
	mirrors *mirrorSet
	log     *slog.Logger
	metrics *Metrics
	client  *http.Client
	// Poll is how often Mirror asks the origin for its track list.
	Poll time.Duration
	// IdleTimeout ends a mirror whose room has had no participant of its
	// own (only mirrored ones) for this long.
	IdleTimeout time.Duration
}

// Why Mirror stops on its own.
var (
	// ErrLessonEnded: the origin served the lesson, then stopped knowing it.
	ErrLessonEnded = errors.New("cascade: the lesson ended on its origin")
	// ErrIdle: nobody on this node watches the mirrored lesson any more.
	ErrIdle = errors.New("cascade: no participant left on the edge")
)

func newEdge(cfg Config, log *slog.Logger, mirrors *mirrorSet) (*Edge, error) {
	api, err := newAPI(cfg)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Edge{api: api, key: cfg.Key, selfURL: cfg.SelfURL, mirrors: mirrors, log: log, metrics: cfg.Metrics,
		client: &http.Client{Timeout: 20 * time.Second}, Poll: time.Second, IdleTimeout: 30 * time.Second}, nil
}

// Mirror keeps room (on this node) showing the relayed participants and
// tracks of the same lesson on the origin (originURL is the origin node's
// base URL): each relayed participant is added to room under the same id,
// each relayed track is published in room as an sfu.Track fed from the
// origin. It returns when ctx ends or room ends, having unpublished what
// it published; origin errors are retried at the poll interval. It also
// returns ErrLessonEnded once the origin no longer has the lesson, and
// ErrIdle when room has had only mirrored participants for IdleTimeout;
// the caller ends room then. While it runs, room also shows the origin's
// lesson events (chat, stage, mute, speakers), and the origin those of
// room's own classrooms. When the origin ends the lesson, the error is an
// *EndedError with the reason the origin's participants were given.
func (e *Edge) Mirror(ctx context.Context, originURL string, room *sfu.Room) error {
	return e.mirror(ctx, originURL, room, false)
}

// maxBackFailures ends a flow-back mirror whose edge stopped answering.
const maxBackFailures = 5

// IsMirror reports whether a participant of a room on this node is a
// mirror of another node's (it is counted, and recorded, there).
func (e *Edge) IsMirror(room, participant string) bool { return e.mirrors.has(room, participant) }

// mirrorState is one mirror's view of its room; only the mirror's
// goroutine touches it.
type mirrorState struct {
	edge      *Edge
	room      *sfu.Room
	peer      string
	back      bool
	pulls     map[string]*pulling
	mirrored  map[string]bool // participant ids this mirror added to room
	speaking  map[string]bool // mirrored participants the peer says speak
	seen      bool            // the peer has served the lesson once
	failures  int
	lastStage string
}

type pulling struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (m *mirrorState) stopPull(id string) {
	p := m.pulls[id]
	p.cancel()
	<-p.done
	m.room.Unpublish(id)
	delete(m.pulls, id)
}

// mirror is Mirror (back false) and its reverse on the origin (back true):
// the origin mirrors an edge's own classrooms, so the teacher sees them and
// can put one on stage, its media flowing edge -> origin -> other edges.
// Both directions also follow the peer's lesson events (control.go).
func (e *Edge) mirror(ctx context.Context, peerURL string, room *sfu.Room, back bool) error {
	ctx, cancel := context.WithCancel(ctx)
	var workers sync.WaitGroup
	defer workers.Wait() // after cancel (deferred later, run first)
	defer cancel()
	workers.Go(func() {
		select {
		case <-room.Done():
			cancel()
		case <-ctx.Done():
		}
	})
	events := make(chan sfu.Event, 64)
	workers.Go(func() { e.follow(ctx, peerURL, room.ID(), back, events) })
	m := &mirrorState{edge: e, room: room, peer: peerURL, back: back, pulls: map[string]*pulling{},
		mirrored: map[string]bool{}, speaking: map[string]bool{}}
	defer func() {
		for id := range m.pulls {
			m.stopPull(id)
		}
		for id := range m.mirrored {
			room.RemoveParticipant(id, "relay between nodes ended")
			e.mirrors.remove(room.ID(), id)
		}
	}()
	t := time.NewTicker(e.Poll)
	defer t.Stop()
	idleSince := time.Now()
	tick := true
	for {
		if tick {
			if !back {
				local := 0
				for _, p := range room.Participants() {
					if !m.mirrored[p.ID] {
						local++
					}
				}
				if local > 0 {
					idleSince = time.Now()
				} else if e.IdleTimeout > 0 && time.Since(idleSince) > e.IdleTimeout {
					return ErrIdle
				}
			}
			if err := m.sync(ctx); err != nil {
				return m.ending(ctx, err, events)
			}
		}
		tick = false
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			tick = true
		case ev := <-events:
			refresh, err := m.apply(ev)
			var ended *EndedError
			switch {
			case errors.As(err, &ended):
				e.metrics.event(back, "applied")
				e.log.Info("cascade: lesson ended on the peer", "lesson", room.ID(), "peer", peerURL, "reason", ended.Reason)
				return err
			case errors.Is(err, errRejected):
				e.metrics.event(back, "rejected")
				e.log.Warn("cascade: event from peer refused", "lesson", room.ID(), "peer", peerURL, "err", err)
			case err != nil:
				e.metrics.event(back, "rejected")
				e.log.Warn("cascade: event from peer not applied", "lesson", room.ID(), "peer", peerURL, "type", ev.Type, "err", err)
			default:
				e.metrics.event(back, "applied")
			}
			if refresh {
				if err := m.sync(ctx); err != nil {
					return m.ending(ctx, err, events)
				}
			}
		}
	}
}

// endGrace is how long a mirror that found the lesson gone from its peer
// waits for the peer's lessonEnded (and its reason) on the event stream.
const endGrace = 3 * time.Second

// ending returns err, or, when the peer no longer has the lesson, the
// peer's own lessonEnded if it arrives on the stream within endGrace.
func (m *mirrorState) ending(ctx context.Context, err error, events <-chan sfu.Event) error {
	if !errors.Is(err, ErrLessonEnded) {
		return err
	}
	grace := time.NewTimer(endGrace)
	defer grace.Stop()
	for {
		select {
		case <-ctx.Done():
			return err
		case <-grace.C:
			return err
		case ev := <-events:
			if ev.Type != sfu.EventLessonEnded {
				continue // the lesson is over: nothing else matters now
			}
			var ended *EndedError
			if _, aerr := m.apply(ev); errors.As(aerr, &ended) {
				return aerr
			}
		}
	}
}

// sync makes the room show the peer's list of participants and tracks
// (and, from an origin, its stage). Errors from the peer are logged and
// retried at the next poll; it returns only the errors that end the mirror.
func (m *mirrorState) sync(ctx context.Context) error {
	e, room, back := m.edge, m.room, m.back
	list, err := e.list(ctx, m.peer, room.ID(), back)
	if errors.Is(err, errNotFound) && m.seen {
		return ErrLessonEnded
	}
	if err != nil {
		m.failures++
		if back && m.failures >= maxBackFailures {
			return fmt.Errorf("cascade: edge %s stopped answering: %w", m.peer, err)
		}
		if ctx.Err() == nil {
			e.log.Warn("cascade: track list", "peer", m.peer, "lesson", room.ID(), "err", err)
		}
		return nil
	}
	m.failures = 0
	m.seen = true
	want := map[string]sfu.TrackInfo{}
	for _, ti := range list.Tracks {
		want[ti.ID] = ti
	}
	present := map[string]sfu.ParticipantInfo{}
	for _, pi := range list.Participants {
		present[pi.ID] = pi
	}
	// Stop what the peer no longer relays, or whose pull ended.
	for id, p := range m.pulls {
		ended := false
		select {
		case <-p.done:
			ended = true
		default:
		}
		if _, ok := want[id]; !ok || ended {
			m.stopPull(id)
		}
	}
	for id := range m.mirrored {
		if _, ok := present[id]; !ok {
			room.RemoveParticipant(id, "left")
			e.mirrors.remove(room.ID(), id)
			delete(m.mirrored, id)
			delete(m.speaking, id)
		}
	}
	for _, pi := range list.Participants {
		if m.mirrored[pi.ID] {
			// A raised hand, a muted microphone, a camera turned off on
			// the peer show here. (Mute states only from the origin: the
			// teacher's mute of an edge classroom shows on the origin
			// before the edge has applied it; the edge's events bring it.)
			if cur, ok := room.Participant(pi.ID); ok {
				if cur.HandRaised != pi.HandRaised {
					_ = room.RaiseHand(pi.ID, pi.HandRaised)
				}
				if !back && (cur.MicMuted != pi.MicMuted || cur.MicMutedBy != pi.MicMutedBy || cur.CameraOff != pi.CameraOff) {
					_ = room.ApplyRelayedState(pi)
				}
			}
			continue
		}
		if _, native := room.Participant(pi.ID); native {
			continue // ours already (an edge classroom on the origin's stage)
		}
		// Recorded as a mirror before it appears, so no event about it
		// is taken for this node's own.
		e.mirrors.add(room.ID(), pi.ID, m.peer)
		if err := room.AddParticipant(pi); err != nil {
			e.mirrors.remove(room.ID(), pi.ID)
			e.log.Warn("cascade: mirror participant", "lesson", room.ID(), "participant", pi.ID, "err", err)
			continue
		}
		m.mirrored[pi.ID] = true
	}
	for id, ti := range want {
		if _, ok := m.pulls[id]; ok || !m.mirrored[ti.ParticipantID] {
			continue
		}
		pctx, pcancel := context.WithCancel(ctx)
		p := &pulling{cancel: pcancel, done: make(chan struct{})}
		m.pulls[id] = p
		go func() {
			defer close(p.done)
			if err := e.Pull(pctx, m.peer, room, ti); err != nil && pctx.Err() == nil {
				e.log.Warn("cascade: pull ended", "lesson", room.ID(), "track", ti.ID, "err", err)
			}
		}()
	}
	// Mute states the origin's stream may have missed while it was down.
	// (Not from an edge: the teacher's mute of an edge classroom's track
	// shows here before the edge has applied it.)
	for _, ti := range list.Tracks {
		if t, ok := room.Track(ti.ID); ok && !back && m.mirrored[ti.ParticipantID] && t.Info().Muted != ti.Muted {
			_ = room.SetTrackMuted(ti.ID, ti.Muted)
		}
	}
	// The lesson's chat switch and recording, as the origin has them.
	if !back && list.ChatEnabled != nil {
		_ = room.SetChatEnabled(*list.ChatEnabled)
	}
	if !back && list.Recording != nil {
		room.SetRecording(*list.Recording)
	}
	// The teacher's stage, as the origin has it.
	if !back && list.Stage != m.lastStage {
		if _, ok := room.Participant(list.Stage); ok || list.Stage == "" {
			if err := room.SetStage(list.Stage); err == nil {
				m.lastStage = list.Stage
			}
		}
	}
	return nil
}

func (e *Edge) list(ctx context.Context, peerURL, lesson string, back bool) (trackList, error) {
	var out trackList
	u := e.url(peerURL, lesson)
	q := url.Values{}
	if back {
		q.Set("scope", scopeOwn)
	} else if e.selfURL != "" {
		q.Set("edge", e.selfURL)
	}
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return out, err
	}
	err = e.do(req, http.StatusOK, &out)
	return out, err
}

func (e *Edge) url(originURL string, parts ...string) string {
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.TrimRight(originURL, "/") + PathPrefix + strings.Join(parts, "/")
}

func (e *Edge) do(req *http.Request, want int, out any) error {
	req.Header.Set("Authorization", "Bearer "+e.key)
	res, err := e.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return err
	}
	if res.StatusCode == http.StatusNotFound && want != http.StatusNotFound {
		return fmt.Errorf("%s %s: %w: %s", req.Method, req.URL.Path, errNotFound, bytes.TrimSpace(body))
	}
	if res.StatusCode != want {
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, res.Status, bytes.TrimSpace(body))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(body, out)
}

// Pull relays one origin track into room: it publishes a track with the
// same description, fed from the origin over a WebRTC connection, whose
// keyframe requests go back to the origin as PLI on the layer asked for.
// It blocks until ctx ends or the connection fails, and unpublishes the
// track when it returns.
func (e *Edge) Pull(ctx context.Context, originURL string, room *sfu.Room, info sfu.TrackInfo) error {
	kind, err := rtpKind(info.Kind)
	if err != nil {
		return err
	}
	pc, err := e.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return fmt.Errorf("peer connection: %w", err)
	}
	// Readers of the remote layers end when pc closes; cleanup closes it
	// first, then waits for them.
	var (
		readersMu sync.Mutex
		closing   bool
		readers   sync.WaitGroup
	)
	defer func() {
		readersMu.Lock()
		closing = true
		readersMu.Unlock()
		pc.Close()
		readers.Wait()
	}()
	layers := len(info.Layers)
	if layers == 0 {
		layers = 1
	}
	receivers := make([]*webrtc.RTPReceiver, layers)
	for i := range receivers {
		tr, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
		if err != nil {
			return err
		}
		receivers[i] = tr.Receiver()
	}
	// remoteSSRC[layer] is where PLIs for the layer go, known once media flows.
	remoteSSRC := make([]atomic.Uint32, layers)
	mirror := sfu.NewTrack(info, func(layer int) {
		if layer < 0 || layer >= layers {
			return
		}
		if ssrc := remoteSSRC[layer].Load(); ssrc != 0 {
			_ = pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
		}
	})

	failed := make(chan struct{})
	var failOnce sync.Once
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateClosed {
			failOnce.Do(func() { close(failed) })
		}
	})
	pc.OnTrack(func(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		layer := -1
		for i, r := range receivers {
			if r == recv {
				layer = i
			}
		}
		if layer < 0 {
			return
		}
		remoteSSRC[layer].Store(uint32(remote.SSRC()))
		// Ask for a keyframe at once: edge subscribers joined before the
		// relay started are waiting for one.
		mirror.RequestKeyframe(layer)
		readersMu.Lock()
		defer readersMu.Unlock()
		if closing {
			return
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				pkt, _, err := remote.ReadRTP()
				if err != nil {
					return
				}
				mirror.WriteRTP(layer, pkt)
			}
		}()
	})

	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return ctx.Err()
	}
	body, _ := json.Marshal(pullRequest{SDP: pc.LocalDescription().SDP})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url(originURL, room.ID(), "tracks", info.ID), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	var res pullResponse
	if err := e.do(req, http.StatusCreated, &res); err != nil {
		return fmt.Errorf("cascade pull %s: %w", info.ID, err)
	}
	defer func() {
		// Tell the origin at once rather than let ICE time out.
		stop, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(stop, http.MethodDelete, e.url(originURL, room.ID(), "sessions", res.Session), nil)
		if err == nil {
			_ = e.do(req, http.StatusNoContent, nil)
		}
	}()
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: res.SDP}); err != nil {
		return fmt.Errorf("cascade answer: %w", err)
	}
	if err := room.Publish(mirror); err != nil {
		return fmt.Errorf("cascade publish %s: %w", info.ID, err)
	}
	defer room.Unpublish(info.ID)
	e.log.Info("cascade relay receiving", "lesson", room.ID(), "track", info.ID, "layers", layers, "origin", originURL)
	select {
	case <-ctx.Done():
		return nil
	case <-failed:
		return errors.New("cascade: connection to origin failed")
	}
}
