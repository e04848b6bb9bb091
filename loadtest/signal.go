package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// envelope is one message of Podium's signaling protocol (docs/PROTOCOL.md).
type envelope struct {
	V    int             `json:"v"`
	Type string          `json:"type"`
	ID   string          `json:"id,omitempty"`
	Data json.RawMessage `json:"data,omitempty"`
}

type sdpData struct {
	SDP    string      `json:"sdp"`
	Tracks []trackDecl `json:"tracks,omitempty"`
}

type trackDecl struct {
	TrackID string `json:"trackId"`
	Source  string `json:"source"`
	Name    string `json:"name,omitempty"`
}

type errorData struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// wsSession is a lean client of the signaling websocket: requests with ids
// wait for their reply; server offers go to onOffer, one at a time, on a
// goroutine of their own so a slow answer never stalls the reader.
type wsSession struct {
	conn    *websocket.Conn
	writeMu sync.Mutex

	mu      sync.Mutex
	nextID  int
	pending map[string]chan envelope

	offers chan string
	ended  chan struct{} // closed when the socket is gone
	err    error         // why, set before ended closes

	// selfID and onStills (under mu): the participant whose "stills"
	// state (participantUpdated) is reported to onStills.
	selfID   string
	onStills func(bool)
}

// watchStills reports the participant's audio-and-stills state (the
// server sends it only sound and a still picture every few seconds) to fn.
func (s *wsSession) watchStills(id string, fn func(bool)) {
	s.mu.Lock()
	s.selfID, s.onStills = id, fn
	s.mu.Unlock()
}

// participantData is what the tool reads of participantUpdated.
type participantData struct {
	Participant struct {
		ID     string `json:"id"`
		Stills bool   `json:"stills"`
	} `json:"participant"`
}

// wsURL turns the server's base URL into the websocket URL with a token.
// Parameters of the base URL (a cluster's ?region=) are kept.
func wsURL(base, token string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("server url: %w", err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("server url %q: want http(s)://", base)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/ws"
	// Keep the base URL's own parameters (?region= of a cluster node).
	q := u.Query()
	q.Set("token", token)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// dialSession opens the websocket. Its reader goroutine ends when the
// socket closes (close closes it; ctx ending closes it too).
func dialSession(ctx context.Context, base, token string) (*wsSession, error) {
	u, err := wsURL(base, token)
	if err != nil {
		return nil, err
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.DialContext(ctx, u, nil)
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			return nil, &dialError{status: resp.StatusCode, msg: fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body))}
		}
		return nil, fmt.Errorf("websocket: %w", err)
	}
	s := &wsSession{conn: conn, pending: map[string]chan envelope{}, offers: make(chan string, 8), ended: make(chan struct{})}
	go s.read()
	go func() {
		select {
		case <-ctx.Done():
			s.close()
		case <-s.ended:
		}
	}()
	return s, nil
}

func (s *wsSession) read() {
	defer close(s.ended)
	for {
		_, data, err := s.conn.ReadMessage()
		if err != nil {
			s.err = err
			return
		}
		var m envelope
		if json.Unmarshal(data, &m) != nil {
			continue
		}
		if m.ID != "" {
			s.mu.Lock()
			ch := s.pending[m.ID]
			delete(s.pending, m.ID)
			s.mu.Unlock()
			if ch != nil {
				ch <- m
				continue
			}
		}
		switch m.Type {
		case "offer":
			var d sdpData
			if json.Unmarshal(m.Data, &d) == nil && d.SDP != "" {
				select {
				case s.offers <- d.SDP:
				default: // a burst of renegotiations: the later offer wins anyway
				}
			}
		case "participantUpdated":
			var d participantData
			if json.Unmarshal(m.Data, &d) != nil {
				continue
			}
			s.mu.Lock()
			fn := s.onStills
			if d.Participant.ID != s.selfID {
				fn = nil
			}
			s.mu.Unlock()
			if fn != nil {
				fn(d.Participant.Stills)
			}
		case "lessonEnded", "shutdown":
			s.err = fmt.Errorf("server sent %s", m.Type)
			return
		}
	}
}

func (s *wsSession) send(m envelope) error {
	m.V = 1
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return s.conn.WriteJSON(m)
}

// request sends a message and waits for the reply with its id; an error
// message becomes an error.
func (s *wsSession) request(ctx context.Context, typ string, data any) (envelope, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return envelope{}, err
	}
	ch := make(chan envelope, 1)
	s.mu.Lock()
	s.nextID++
	id := "c" + strconv.Itoa(s.nextID)
	s.pending[id] = ch
	s.mu.Unlock()
	if err := s.send(envelope{Type: typ, ID: id, Data: raw}); err != nil {
		return envelope{}, fmt.Errorf("%s: %w", typ, err)
	}
	t := time.NewTimer(15 * time.Second)
	defer t.Stop()
	select {
	case m := <-ch:
		if m.Type == "error" {
			var e errorData
			_ = json.Unmarshal(m.Data, &e)
			return m, fmt.Errorf("%s: server error %s: %s", typ, e.Code, e.Message)
		}
		return m, nil
	case <-s.ended:
		return envelope{}, fmt.Errorf("%s: socket closed: %v", typ, s.err)
	case <-ctx.Done():
		return envelope{}, ctx.Err()
	case <-t.C:
		return envelope{}, fmt.Errorf("%s: no reply in 15 s", typ)
	}
}

func (s *wsSession) close() {
	s.writeMu.Lock()
	_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	s.writeMu.Unlock()
	_ = s.conn.Close()
}

// httpSDP posts an SDP offer to a WHIP or WHEP endpoint and returns the
// answer and the resource URL to DELETE at the end.
func httpSDP(ctx context.Context, client *http.Client, endpoint, bearer, offer string) (answer, resource string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(offer))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/sdp")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("POST %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", "", fmt.Errorf("POST %s: %w", endpoint, err)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("POST %s: %s: %s", endpoint, resp.Status, bytes.TrimSpace(body))
	}
	loc := resp.Header.Get("Location")
	if loc != "" {
		if base, err := url.Parse(endpoint); err == nil {
			if ref, err := url.Parse(loc); err == nil {
				loc = base.ResolveReference(ref).String()
			}
		}
	}
	return string(body), loc, nil
}

// httpDelete ends a WHIP/WHEP session; errors are ignored (the server
// also ends it when the connection closes).
func httpDelete(client *http.Client, resource, bearer string) {
	if resource == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, resource, nil)
	if err != nil {
		return
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
	}
}
