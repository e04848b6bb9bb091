// Package rtspcam is a real RTSP camera on loopback for tests: a gortsplib
// server (what the camera's firmware would be) fed by an ffmpeg encoder
// publishing a test pattern into it. Only tests import it.
package rtspcam

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtp"

	"podium/internal/testenv"
)

// Options describe a test camera.
type Options struct {
	Codec      string // "h264" (default), "h265" or "mjpeg"
	Audio      bool   // AAC audio (a 440 Hz tone)
	GOP        int    // frames between keyframes (default 25, at 25 fps)
	User, Pass string // reader credentials, if any
	UDP        bool   // also serve RTP over UDP
	Size       string // picture size (default 320x240)
	// BrokenVideo cuts every video packet the camera sends after its
	// payload headers: the stream describes and flows like a camera's (its
	// sound too), but no picture can be decoded from it.
	BrokenVideo bool
	// FrameCode paints each picture's number (modulo 64) as six black or
	// white horizontal bands, most significant at the bottom, so a
	// receiver can tell which picture it got after any transcoding.
	FrameCode bool
	// OnFrameSent, if set, is called as the last packet of each picture
	// leaves the camera, in picture order starting with picture 0.
	OnFrameSent func(time.Time)
}

// Camera is a running test camera. Stop and Start simulate the camera
// rebooting: the port closes, sessions drop, then it serves a new stream
// (new SSRC, new timestamps, new encoder state) on the same address.
type Camera struct {
	t       testing.TB
	opts    Options
	ffmpeg  string
	addr    string
	rtpPort int

	mu     sync.Mutex
	server *gortsplib.Server
	stream *gortsplib.ServerStream
	pub    *gortsplib.ServerSession
	cancel context.CancelFunc
	done   chan struct{}
}

// Start starts a camera on a free loopback port; it is stopped when the
// test ends. A missing ffmpeg skips the test (fails it in CI).
func Start(t testing.TB, opts Options) *Camera {
	t.Helper()
	if opts.Codec == "" {
		opts.Codec = "h264"
	}
	if opts.GOP == 0 {
		opts.GOP = 25
	}
	if opts.Size == "" {
		opts.Size = "320x240"
	}
	c := &Camera{t: t, opts: opts, ffmpeg: testenv.RequireBinary(t, "ffmpeg"), addr: testenv.FreeAddr(t)}
	if opts.UDP {
		c.rtpPort = freeUDPPair(t)
	}
	c.Start()
	t.Cleanup(c.Stop)
	return c
}

// freeUDPPair finds an even UDP port whose successor is free too (RTP, RTCP).
func freeUDPPair(t testing.TB) int {
	t.Helper()
	for range 100 {
		p := 20000 + 2*rand.IntN(20000)
		a, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		b, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p+1))
		a.Close()
		if err != nil {
			continue
		}
		b.Close()
		return p
	}
	t.Fatal("no free UDP port pair")
	return 0
}

// URL is the camera's stream address, with credentials when user is set.
func (c *Camera) URL(user, pass string) string {
	if user != "" {
		return fmt.Sprintf("rtsp://%s:%s@%s/cam", user, pass, c.addr)
	}
	return "rtsp://" + c.addr + "/cam"
}

// Start (re)starts the server and the encoder after a Stop.
func (c *Camera) Start() {
	t := c.t
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.server = &gortsplib.Server{Handler: handler{c}, RTSPAddress: c.addr}
	if c.rtpPort != 0 {
		c.server.UDPRTPAddress = "127.0.0.1:" + strconv.Itoa(c.rtpPort)
		c.server.UDPRTCPAddress = "127.0.0.1:" + strconv.Itoa(c.rtpPort+1)
	}
	var err error
	for range 50 { // the port may linger a moment after a stop
		if err = c.server.Start(); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("camera server: %v", err)
	}
	picture := "testsrc=size=" + c.opts.Size + ":rate=25"
	if c.opts.FrameCode {
		// Band k (of six, from the top) is bit k of the picture number.
		picture = "color=c=black:size=" + c.opts.Size + ":rate=25," +
			"geq=lum='16+219*mod(floor(mod(N\\,64)/pow(2\\,floor(Y*6/H)))\\,2)':cb=128:cr=128"
	}
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin", "-re",
		"-f", "lavfi", "-i", picture}
	if c.opts.Audio {
		args = append(args, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100")
	}
	pixFmt := "yuv420p"
	switch c.opts.Codec {
	case "mjpeg":
		// RFC 2435 JPEG over RTP needs full-range 4:2:0 baseline JPEG.
		args = append(args, "-c:v", "mjpeg", "-q:v", "5", "-huffman", "default")
		pixFmt = "yuvj420p"
	case "h265":
		args = append(args, "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error:bframes=0:keyint="+strconv.Itoa(c.opts.GOP))
	default:
		args = append(args, "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
			"-g", strconv.Itoa(c.opts.GOP), "-sc_threshold", "0")
	}
	args = append(args, "-pix_fmt", pixFmt)
	if c.opts.Audio {
		args = append(args, "-c:a", "aac", "-b:a", "64k")
	}
	args = append(args, "-f", "rtsp", "-rtsp_transport", "tcp", "rtsp://"+c.addr+"/cam")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, c.ffmpeg, args...)
	cmd.WaitDelay = 3 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		c.server.Close()
		c.server = nil
		t.Fatalf("camera encoder: %v", err)
	}
	c.cancel = cancel
	c.done = make(chan struct{})
	done := c.done
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
}

// Stop kills the encoder and closes the server: the camera is gone.
func (c *Camera) Stop() {
	c.mu.Lock()
	server, cancel, done := c.server, c.cancel, c.done
	c.server = nil
	c.mu.Unlock()
	if server == nil {
		return
	}
	cancel()
	<-done
	server.Close() // calls OnSessionClose: c.mu must not be held
	c.mu.Lock()
	c.stream, c.pub = nil, nil
	c.mu.Unlock()
}

// handler is the camera's gortsplib server side, kept off Camera's API.
type handler struct{ c *Camera }

func (h handler) authorized(conn *gortsplib.ServerConn, req *base.Request) bool {
	return h.c.opts.User == "" || conn.VerifyCredentials(req, h.c.opts.User, h.c.opts.Pass)
}

func (h handler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	c := h.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stream != nil && ctx.Session == c.pub {
		c.stream.Close()
		c.stream, c.pub = nil, nil
	}
}

// readable answers DESCRIBE and SETUP of a reader: the stream once the
// encoder publishes, 404 before.
func (h handler) readable(conn *gortsplib.ServerConn, req *base.Request) (*base.Response, *gortsplib.ServerStream, error) {
	if !h.authorized(conn, req) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	c := h.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stream == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, c.stream, nil
}

func (h handler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return h.readable(ctx.Conn, ctx.Request)
}

func (h handler) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	c := h.c
	c.mu.Lock()
	oldStream, oldPub := c.stream, c.pub
	c.stream = &gortsplib.ServerStream{Server: c.server, Desc: ctx.Description}
	if err := c.stream.Initialize(); err != nil {
		c.stream = nil
		c.mu.Unlock()
		return &base.Response{StatusCode: base.StatusInternalServerError}, err
	}
	c.pub = ctx.Session
	c.mu.Unlock()
	if oldStream != nil {
		oldStream.Close()
		oldPub.Close()
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (h handler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return &base.Response{StatusCode: base.StatusOK}, nil, nil
	}
	return h.readable(ctx.Conn, ctx.Request)
}

func (h handler) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (h handler) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	c := h.c
	c.mu.Lock()
	stream := c.stream
	c.mu.Unlock()
	broken, onFrame := c.opts.BrokenVideo, c.opts.OnFrameSent
	ctx.Session.OnPacketRTPAny(func(m *description.Media, _ format.Format, pkt *rtp.Packet) {
		if broken && m.Type == description.MediaTypeVideo {
			pkt = truncated(pkt)
		}
		_ = stream.WritePacketRTP(m, pkt)
		if onFrame != nil && m.Type == description.MediaTypeVideo && pkt.Marker {
			onFrame(time.Now())
		}
	})
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// truncated returns a copy of pkt without its payload past 140 bytes: for
// RFC 2435 JPEG, the headers and quantization tables (8 + 4 + 128 bytes in
// a picture's first packet) stay, the picture data does not.
func truncated(pkt *rtp.Packet) *rtp.Packet {
	out := *pkt
	out.Payload = append([]byte(nil), pkt.Payload[:min(len(pkt.Payload), 140)]...)
	return &out
}
