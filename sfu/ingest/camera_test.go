package ingest

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

// cameraOptions describe a test camera.
type cameraOptions struct {
	codec      string // "h264" (default), "h265" or "mjpeg"
	audio      bool   // AAC audio
	gop        int    // frames between keyframes (default 25)
	user, pass string // reader credentials, if any
	udp        bool   // also serve RTP over UDP
	size       string // default 320x240
}

// testCamera is a real RTSP camera on loopback: a gortsplib server (what
// the camera's firmware would be) fed by an ffmpeg encoder publishing a
// test pattern into it. stop and start simulate the camera rebooting: the
// port closes, sessions drop, then it serves a new stream (new SSRC, new
// timestamps, new encoder state).
type testCamera struct {
	t       testing.TB
	opts    cameraOptions
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

func startCamera(t testing.TB, opts cameraOptions) *testCamera {
	t.Helper()
	if opts.codec == "" {
		opts.codec = "h264"
	}
	if opts.gop == 0 {
		opts.gop = 25
	}
	if opts.size == "" {
		opts.size = "320x240"
	}
	c := &testCamera{t: t, opts: opts, ffmpeg: testenv.RequireBinary(t, "ffmpeg"), addr: testenv.FreeAddr(t)}
	if opts.udp {
		c.rtpPort = freeUDPPair(t)
	}
	c.start()
	t.Cleanup(c.stop)
	return c
}

// freeUDPPair finds an even UDP port whose successor is free too (RTP, RTCP).
func freeUDPPair(t testing.TB) int {
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

func (c *testCamera) url(user, pass string) string {
	if user != "" {
		return fmt.Sprintf("rtsp://%s:%s@%s/cam", user, pass, c.addr)
	}
	return "rtsp://" + c.addr + "/cam"
}

func (c *testCamera) start() {
	t := c.t
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.server = &gortsplib.Server{Handler: c, RTSPAddress: c.addr}
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
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin", "-re",
		"-f", "lavfi", "-i", "testsrc=size=" + c.opts.size + ":rate=25"}
	if c.opts.audio {
		args = append(args, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100")
	}
	pixFmt := "yuv420p"
	switch c.opts.codec {
	case "mjpeg":
		// RFC 2435 JPEG over RTP needs full-range 4:2:0 baseline JPEG.
		args = append(args, "-c:v", "mjpeg", "-q:v", "5", "-huffman", "default")
		pixFmt = "yuvj420p"
	case "h265":
		args = append(args, "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error:keyint="+strconv.Itoa(c.opts.gop))
	default:
		args = append(args, "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
			"-g", strconv.Itoa(c.opts.gop), "-sc_threshold", "0")
	}
	args = append(args, "-pix_fmt", pixFmt)
	if c.opts.audio {
		args = append(args, "-c:a", "aac", "-b:a", "64k")
	}
	args = append(args, "-f", "rtsp", "-rtsp_transport", "tcp", "rtsp://"+c.addr+"/cam")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, c.ffmpeg, args...)
	cmd.WaitDelay = 3 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("camera encoder: %v", err)
	}
	c.cancel = cancel
	c.done = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
}

// stop kills the encoder and closes the server: the camera is gone.
func (c *testCamera) stop() {
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

func (c *testCamera) authorized(conn *gortsplib.ServerConn, req *base.Request) bool {
	return c.opts.user == "" || conn.VerifyCredentials(req, c.opts.user, c.opts.pass)
}

func (c *testCamera) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stream != nil && ctx.Session == c.pub {
		c.stream.Close()
		c.stream, c.pub = nil, nil
	}
}

func (c *testCamera) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if !c.authorized(ctx.Conn, ctx.Request) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stream == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, c.stream, nil
}

func (c *testCamera) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
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

func (c *testCamera) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return &base.Response{StatusCode: base.StatusOK}, nil, nil
	}
	if !c.authorized(ctx.Conn, ctx.Request) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stream == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, c.stream, nil
}

func (c *testCamera) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (c *testCamera) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	c.mu.Lock()
	stream := c.stream
	c.mu.Unlock()
	ctx.Session.OnPacketRTPAny(func(m *description.Media, _ format.Format, pkt *rtp.Packet) {
		_ = stream.WritePacketRTP(m, pkt)
	})
	return &base.Response{StatusCode: base.StatusOK}, nil
}
