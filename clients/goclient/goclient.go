// Package goclient is a small Go client for Podium that speaks
// docs/PROTOCOL.md over a websocket and WebRTC (pion), for tests, the
// loadtest and the recorder's checks. It is kept as plain as pion's examples:
// one publisher connection the client offers, one subscriber connection the
// server offers, and a channel of server events.
//
// It knows nothing of the server's internals; only the wire protocol.
package goclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/gorilla/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"podium/internal/ridtag"
)

// Message is the protocol envelope.
type Message struct {
	V    int             `json:"v"`
	Type string          `json:"type"`
	ID   string          `json:"id,omitempty"`
	Data json.RawMessage `json:"data,omitempty"`
}

// ParticipantInfo, TrackInfo and the rest mirror the protocol's JSON.
type ParticipantInfo struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Role       string `json:"role"`
	HandRaised bool   `json:"handRaised"`
	// MicMuted is the server's state of the participant's microphone;
	// MicMutedBy is "self" or "teacher" while muted.
	MicMuted   bool   `json:"micMuted"`
	MicMutedBy string `json:"micMutedBy,omitempty"`
}

type Codec struct {
	MimeType    string `json:"mimeType"`
	ClockRate   uint32 `json:"clockRate"`
	Channels    uint16 `json:"channels,omitempty"`
	SDPFmtpLine string `json:"sdpFmtpLine,omitempty"`
}

type TrackInfo struct {
	ID            string   `json:"id"`
	ParticipantID string   `json:"participantId"`
	Name          string   `json:"name,omitempty"`
	Kind          string   `json:"kind"`
	Source        string   `json:"source"`
	Codec         Codec    `json:"codec"`
	Layers        []string `json:"layers"`
	Muted         bool     `json:"muted"`
}

type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Joined is the server's reply to join.
type Joined struct {
	Participant  ParticipantInfo   `json:"participant"`
	Lesson       json.RawMessage   `json:"lesson"`
	Participants []ParticipantInfo `json:"participants"`
	Tracks       []TrackInfo       `json:"tracks"`
	Stage        string            `json:"stage"`
	ICEServers   []ICEServer       `json:"iceServers"`
	Protocol     int               `json:"protocol"`
}

// Error is a protocol `error` reply.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// LocalTrack is a track to publish and what it shows.
type LocalTrack struct {
	Track  webrtc.TrackLocal
	Source string // camera, microphone, screen, screen_audio
	Name   string
	// Simulcast, for a VP8 camera: the other RID encodings (the Track is the
	// first, e.g. rid "q"; then "h", "f"). Each is made with
	// webrtc.WithRTPStreamID and shares Track's id and stream id. The
	// client's API must come from NewAPI (it tags packets with mid and rid).
	Simulcast []webrtc.TrackLocal
}

// RemoteTrack is a received track with what the server said it is.
type RemoteTrack struct {
	Track    *webrtc.TrackRemote
	Receiver *webrtc.RTPReceiver
	Info     TrackInfo // zero when the server never announced it
}

// Options tune a client.
type Options struct {
	// API builds the peer connections; nil uses NewAPI(true).
	API *webrtc.API
	// OnTrack is called (on pion's goroutine) for every received track.
	OnTrack func(RemoteTrack)
	// AdjustICE, when set, changes the ICE configuration made from the
	// join reply before the peer connections use it: a test forces the
	// relay, or keeps one of the TURN URLs.
	AdjustICE func(*webrtc.Configuration)
}

// NewAPI makes a pion API with the default codecs and interceptors (NACK,
// RTCP reports, TWCC). loopbackOnly keeps ICE on 127.0.0.1, for tests.
func NewAPI(loopbackOnly bool) (*webrtc.API, error) { return NewAPIWith(loopbackOnly) }

// NewAPIWith is NewAPI with interceptors of the caller's first in the
// chain, before the defaults: a test's lossy link drops packets before the
// receiver reports count them.
func NewAPIWith(loopbackOnly bool, first ...interceptor.Factory) (*webrtc.API, error) {
	return newAPI(loopbackOnly, []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4}, first)
}

// NewLoopbackAPIOn is NewAPI(true) gathering only the given network types:
// a classroom whose firewall lets only TCP out uses TCP4 alone.
func NewLoopbackAPIOn(networks ...webrtc.NetworkType) (*webrtc.API, error) {
	return newAPI(true, networks, nil)
}

func newAPI(loopbackOnly bool, networks []webrtc.NetworkType, first []interceptor.Factory) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("codecs: %w", err)
	}
	ir := &interceptor.Registry{}
	for _, f := range first {
		ir.Add(f)
	}
	ir.Add(ridtag.New(simulcastTag))
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, fmt.Errorf("interceptors: %w", err)
	}
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if loopbackOnly {
		se.SetIncludeLoopbackCandidate(true)
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
		se.SetNetworkTypes(networks)
		se.SetInterfaceFilter(func(name string) bool { return name == "lo" || name == "lo0" })
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// Client is one signaling connection and its two peer connections.
type Client struct {
	conn    *websocket.Conn
	api     *webrtc.API
	onTrack func(RemoteTrack)
	// adjustICE is Options.AdjustICE.
	adjustICE func(*webrtc.Configuration)

	writeMu sync.Mutex
	nextID  atomic.Int64

	mu        sync.Mutex
	pending   map[string]chan Message
	tracks    map[string]TrackInfo // announced by the server, by track id
	iceConfig webrtc.Configuration
	pub, sub  *webrtc.PeerConnection
	subQueue  []webrtc.ICECandidateInit // server candidates before the first offer
	// joined is set by the first join reply; an offer the server sent
	// ahead of it (earlyOffer) waits for it, so the subscriber connection
	// is made with the reply's ICE servers. Both are the read goroutine's.
	joined     bool
	earlyOffer string
	pubQueue   []webrtc.ICECandidateInit
	closed     bool

	events chan Message
	done   chan struct{}
	err    error
	wg     sync.WaitGroup
	self   ParticipantInfo
}

// Dial opens the websocket. url is the server's base (http://host:port) or
// the full ws:// URL of /ws.
func Dial(ctx context.Context, serverURL, token string, opts Options) (*Client, error) {
	api := opts.API
	if api == nil {
		var err error
		if api, err = NewAPI(true); err != nil {
			return nil, err
		}
	}
	u, err := wsURL(serverURL, "/ws")
	if err != nil {
		return nil, err
	}
	u += "?token=" + token
	conn, resp, err := websocket.DefaultDialer.DialContext(ctx, u, nil)
	if err != nil {
		if resp != nil {
			var e struct{ Error, Code string }
			_ = json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			return nil, &HTTPError{Status: resp.StatusCode, Code: e.Code, Message: e.Error}
		}
		return nil, fmt.Errorf("dial %s: %w", serverURL, err)
	}
	c := &Client{
		conn: conn, api: api, onTrack: opts.OnTrack, adjustICE: opts.AdjustICE,
		pending: map[string]chan Message{}, tracks: map[string]TrackInfo{},
		events: make(chan Message, 1024), done: make(chan struct{}),
	}
	c.wg.Add(1)
	go c.readLoop()
	return c, nil
}

// HTTPError is a refusal before the websocket upgrade or from WHIP/WHEP.
type HTTPError struct {
	Status        int
	Code, Message string
}

func (e *HTTPError) Error() string {
	return "HTTP " + strconv.Itoa(e.Status) + " " + e.Code + ": " + e.Message
}

// Events delivers every server message that is not a reply (room events,
// quality, chat, lessonEnded, shutdown, ...). It is closed when the
// socket closes. Events that find it full are dropped.
func (c *Client) Events() <-chan Message { return c.events }

// Done is closed when the socket has closed.
func (c *Client) Done() <-chan struct{} { return c.done }

// Self is the participant this client joined as.
func (c *Client) Self() ParticipantInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.self
}

// Send writes one message as is (for protocol tests).
func (c *Client) Send(m Message) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return c.conn.WriteJSON(m)
}

// SendRaw writes raw bytes as a text message (for protocol tests).
func (c *Client) SendRaw(b []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return c.conn.WriteMessage(websocket.TextMessage, b)
}

// Request sends a message with a fresh id and waits for the reply with
// that id; an `error` reply is returned as *Error.
func (c *Client) Request(ctx context.Context, typ string, data any) (Message, error) {
	id := "g" + strconv.FormatInt(c.nextID.Add(1), 10)
	ch := make(chan Message, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return Message{}, errors.New("client closed")
	}
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	m := Message{V: 1, Type: typ, ID: id}
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return Message{}, err
		}
		m.Data = b
	}
	if err := c.Send(m); err != nil {
		return Message{}, fmt.Errorf("send %s: %w", typ, err)
	}
	select {
	case r := <-ch:
		return reply(r)
	case <-c.done:
		// The reply may have come just before the socket closed (endLesson's
		// ok, then lessonEnded and the close): select picks either.
		select {
		case r := <-ch:
			return reply(r)
		default:
		}
		return Message{}, fmt.Errorf("%s: connection closed", typ)
	case <-ctx.Done():
		return Message{}, fmt.Errorf("%s: %w", typ, ctx.Err())
	}
}

// reply is a request's answer, an error reply as an *Error.
func reply(r Message) (Message, error) {
	if r.Type == "error" {
		var e Error
		_ = json.Unmarshal(r.Data, &e)
		return r, &e
	}
	return r, nil
}

func (c *Client) readLoop() {
	defer c.wg.Done()
	defer close(c.done)
	defer close(c.events)
	for {
		var m Message
		_, b, err := c.conn.ReadMessage()
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		if err := json.Unmarshal(b, &m); err != nil {
			continue
		}
		if m.Type == "joined" {
			// Before the reply reaches Join: the server's first offer
			// comes right behind it and is answered on this goroutine,
			// with the ICE servers of this reply.
			c.applyJoined(m.Data)
		}
		if m.ID != "" {
			c.mu.Lock()
			ch := c.pending[m.ID]
			c.mu.Unlock()
			if ch != nil {
				ch <- m
				continue
			}
		}
		c.handleServer(m)
		select {
		case c.events <- m:
		default:
		}
	}
}

// handleServer reacts to what the client itself must handle: offers,
// candidates and track announcements.
func (c *Client) handleServer(m Message) {
	switch m.Type {
	case "offer":
		var d struct{ SDP string }
		if json.Unmarshal(m.Data, &d) != nil {
			return
		}
		if !c.joined {
			c.earlyOffer = d.SDP
			return
		}
		c.answerOffer(d.SDP) // in order, on the read goroutine: it never waits for the server
	case "trickle":
		var d struct {
			Target    string                  `json:"target"`
			Candidate webrtc.ICECandidateInit `json:"candidate"`
		}
		if json.Unmarshal(m.Data, &d) == nil {
			c.addCandidate(d.Target, d.Candidate)
		}
	case "trackPublished", "trackUpdated":
		var d struct{ Track TrackInfo }
		if json.Unmarshal(m.Data, &d) == nil {
			c.mu.Lock()
			c.tracks[d.Track.ID] = d.Track
			c.mu.Unlock()
		}
	}
}

func (c *Client) addCandidate(target string, cand webrtc.ICECandidateInit) {
	c.mu.Lock()
	pc := c.pub
	if target == "subscriber" {
		pc = c.sub
	}
	if pc == nil || pc.RemoteDescription() == nil {
		if target == "subscriber" {
			c.subQueue = append(c.subQueue, cand)
		} else {
			c.pubQueue = append(c.pubQueue, cand)
		}
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	_ = pc.AddICECandidate(cand)
}

// Join joins the lesson named by the token.
func (c *Client) Join(ctx context.Context, autoSubscribe bool) (*Joined, error) {
	r, err := c.Request(ctx, "join", map[string]bool{"autoSubscribe": autoSubscribe})
	if err != nil {
		return nil, err
	}
	var j Joined
	if err := json.Unmarshal(r.Data, &j); err != nil {
		return nil, fmt.Errorf("joined: %w", err)
	}
	return &j, nil
}

// applyJoined keeps what a join reply tells the client: the tracks, its
// own participant and the ICE servers.
func (c *Client) applyJoined(data json.RawMessage) {
	var j Joined
	if err := json.Unmarshal(data, &j); err != nil {
		return // Join reports it
	}
	c.mu.Lock()
	for _, t := range j.Tracks {
		c.tracks[t.ID] = t
	}
	c.self = j.Participant
	c.iceConfig.ICEServers = nil // a join again brings fresh credentials
	for _, s := range j.ICEServers {
		c.iceConfig.ICEServers = append(c.iceConfig.ICEServers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	if c.adjustICE != nil {
		c.adjustICE(&c.iceConfig)
	}
	c.mu.Unlock()
	c.joined = true
	if sdp := c.earlyOffer; sdp != "" {
		c.earlyOffer = ""
		c.answerOffer(sdp)
	}
}

func (c *Client) newPC(target string) (*webrtc.PeerConnection, error) {
	c.mu.Lock()
	cfg := c.iceConfig
	c.mu.Unlock()
	pc, err := c.api.NewPeerConnection(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s connection: %w", target, err)
	}
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand == nil {
			return
		}
		_ = c.Send(Message{V: 1, Type: "trickle", Data: mustJSON(map[string]any{"target": target, "candidate": cand.ToJSON()})})
	})
	return pc, nil
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// Publish adds tracks to the publisher connection and negotiates it.
func (c *Client) Publish(ctx context.Context, tracks ...LocalTrack) error {
	c.mu.Lock()
	pc := c.pub
	c.mu.Unlock()
	if pc == nil {
		var err error
		if pc, err = c.newPC("publisher"); err != nil {
			return err
		}
		c.mu.Lock()
		c.pub = pc
		c.mu.Unlock()
	}
	type pt struct {
		TrackID string `json:"trackId"`
		Source  string `json:"source"`
		Name    string `json:"name,omitempty"`
	}
	var announced []pt
	for _, t := range tracks {
		tr, err := pc.AddTransceiverFromTrack(t.Track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return fmt.Errorf("add track %s: %w", t.Track.ID(), err)
		}
		for _, layer := range t.Simulcast {
			if err := tr.Sender().AddEncoding(layer); err != nil {
				return fmt.Errorf("add simulcast layer %s: %w", layer.RID(), err)
			}
		}
		sender := tr.Sender()
		c.wg.Add(1)
		go func() { // drain RTCP so the interceptors see it
			defer c.wg.Done()
			buf := make([]byte, 1500)
			for {
				if _, _, err := sender.Read(buf); err != nil {
					return
				}
			}
		}()
		announced = append(announced, pt{TrackID: t.Track.ID(), Source: t.Source, Name: t.Name})
	}
	return c.negotiatePublisher(ctx, pc, announced, false)
}

func (c *Client) negotiatePublisher(ctx context.Context, pc *webrtc.PeerConnection, tracks any, iceRestart bool) error {
	offer, err := pc.CreateOffer(&webrtc.OfferOptions{ICERestart: iceRestart})
	if err != nil {
		return fmt.Errorf("create offer: %w", err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("set offer: %w", err)
	}
	tagSimulcast(pc)
	r, err := c.Request(ctx, "offer", map[string]any{"sdp": offer.SDP, "tracks": tracks})
	if err != nil {
		return err
	}
	var d struct{ SDP string }
	if err := json.Unmarshal(r.Data, &d); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: d.SDP}); err != nil {
		return fmt.Errorf("set answer: %w", err)
	}
	c.mu.Lock()
	q := c.pubQueue
	c.pubQueue = nil
	c.mu.Unlock()
	for _, cand := range q {
		_ = pc.AddICECandidate(cand)
	}
	return nil
}

// RestartICE restarts both connections' ICE: the publisher with a new
// offer, the subscriber by asking the server for one.
func (c *Client) RestartICE(ctx context.Context) error {
	if _, err := c.Request(ctx, "restartIce", struct{}{}); err != nil {
		return err
	}
	c.mu.Lock()
	pc := c.pub
	c.mu.Unlock()
	if pc == nil {
		return nil
	}
	return c.negotiatePublisher(ctx, pc, []any{}, true)
}

// answerOffer answers a server offer for the subscriber connection.
func (c *Client) answerOffer(sdp string) {
	c.mu.Lock()
	pc := c.sub
	c.mu.Unlock()
	if pc == nil {
		var err error
		if pc, err = c.newPC("subscriber"); err != nil {
			return
		}
		pc.OnTrack(func(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
			c.mu.Lock()
			info := c.tracks[t.ID()]
			fn := c.onTrack
			c.mu.Unlock()
			if fn != nil {
				fn(RemoteTrack{Track: t, Receiver: r, Info: info})
			}
		})
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			pc.Close()
			return
		}
		c.sub = pc
		c.mu.Unlock()
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return
	}
	c.mu.Lock()
	q := c.subQueue
	c.subQueue = nil
	c.mu.Unlock()
	for _, cand := range q {
		_ = pc.AddICECandidate(cand)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return
	}
	if err := pc.SetLocalDescription(ans); err != nil {
		return
	}
	_ = c.Send(Message{V: 1, Type: "answer", Data: mustJSON(map[string]string{"sdp": ans.SDP})})
}

// Track returns what the server announced about a track.
func (c *Client) Track(id string) (TrackInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tracks[id]
	return t, ok
}

func (c *Client) simple(ctx context.Context, typ string, data any) error {
	_, err := c.Request(ctx, typ, data)
	return err
}

// Subscribe asks for tracks; the server then re-offers the subscriber connection.
func (c *Client) Subscribe(ctx context.Context, trackIDs ...string) error {
	return c.simple(ctx, "subscribe", map[string]any{"trackIds": trackIDs})
}

// Unsubscribe stops tracks.
func (c *Client) Unsubscribe(ctx context.Context, trackIDs ...string) error {
	return c.simple(ctx, "unsubscribe", map[string]any{"trackIds": trackIDs})
}

// SetMaxLayer caps a simulcast track's layer (-1: no cap).
func (c *Client) SetMaxLayer(ctx context.Context, trackID string, layer int) error {
	return c.simple(ctx, "setMaxLayer", map[string]any{"trackId": trackID, "layer": layer})
}

// Pause stops (paused) or starts again forwarding subscribed video tracks
// the client does not show now; they stay negotiated.
func (c *Client) Pause(ctx context.Context, paused bool, trackIDs ...string) error {
	return c.simple(ctx, "pause", map[string]any{"trackIds": trackIDs, "paused": paused})
}

// Mute sets a track's mute state.
func (c *Client) Mute(ctx context.Context, trackID string, muted bool) error {
	return c.simple(ctx, "mute", map[string]any{"trackId": trackID, "muted": muted})
}

// MuteParticipant sets a participant's microphone: the client's own, or,
// for the teacher, anyone's.
func (c *Client) MuteParticipant(ctx context.Context, participantID string, muted bool) error {
	return c.simple(ctx, "mute", map[string]any{"participantId": participantID, "muted": muted})
}

// MuteAll mutes (or unmutes) every classroom's microphone; teacher only.
func (c *Client) MuteAll(ctx context.Context, muted bool) error {
	return c.simple(ctx, "muteAll", map[string]bool{"muted": muted})
}

// RaiseHand raises or lowers the hand.
func (c *Client) RaiseHand(ctx context.Context, raised bool) error {
	return c.simple(ctx, "raiseHand", map[string]bool{"raised": raised})
}

// Chat sends a chat line.
func (c *Client) Chat(ctx context.Context, text string) error {
	return c.simple(ctx, "chat", map[string]string{"text": text})
}

// Stage puts a classroom on stage ("" takes it down).
func (c *Client) Stage(ctx context.Context, participantID string) error {
	return c.simple(ctx, "stage", map[string]string{"participantId": participantID})
}

// EndLesson ends the lesson (teacher).
func (c *Client) EndLesson(ctx context.Context) error {
	return c.simple(ctx, "endLesson", struct{}{})
}

// Ping round-trips a ping.
func (c *Client) Ping(ctx context.Context) error { return c.simple(ctx, "ping", struct{}{}) }

// Close leaves: closes the socket and both connections, and waits for the
// client's goroutines.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	pub, sub := c.pub, c.sub
	c.mu.Unlock()
	c.writeMu.Lock()
	_ = c.conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"))
	c.writeMu.Unlock()
	err := c.conn.Close()
	if pub != nil {
		_ = pub.Close()
	}
	if sub != nil {
		_ = sub.Close()
	}
	c.wg.Wait()
	return err
}

// Conn gives tests the raw websocket (e.g. to check close codes).
func (c *Client) Conn() *websocket.Conn { return c.conn }

// ReceivePair is the ICE candidate pair the subscriber connection (what
// the client receives on) selected; nil before it has one.
func (c *Client) ReceivePair() *webrtc.ICECandidatePair {
	c.mu.Lock()
	pc := c.sub
	c.mu.Unlock()
	if pc == nil {
		return nil
	}
	for _, r := range pc.GetReceivers() {
		if tr := r.Transport(); tr != nil {
			if pair, err := tr.ICETransport().GetSelectedCandidatePair(); err == nil {
				return pair
			}
		}
	}
	return nil
}

// HTTPClient is used by the WHIP/WHEP helpers.
var HTTPClient = http.DefaultClient
