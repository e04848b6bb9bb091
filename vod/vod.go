// Package vod owns the replay catalog (courses -> lessons -> assets and
// clips) and playback: a REST API over what package transcode wrote into
// storage, HLS playlists served by Podium with every URI signed, and
// short-lived signed URLs (Podium HMAC, or MinIO presigned GETs) so that
// players and <img>/<a> tags need no bearer header.
//
// It reads storage only: the recorder's manifest (Manifest), the asset
// records (Assets) and its own catalog records under catalog/. It knows
// nothing of WebRTC or ffmpeg; clip cutting is asked of a ClipSubmitter.
package vod

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"podium/internal/audit"
	"podium/replaydb"
	"podium/signaling/auth"
	"podium/storage"
)

// Playback modes.
const (
	// PlaybackPodium serves every playlist and segment through Podium.
	PlaybackPodium = "podium"
	// PlaybackSigned serves playlists through Podium but points segments,
	// MP4 downloads and images at short-lived presigned storage URLs, so
	// the bytes flow from MinIO straight to the player.
	PlaybackSigned = "signed"
)

// caller is the token the router admitted for the request (nil for a
// request admitted by its URL signature).
func (s *Service) caller(r *http.Request) *auth.Claims {
	c, _ := auth.FromContext(r.Context())
	return c
}

// ClipSubmitter starts the cutting of a clip (package transcode's queue).
type ClipSubmitter interface {
	SubmitClip(ctx context.Context, lesson string, c ClipRequest) (jobID string, err error)
}

// Config tunes the service.
type Config struct {
	// URLSecret signs media URLs; empty picks a random one (URLs then die
	// with the process; set it when several nodes serve one catalog).
	URLSecret string
	// URLTTL is how long a signed URL works (default 10 minutes); URLs in
	// a media playlist live URLTTL plus the playlist's length, so a player
	// can finish what it started.
	URLTTL time.Duration
	// Audit hears renames, deletions, clips and downloads.
	Audit audit.Recorder
	// Retention deletes lessons older than this (0: keep them).
	Retention time.Duration
	// TranscodeFailure tells why a recorded lesson's replay cannot be
	// built, when its transcode failed for good (nil: never known).
	TranscodeFailure func(ctx context.Context, lesson string) (reason string, failed bool)
	// Playback is PlaybackPodium or PlaybackSigned (needs a store that
	// can presign; falls back to podium otherwise).
	Playback string
}

// Service is the catalog and playback API.
type Service struct {
	store  storage.Store
	db     *replaydb.DB
	signer storage.URLSigner // nil unless signed playback
	clips  ClipSubmitter
	cfg    Config
	key    []byte
	log    *slog.Logger
	now    func() time.Time

	rawInfo rawInfos // init segment facts for raw playlists

	mu       sync.Mutex
	expected map[string]time.Time // lessons starting here -> look for them until
}

// New makes the service on the media store and the replay database (the
// catalog). clips may be nil (clip creation then answers 503).
func New(store storage.Store, db *replaydb.DB, clips ClipSubmitter, cfg Config, log *slog.Logger) (*Service, error) {
	if store == nil || db == nil {
		return nil, errors.New("vod: a store and the replay database are required")
	}
	if cfg.URLTTL <= 0 {
		cfg.URLTTL = 10 * time.Minute
	}
	if cfg.Audit == nil {
		cfg.Audit = audit.Discard{}
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Service{store: store, db: db, clips: clips, cfg: cfg, log: log, now: time.Now, expected: map[string]time.Time{}}
	switch cfg.Playback {
	case "", PlaybackPodium:
		s.cfg.Playback = PlaybackPodium
	case PlaybackSigned:
		if signer, ok := store.(storage.URLSigner); ok {
			s.signer = signer
		} else {
			log.Warn("vod: storage cannot presign URLs; serving media through podium")
			s.cfg.Playback = PlaybackPodium
		}
	default:
		return nil, fmt.Errorf("vod playback must be %q or %q, got %q", PlaybackPodium, PlaybackSigned, cfg.Playback)
	}
	if cfg.URLSecret != "" {
		s.key = []byte(cfg.URLSecret)
	} else {
		s.key = make([]byte, 32)
		if _, err := rand.Read(s.key); err != nil {
			return nil, fmt.Errorf("vod url key: %w", err)
		}
	}
	return s, nil
}

// urlGrant is what a signed media URL carries: until when it works, and
// whom it was handed to (the audit log names them when a download is read).
type urlGrant struct {
	exp time.Time
	by  string
}

// grantFor is the grant of URLs handed to the caller now, living ttl.
func (s *Service) grantFor(r *http.Request, ttl time.Duration) urlGrant {
	g := urlGrant{exp: s.now().Add(ttl), by: "signed"}
	if c := s.caller(r); c != nil {
		g.by = c.Actor()
	}
	return g
}

// mac signs one object: the signature covers the exact object (lesson and
// path), the expiry and the holder, so a poster's URL never opens the video.
func (s *Service) mac(lesson, rel, exp, by string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("podium-media-v2\n" + lesson + "\n" + rel + "\n" + exp + "\n" + by))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// verify reports whether q carries a valid, unexpired signature for the
// object, and whom it was handed to.
func (s *Service) verify(lesson, rel string, q url.Values) (by string, ok bool) {
	e, sig, by := q.Get("exp"), q.Get("sig"), q.Get("by")
	if e == "" || sig == "" {
		return "", false
	}
	exp, err := strconv.ParseInt(e, 10, 64)
	if err != nil || s.now().Unix() > exp {
		return "", false
	}
	return by, hmac.Equal([]byte(sig), []byte(s.mac(lesson, rel, e, by)))
}

// mediaURL is the Podium URL of an object under a lesson's VOD base (rel
// is relative to that base), signed for that object alone.
func (s *Service) mediaURL(lesson, rel string, g urlGrant) string {
	e := strconv.FormatInt(g.exp.Unix(), 10)
	q := url.Values{"exp": {e}, "by": {g.by}, "sig": {s.mac(lesson, rel, e, g.by)}}
	return "/api/vod/media/" + lesson + "/" + escapePath(rel) + "?" + q.Encode()
}

// directURL is where a browser fetches a non-playlist object: a presigned
// storage URL in signed mode, else the signed Podium URL.
func (s *Service) directURL(ctx context.Context, lesson, rel string, g urlGrant) string {
	if s.signer != nil {
		u, err := s.signer.SignedURL(ctx, LessonBase(lesson)+rel, g.exp.Sub(s.now()))
		if err == nil {
			return u
		}
		s.log.Warn("vod: presign failed; serving through podium", "key", LessonBase(lesson)+rel, "err", err)
	}
	return s.mediaURL(lesson, rel, g)
}

func escapePath(p string) string {
	u := url.URL{Path: p}
	return u.EscapedPath()
}
