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
	return &Edge{api: api, key: cfg.Key, selfURL: cfg.SelfURL, mirrors: mirrors, log: log,
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
// the caller ends room then.
func (e *Edge) Mirror(ctx context.Context, originURL string, room *sfu.Room) error {
	return e.mirror(ctx, originURL, room, false)
}

// maxBackFailures ends a flow-back mirror whose edge stopped answering.
const maxBackFailures = 5

// mirror is Mirror (back false) and its reverse on the origin (back true):
// the origin mirrors an edge's own classrooms, so the teacher sees them and
// can put one on stage, its media flowing edge -> origin -> other edges.
func (e *Edge) mirror(ctx context.Context, peerURL string, room *sfu.Room, back bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-room.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	type pulling struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	pulls := map[string]*pulling{}
	mirrored := map[string]bool{} // participant ids this mirror added to room
	stopPull := func(id string) {
		p := pulls[id]
		p.cancel()
		<-p.done
		room.Unpublish(id)
		delete(pulls, id)
	}
	defer func() {
		for id := range pulls {
			stopPull(id)
		}
		for id := range mirrored {
			room.RemoveParticipant(id, "relay between nodes ended")
			e.mirrors.remove(room.ID(), id)
		}
	}()
	t := time.NewTicker(e.Poll)
	defer t.Stop()
	seen := false
	failures := 0
	lastStage := ""
	idleSince := time.Now()
	for {
		if !back {
			local := 0
			for _, p := range room.Participants() {
				if !mirrored[p.ID] {
					local++
				}
			}
			if local > 0 {
				idleSince = time.Now()
			} else if e.IdleTimeout > 0 && time.Since(idleSince) > e.IdleTimeout {
				return ErrIdle
			}
		}
		list, err := e.list(ctx, peerURL, room.ID(), back)
		if errors.Is(err, errNotFound) && seen {
			return ErrLessonEnded
		}
		if err != nil {
			failures++
			if back && failures >= maxBackFailures {
				return fmt.Errorf("cascade: edge %s stopped answering: %w", peerURL, err)
			}
			if ctx.Err() == nil {
				e.log.Warn("cascade: track list", "peer", peerURL, "lesson", room.ID(), "err", err)
			}
		} else {
			failures = 0
			seen = true
			want := map[string]sfu.TrackInfo{}
			for _, ti := range list.Tracks {
				want[ti.ID] = ti
			}
			present := map[string]sfu.ParticipantInfo{}
			for _, pi := range list.Participants {
				present[pi.ID] = pi
			}
			// Stop what the peer no longer relays, or whose pull ended.
			for id, p := range pulls {
				ended := false
				select {
				case <-p.done:
					ended = true
				default:
				}
				if _, ok := want[id]; !ok || ended {
					stopPull(id)
				}
			}
			for id := range mirrored {
				if _, ok := present[id]; !ok {
					room.RemoveParticipant(id, "left")
					e.mirrors.remove(room.ID(), id)
					delete(mirrored, id)
				}
			}
			for _, pi := range list.Participants {
				if mirrored[pi.ID] {
					if back {
						// A raised hand on the edge shows on the origin.
						if cur, ok := room.Participant(pi.ID); ok && cur.HandRaised != pi.HandRaised {
							_ = room.RaiseHand(pi.ID, pi.HandRaised)
						}
					}
					continue
				}
				if _, native := room.Participant(pi.ID); native {
					continue // ours already (an edge classroom on the origin's stage)
				}
				if err := room.AddParticipant(pi); err != nil {
					e.log.Warn("cascade: mirror participant", "lesson", room.ID(), "participant", pi.ID, "err", err)
					continue
				}
				e.mirrors.add(room.ID(), pi.ID)
				mirrored[pi.ID] = true
			}
			for id, ti := range want {
				if _, ok := pulls[id]; ok || !mirrored[ti.ParticipantID] {
					continue
				}
				pctx, pcancel := context.WithCancel(ctx)
				p := &pulling{cancel: pcancel, done: make(chan struct{})}
				pulls[id] = p
				go func() {
					defer close(p.done)
					if err := e.Pull(pctx, peerURL, room, ti); err != nil && pctx.Err() == nil {
						e.log.Warn("cascade: pull ended", "lesson", room.ID(), "track", ti.ID, "err", err)
					}
				}()
			}
			// The teacher's stage, as the origin has it.
			if !back && list.Stage != lastStage {
				if _, ok := room.Participant(list.Stage); ok || list.Stage == "" {
					if err := room.SetStage(list.Stage); err == nil {
						lastStage = list.Stage
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
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
