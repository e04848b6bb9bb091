package loadtest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/pion/webrtc/v4"

	"podium/internal/testmedia"
)

// mediaPlan is what a synthetic publisher sends: real encoded files, paced
// like a live encoder (testmedia), looping.
type mediaPlan struct {
	files testmedia.Files
	clips *clips
	// codec is "vp8" (simulcast q/h/f) or "h264" (one 640x360 layer).
	codec string
	// simulcast sends every VP8 layer; false sends only the lowest
	// (a classroom's small camera).
	simulcast bool
	audio     bool
	// voice sends the microphone as a browser sends speech (mono, 32
	// kbit/s) instead of the 48 kbit/s stereo test tone.
	voice bool
}

// publisher is a send-only peer connection with its tracks and the players
// that feed them.
type publisher struct {
	pc      *webrtc.PeerConnection
	decl    []trackDecl
	players []func(ctx context.Context) error
}

// ssrcLayers maps sending SSRCs to simulcast layers for the stamp
// interceptor, filled once the tracks exist.
type ssrcLayers struct {
	mu sync.RWMutex
	m  map[uint32]sendLayer
}

type sendLayer struct {
	index int
	rid   string
	// mid is the transceiver's MID, known once negotiated.
	mid func() string
}

func (s *ssrcLayers) set(ssrc uint32, l sendLayer) {
	s.mu.Lock()
	if s.m == nil {
		s.m = map[uint32]sendLayer{}
	}
	s.m[ssrc] = l
	s.mu.Unlock()
}

func (s *ssrcLayers) get(ssrc uint32) sendLayer {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if l, ok := s.m[ssrc]; ok {
		return l
	}
	return sendLayer{index: -1}
}

// tags is the ridtag.Lookup of a publisher's simulcast layers.
func (s *ssrcLayers) tags(ssrc uint32) (mid, rid string, ok bool) {
	l := s.get(ssrc)
	if l.rid == "" || l.mid == nil {
		return "", "", false
	}
	return l.mid(), l.rid, true
}

// midOf returns a function that reports the MID of the transceiver that
// owns a sender (cached once known: it never changes).
func midOf(pc *webrtc.PeerConnection, s *webrtc.RTPSender) func() string {
	var known atomic.Pointer[string]
	return func() string {
		if m := known.Load(); m != nil {
			return *m
		}
		for _, t := range pc.GetTransceivers() {
			if t.Sender() == s && t.Mid() != "" {
				m := t.Mid()
				known.Store(&m)
				return m
			}
		}
		return ""
	}
}

// newPublisher makes the connection and its tracks; the caller negotiates
// it and then runs the players.
func newPublisher(api *webrtc.API, cfg webrtc.Configuration, plan mediaPlan, streamID string, layers *ssrcLayers) (*publisher, error) {
	pc, err := api.NewPeerConnection(cfg)
	if err != nil {
		return nil, fmt.Errorf("publisher connection: %w", err)
	}
	p := &publisher{pc: pc}
	fail := func(err error) (*publisher, error) {
		_ = pc.Close()
		return nil, err
	}
	const videoID = "camera"
	if plan.codec == "h264" {
		tr, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, videoID, streamID)
		if err != nil {
			return fail(err)
		}
		s, err := pc.AddTrack(tr)
		if err != nil {
			return fail(fmt.Errorf("add video: %w", err))
		}
		kf := make(chan struct{}, 1)
		go readRTCP(s, "", kf)
		for _, e := range s.GetParameters().Encodings {
			layers.set(uint32(e.SSRC), sendLayer{index: 0})
		}
		clip := plan.clips.h264
		p.players = append(p.players, func(ctx context.Context) error { return playClip(ctx, clip, testmedia.FPS, tr, kf) })
	} else {
		rids := []string{"q", "h", "f"}
		if !plan.simulcast {
			rids = rids[:1]
		}
		var sender *webrtc.RTPSender
		kfs := make([]chan struct{}, len(rids))
		for i, rid := range rids {
			var opts []func(*webrtc.TrackLocalStaticRTP)
			if plan.simulcast {
				opts = append(opts, webrtc.WithRTPStreamID(rid))
			}
			tr, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, videoID, streamID, opts...)
			if err != nil {
				return fail(err)
			}
			if i == 0 {
				sender, err = pc.AddTrack(tr)
			} else {
				err = sender.AddEncoding(tr)
			}
			if err != nil {
				return fail(fmt.Errorf("add video layer %s: %w", rid, err))
			}
			clip, kf := plan.clips.vp8[i], make(chan struct{}, 1)
			kfs[i] = kf
			p.players = append(p.players, func(ctx context.Context) error { return playClip(ctx, clip, testmedia.FPS, tr, kf) })
		}
		if plan.simulcast {
			for i, rid := range rids {
				go readRTCP(sender, rid, kfs[i])
			}
		} else {
			go readRTCP(sender, "", kfs[0])
		}
		mid := midOf(pc, sender)
		for _, e := range sender.GetParameters().Encodings {
			l := sendLayer{mid: mid, rid: e.RID}
			for i, rid := range rids {
				if e.RID == rid {
					l.index = i
				}
			}
			layers.set(uint32(e.SSRC), l)
		}
	}
	p.decl = append(p.decl, trackDecl{TrackID: videoID, Source: "camera", Name: "loadtest camera"})
	if plan.audio {
		tr, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1"}, "microphone", streamID)
		if err != nil {
			return fail(err)
		}
		s, err := pc.AddTrack(tr)
		if err != nil {
			return fail(fmt.Errorf("add audio: %w", err))
		}
		go readRTCP(s, "", nil)
		path := plan.files.Opus
		if plan.voice {
			path = plan.files.Voice
		}
		p.players = append(p.players, func(ctx context.Context) error { return testmedia.PlayOgg(ctx, path, tr, true) })
		p.decl = append(p.decl, trackDecl{TrackID: "microphone", Source: "microphone", Name: "loadtest microphone"})
	}
	return p, nil
}

// play runs every player until ctx ends and returns the first error.
func (p *publisher) play(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(p.players))
	for _, play := range p.players {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := play(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// clips are the video files, loaded once per run and shared by every
// publisher (read-only).
type clips struct {
	vp8  [3]*videoClip
	h264 *videoClip
}

func loadClips(f testmedia.Files) (*clips, error) {
	c := &clips{}
	for i, p := range f.VP8 {
		v, err := loadIVF(p)
		if err != nil {
			return nil, err
		}
		c.vp8[i] = v
	}
	h, err := loadH264(f.H264)
	if err != nil {
		return nil, err
	}
	c.h264 = h
	return c, nil
}
