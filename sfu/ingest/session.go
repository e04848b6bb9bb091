package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/pion/rtp"
)

// plan is how one session turns the camera's medias into the source's
// tracks: forwarded directly, or transcoded by ffmpeg.
type plan struct {
	directVideo *description.Media
	h264        *format.H264
	directAudio *description.Media
	opus        *format.Opus
	ffmpegVideo bool
	ffmpegAudio bool
	videoDesc   string
	audioDesc   string
	unsupported []string
}

func codecName(f format.Format) string { return strings.ToLower(f.Codec()) }

// makePlan picks the first video and the first audio media the source can
// use. H.264 (unless reencode asks for short keyframe intervals) and Opus
// are forwarded as they are; H.265, MJPEG and other video go through
// ffmpeg, as do AAC, G.711 and other audio.
func makePlan(desc *description.Session, reencode bool) plan {
	var p plan
	for _, m := range desc.Medias {
		if len(m.Formats) == 0 || m.IsBackChannel {
			continue
		}
		f := m.Formats[0]
		switch m.Type {
		case description.MediaTypeVideo:
			if p.directVideo != nil || p.ffmpegVideo {
				continue
			}
			h, ok := f.(*format.H264)
			switch {
			case ok && h.PacketizationMode <= 1 && !reencode:
				p.directVideo, p.h264 = m, h
				p.videoDesc = "h264"
			case ok && reencode:
				p.ffmpegVideo = true
				p.videoDesc = "h264 re-encoded (keyframe every 2 s)"
			default:
				p.ffmpegVideo = true
				p.videoDesc = codecName(f) + " transcoded to h264"
			}
		case description.MediaTypeAudio:
			if p.directAudio != nil || p.ffmpegAudio {
				continue
			}
			if o, ok := f.(*format.Opus); ok && o.ClockRate() == 48000 {
				p.directAudio, p.opus = m, o
				p.audioDesc = "opus"
			} else {
				p.ffmpegAudio = true
				p.audioDesc = codecName(f) + " transcoded to opus"
			}
		default:
			p.unsupported = append(p.unsupported, string(m.Type))
		}
	}
	return p
}

func (p plan) empty() bool {
	return p.directVideo == nil && p.directAudio == nil && !p.ffmpegVideo && !p.ffmpegAudio
}

func (s *Source) gortsplibTransport() *gortsplib.Transport {
	var t gortsplib.Transport
	switch s.cfg.Transport {
	case TransportTCP:
		t = gortsplib.TransportTCP
	case TransportUDP:
		t = gortsplib.TransportUDP
	default:
		return nil
	}
	return &t
}

// runSession is one connection to the camera: DESCRIBE, then forward
// directly what can be, and start ffmpeg for the rest. It returns when the
// camera goes away, a part fails, or ctx ends.
func (s *Source) runSession(ctx context.Context) error {
	u, err := base.ParseURL(s.cfg.URL)
	if err != nil {
		return errors.New("invalid RTSP URL")
	}
	// Every connection, redirects and the TCP fallback included, goes
	// through the allow list after name resolution; the address last
	// connected to is what ffmpeg is given, so it cannot resolve the name
	// to somewhere else.
	var dialMu sync.Mutex
	var dialed netip.AddrPort
	c := &gortsplib.Client{
		Scheme:        u.Scheme,
		Host:          u.Host,
		Transport:     s.gortsplibTransport(),
		ReadTimeout:   s.m.cfg.ReadTimeout,
		WriteTimeout:  s.m.cfg.ReadTimeout,
		AnyPortEnable: true,
		UserAgent:     "podium",
		OnDecodeError: func(err error) { s.reportError(fmt.Errorf("rtp: %w", err)) },
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			conn, err := s.m.cfg.Allow.dialContext(ctx, network, address)
			if err != nil {
				return nil, err
			}
			if ta, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
				dialMu.Lock()
				dialed = ta.AddrPort()
				dialMu.Unlock()
			}
			return conn, nil
		},
	}
	if err := c.Start2(); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	clientOpen := true
	defer func() {
		if clientOpen {
			c.Close()
		}
	}()
	// Closing the client is how a blocking request is interrupted.
	stopOnCancel := context.AfterFunc(ctx, c.Close)
	defer stopOnCancel()

	desc, _, err := c.Describe(u)
	if errors.Is(err, errAddrRefused) {
		return fmt.Errorf("connect: %w", errAddrRefused)
	}
	if err != nil {
		return describeError(fmt.Errorf("describe: %w", err))
	}
	p := makePlan(desc, s.cfg.Reencode)
	if p.empty() {
		return fmt.Errorf("the camera offers no usable audio or video (medias: %s)", strings.Join(p.unsupported, ", "))
	}

	var video *videoOut
	if p.directVideo != nil || p.ffmpegVideo {
		if video, err = s.ensureVideo(p.videoDesc); err != nil {
			return err
		}
		var sps, pps []byte
		if p.h264 != nil {
			sps, pps = p.h264.SafeParams()
		}
		video.newSession(sps, pps)
		s.mu.Lock()
		s.vclock.restart()
		s.mu.Unlock()
	}
	var audio *audioOut
	if p.directAudio != nil || p.ffmpegAudio {
		if audio, err = s.ensureAudio(p.audioDesc); err != nil {
			return err
		}
		s.mu.Lock()
		s.aclock.restart()
		s.mu.Unlock()
	}

	sessionErr := make(chan error, 2)
	if p.directVideo != nil || p.directAudio != nil {
		if p.directVideo != nil {
			res, err := c.Setup(desc.BaseURL, p.directVideo, 0, 0)
			if err != nil {
				return describeError(fmt.Errorf("setup video: %w", err))
			}
			if err := s.checkTransportSource(res); err != nil {
				return err
			}
			vp := s.newVideoPipe(video)
			c.OnPacketRTP(p.directVideo, p.h264, vp.push)
		}
		if p.directAudio != nil {
			res, err := c.Setup(desc.BaseURL, p.directAudio, 0, 0)
			if err != nil {
				return describeError(fmt.Errorf("setup audio: %w", err))
			}
			if err := s.checkTransportSource(res); err != nil {
				return err
			}
			ap := s.newAudioPipe(audio, video == nil)
			c.OnPacketRTP(p.directAudio, p.opus, ap.push)
		}
		if _, err := c.Play(nil); err != nil {
			return describeError(fmt.Errorf("play: %w", err))
		}
		go func() { sessionErr <- c.Wait() }()
	} else {
		// Everything is transcoded: ffmpeg opens its own session, so do
		// not hold one open for nothing (cameras allow few).
		c.Close()
		clientOpen = false
	}

	tctx, tcancel := context.WithCancel(ctx)
	defer tcancel()
	tdone := make(chan struct{})
	if p.ffmpegVideo || p.ffmpegAudio {
		if c.Host != u.Host || c.Scheme != u.Scheme {
			// ffmpeg would follow the redirect by itself, unchecked.
			return errors.New("the camera redirected to another address; register the address it redirects to")
		}
		dialMu.Lock()
		addr := dialed
		dialMu.Unlock()
		input, err := s.ffmpegInput(addr)
		if err != nil {
			return err
		}
		tr := &transcoder{src: s, input: input, video: p.ffmpegVideo, audio: p.ffmpegAudio}
		if p.ffmpegVideo {
			tr.onVideo = s.newVideoPipe(video).push
		}
		if p.ffmpegAudio {
			tr.onAudio = s.newAudioPipe(audio, video == nil).push
		}
		go func() {
			defer close(tdone)
			sessionErr <- tr.run(tctx)
		}()
	} else {
		close(tdone)
	}

	var result error
	select {
	case <-ctx.Done():
	case result = <-sessionErr:
	}
	tcancel()
	if clientOpen {
		c.Close()
		clientOpen = false
	}
	<-tdone
	if result != nil {
		return describeError(result)
	}
	return nil
}

// checkTransportSource refuses a SETUP answer whose Transport header names
// a source address (where UDP packets are sent) the policy refuses.
func (s *Source) checkTransportSource(res *base.Response) error {
	if res == nil {
		return nil
	}
	var th headers.Transport
	if th.Unmarshal(res.Header["Transport"]) != nil || th.Source == nil {
		return nil
	}
	ip, ok := netip.AddrFromSlice(*th.Source)
	if !ok || s.m.cfg.Allow.Check(ip) != nil {
		return fmt.Errorf("setup: %w", errAddrRefused)
	}
	return nil
}

// ffmpegInput is the URL ffmpeg opens: the registered URL with its host
// replaced by the address the checked RTSP session connected to, checked
// again, so ffmpeg does no name resolution of its own.
func (s *Source) ffmpegInput(addr netip.AddrPort) (string, error) {
	if !addr.IsValid() {
		return "", errors.New("transcoder: no checked camera address to give ffmpeg")
	}
	if s.m.cfg.Allow.Check(addr.Addr()) != nil {
		return "", fmt.Errorf("transcoder: %w", errAddrRefused)
	}
	cp := *s.u
	cp.Host = netip.AddrPortFrom(addr.Addr().WithZone("").Unmap(), addr.Port()).String()
	return cp.String(), nil
}

// videoPipe is one session's path for H.264: depacketize, rewrite time,
// forward. It runs on one goroutine (gortsplib's or the transcoder's).
type videoPipe struct {
	s     *Source
	out   *videoOut
	clock *timeline
	depak *h264Depacketizer
}

func (s *Source) newVideoPipe(out *videoOut) *videoPipe {
	s.mu.Lock()
	clock := s.vclock
	s.mu.Unlock()
	if ts, ok := out.lastTimestamp(); ok {
		clock.continueAfter(ts)
	}
	return &videoPipe{s: s, out: out, clock: clock, depak: newH264Depacketizer()}
}

func (vp *videoPipe) push(pkt *rtp.Packet) {
	au, ts, err := vp.depak.push(pkt)
	if err != nil {
		vp.s.reportError(fmt.Errorf("h264: %w", err))
		return
	}
	if au == nil {
		return
	}
	switch vp.out.writeAU(au, vp.clock.out(ts, time.Now())) {
	case auSent:
		vp.s.markLive()
	case auNoParams:
		vp.s.reportError(errors.New("h264: keyframe without SPS/PPS, waiting for parameter sets"))
	}
}

// audioPipe is one session's path for Opus.
type audioPipe struct {
	s     *Source
	out   *audioOut
	clock *timeline
	// marksLive: sound alone makes the source live only when it has no
	// picture; a camera is live when its pictures reach the lesson.
	marksLive bool
}

func (s *Source) newAudioPipe(out *audioOut, marksLive bool) *audioPipe {
	s.mu.Lock()
	clock := s.aclock
	s.mu.Unlock()
	return &audioPipe{s: s, out: out, clock: clock, marksLive: marksLive}
}

func (ap *audioPipe) push(pkt *rtp.Packet) {
	if len(pkt.Payload) == 0 {
		return
	}
	ap.out.write(pkt.Payload, ap.clock.out(pkt.Timestamp, time.Now()))
	if ap.marksLive {
		ap.s.markLive()
	}
}
