package ingest

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"podium/sfu"
)

// Kind says what a source shows; it becomes the video track's sfu.Source.
type Kind string

const (
	KindCamera     Kind = "camera"
	KindWhiteboard Kind = "whiteboard"
)

// Transport is how RTP flows from the camera.
type Transport string

const (
	TransportAuto Transport = "auto" // UDP first, TCP when no UDP packet arrives
	TransportTCP  Transport = "tcp"  // interleaved in the RTSP connection
	TransportUDP  Transport = "udp"
)

// State is where a source is in its life.
type State string

const (
	StateConnecting State = "connecting" // opening the RTSP session
	StateLive       State = "live"       // media is flowing into the lesson
	StateRetrying   State = "retrying"   // the last attempt failed; waiting to retry
	StateStopped    State = "stopped"    // removed, or its lesson ended
)

var allStates = []State{StateConnecting, StateLive, StateRetrying, StateStopped}

// SourceConfig is what an operator registers.
type SourceConfig struct {
	URL       string    `json:"url"`
	Kind      Kind      `json:"kind"`
	Name      string    `json:"name"`
	Transport Transport `json:"transport"`
	// Reencode sends an H.264 camera through ffmpeg too, for its keyframe
	// every 2 s: a classroom joining (or recovering from loss) waits for
	// the camera's next keyframe, which many IP cameras send only every
	// 4–10 s. It costs a core's fraction per camera; off by default.
	Reencode bool `json:"reencode,omitempty"`
}

// maxNameLen bounds a source's display name.
const maxNameLen = 100

// errInvalid marks a configuration the API rejects with 400.
var errInvalid = errors.New("invalid source")

// normalize checks c, fills defaults and returns the parsed URL. Credentials
// never appear in its errors.
func (c *SourceConfig) normalize() (*url.URL, error) {
	if c.Kind == "" {
		c.Kind = KindCamera
	}
	if c.Kind != KindCamera && c.Kind != KindWhiteboard {
		return nil, fmt.Errorf("%w: kind must be camera or whiteboard", errInvalid)
	}
	if c.Transport == "" {
		c.Transport = TransportAuto
	}
	switch c.Transport {
	case TransportAuto, TransportTCP, TransportUDP:
	default:
		return nil, fmt.Errorf("%w: transport must be auto, tcp or udp", errInvalid)
	}
	c.Name = strings.TrimSpace(c.Name)
	if len(c.Name) > maxNameLen {
		return nil, fmt.Errorf("%w: name longer than %d bytes", errInvalid, maxNameLen)
	}
	for _, r := range c.Name {
		if r < 0x20 || r == 0x7f {
			return nil, fmt.Errorf("%w: name has control characters", errInvalid)
		}
	}
	u, err := url.Parse(c.URL)
	if err != nil || c.URL == "" {
		// url.Parse errors quote the URL, credentials and all.
		return nil, fmt.Errorf("%w: url is not a valid URL", errInvalid)
	}
	if u.Scheme != "rtsp" && u.Scheme != "rtsps" {
		return nil, fmt.Errorf("%w: url scheme must be rtsp or rtsps", errInvalid)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%w: url has no host", errInvalid)
	}
	if p := u.Port(); p != "" {
		// url.Parse accepts any digits: 0 and 99999 included.
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%w: url port must be 1-65535", errInvalid)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return nil, fmt.Errorf("%w: url port must be 1-65535", errInvalid)
	}
	if c.Name == "" {
		c.Name = u.Hostname()
	}
	return u, nil
}

// redactURL returns u with any credentials replaced, for logs and the API.
func redactURL(u *url.URL) string {
	if u.User == nil {
		return u.String()
	}
	cp := *u
	cp.User = nil
	s := cp.String()
	return strings.Replace(s, "://", "://redacted:redacted@", 1)
}

// scrubber removes a source's credentials from text that came from
// elsewhere (library errors, ffmpeg's stderr) before it is logged or shown.
type scrubber struct{ secrets []string }

func newScrubber(u *url.URL) scrubber {
	var s scrubber
	if u.User == nil {
		return s
	}
	add := func(v string) {
		if len(v) >= 3 {
			s.secrets = append(s.secrets, v)
		}
	}
	if p, ok := u.User.Password(); ok {
		add(p)
		add(url.PathEscape(p))
		add(url.QueryEscape(p))
	}
	add(u.User.String())
	add(u.User.Username())
	return s
}

func (s scrubber) scrub(text string) string {
	for _, v := range s.secrets {
		text = strings.ReplaceAll(text, v, "redacted")
	}
	return text
}

// Backoff is the capped exponential wait between reconnect attempts.
type Backoff struct {
	Min time.Duration // first wait; doubles after every failed attempt
	Max time.Duration // cap
}

func (b Backoff) withDefaults() Backoff {
	if b.Min <= 0 {
		b.Min = time.Second
	}
	if b.Max < b.Min {
		b.Max = 30 * time.Second
		if b.Max < b.Min {
			b.Max = b.Min
		}
	}
	return b
}

// next returns the wait after the given number of consecutive failures (1 = first).
func (b Backoff) next(failures int) time.Duration {
	d := b.Min
	for i := 1; i < failures && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// SourceInfo is a source as the API shows it: never with credentials.
type SourceInfo struct {
	ID        string    `json:"id"`
	Lesson    string    `json:"lesson"`
	Name      string    `json:"name"`
	Kind      Kind      `json:"kind"`
	Transport Transport `json:"transport"`
	Reencode  bool      `json:"reencode,omitempty"`
	URL       string    `json:"url"`
	State     State     `json:"state"`
	// LastError is the most recent failure, kept while retrying and after
	// recovery until the next error, so an operator can see what happened.
	LastError string `json:"lastError,omitempty"`
	// Since is when the source entered its state.
	Since time.Time `json:"since"`
	// Video and Audio describe what the camera sends and how it is
	// forwarded ("h264", "h265 transcoded to h264", ...), once known.
	Video      string   `json:"video,omitempty"`
	Audio      string   `json:"audio,omitempty"`
	Tracks     []string `json:"tracks"`
	Reconnects uint64   `json:"reconnects"`
}

func trackSource(k Kind) sfu.Source {
	if k == KindWhiteboard {
		return sfu.SourceWhiteboard
	}
	return sfu.SourceCamera
}
