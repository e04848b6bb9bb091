package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"podium/internal/rtpmux"
	"podium/internal/tailbuf"
)

// transcoder runs one ffmpeg process that pulls the camera's RTSP URL itself
// and sends H.264 and/or Opus as RTP to UDP sockets on loopback that the
// source reads.
//
// Why RTP on loopback rather than a pipe: RTP keeps ffmpeg's timestamps per
// packet and per stream, so the transcoded output goes through exactly the
// same depacketize/retime/forward path as a camera that sends H.264
// directly; a pipe of raw Annex-B has no timestamps, and a muxed pipe
// (MPEG-TS) would need a demuxer and add muxing delay. Loopback UDP does
// not drop packets in practice, and only packets from 127.0.0.1 are read.
type transcoder struct {
	src     *Source
	input   string // the camera URL, host replaced by its checked address
	video   bool
	audio   bool
	onVideo func(*rtp.Packet)
	onAudio func(*rtp.Packet)
}

const (
	// ffmpegStartGrace is how long ffmpeg may take to open the camera and
	// probe its streams before its silence counts as a stall.
	ffmpegStartGrace = 20 * time.Second
	// ffmpegStallTimeout is the longest silence accepted once media flows.
	ffmpegStallTimeout = 10 * time.Second
)

// ffmpegArgs builds the command line; ports are where the RTP goes.
func ffmpegArgs(inputURL string, transport Transport, videoPort, audioPort int) []string {
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error"}
	switch transport {
	case TransportTCP:
		args = append(args, "-rtsp_transport", "tcp")
	case TransportUDP:
		args = append(args, "-rtsp_transport", "udp")
	}
	// -timeout: give up on a silent camera (microseconds) instead of hanging.
	args = append(args, "-timeout", "10000000")
	switch {
	case videoPort != 0 && audioPort == 0:
		args = append(args, "-allowed_media_types", "video")
	case videoPort == 0 && audioPort != 0:
		args = append(args, "-allowed_media_types", "audio")
	}
	// Decoders thread by slices, not frames: frame threads hold a picture
	// per thread back (HEVC: ~200 ms at 25 fps on two cores).
	args = append(args, "-thread_type", "slice", "-i", inputURL)
	if videoPort != 0 {
		// Constrained baseline (what the track advertises), no B-frames,
		// at most 720p for rural links, a keyframe every 2 s, parameter sets
		// in-band before every keyframe.
		args = append(args,
			"-map", "0:v:0", "-an",
			"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
			"-profile:v", "baseline", "-level:v", "3.1", "-pix_fmt", "yuv420p",
			"-vf", "scale='min(1280,iw)':-2",
			"-g", "50", "-bf", "0", "-x264-params", "repeat-headers=1",
			"-f", "rtp", "-payload_type", "96", "-pkt_size", strconv.Itoa(maxPacketSize),
			rtpURL(videoPort))
	}
	if audioPort != 0 {
		args = append(args,
			"-map", "0:a:0", "-vn",
			"-c:a", "libopus", "-ar", "48000", "-ac", "2", "-b:a", "64k", "-application", "lowdelay",
			"-f", "rtp", "-payload_type", "111", "-pkt_size", strconv.Itoa(maxPacketSize),
			rtpURL(audioPort))
	}
	return args
}

// rtpURL sends RTCP to the same port: the reader skips it (RFC 5761
// demultiplexing), so no second port is needed and nothing goes astray.
func rtpURL(port int) string {
	return fmt.Sprintf("rtp://127.0.0.1:%d?rtcpport=%d", port, port)
}

func (t *transcoder) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var conns []net.PacketConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	listen := func() (net.PacketConn, int, error) {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, 0, fmt.Errorf("transcoder: listen: %w", err)
		}
		conns = append(conns, c)
		return c, c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	var vconn, aconn net.PacketConn
	var vport, aport int
	var err error
	if t.video {
		if vconn, vport, err = listen(); err != nil {
			return err
		}
	}
	if t.audio {
		if aconn, aport, err = listen(); err != nil {
			return err
		}
	}

	stderr := tailbuf.New(4096)
	cmd := exec.CommandContext(ctx, t.src.m.cfg.FFmpegPath, ffmpegArgs(t.input, t.src.cfg.Transport, vport, aport)...)
	cmd.Stderr = stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 3 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start ffmpeg: %w", err)
	}
	t.src.log.Info("transcoder started", "pid", cmd.Process.Pid, "video", t.video, "audio", t.audio)

	// Each stream is watched on its own: sound flowing must not hide
	// pictures that never come (a camera whose video ffmpeg cannot decode).
	started := time.Now().Add(ffmpegStartGrace - ffmpegStallTimeout).UnixNano()
	var lastVideo, lastAudio atomic.Int64
	lastVideo.Store(started)
	lastAudio.Store(started)
	var wg sync.WaitGroup
	read := func(c net.PacketConn, last *atomic.Int64, deliver func(*rtp.Packet)) {
		defer wg.Done()
		buf := make([]byte, 2048)
		var pkt rtp.Packet
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return // closed
			}
			if ua, ok := from.(*net.UDPAddr); !ok || !ua.IP.IsLoopback() {
				continue
			}
			if rtpmux.IsRTCP(buf[:n]) {
				continue
			}
			// A fresh buffer per packet: the H.264 depacketizer keeps
			// references to fragments until the picture is complete.
			if pkt.Unmarshal(append([]byte(nil), buf[:n]...)) != nil {
				continue
			}
			last.Store(time.Now().UnixNano())
			deliver(&pkt)
		}
	}
	if vconn != nil {
		wg.Add(1)
		go read(vconn, &lastVideo, t.onVideo)
	}
	if aconn != nil {
		wg.Add(1)
		go read(aconn, &lastAudio, t.onAudio)
	}

	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var result error
loop:
	for {
		select {
		case err := <-waitErr:
			result = ffmpegExitError(err, stderr, t.src.scrub)
			waitErr = nil
			break loop
		case <-tick.C:
			if silent := t.silentStream(&lastVideo, &lastAudio); silent != "" {
				result = fmt.Errorf("transcoder stalled: no %s from ffmpeg for %s; the camera's %s may not be decodable (ffmpeg: %s)",
					silent, ffmpegStallTimeout, silent, t.src.scrub.scrub(stderr.LastLine()))
				break loop
			}
		case <-ctx.Done():
			break loop
		}
	}
	cancel()
	if waitErr != nil {
		<-waitErr
	}
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
	return result
}

// silentStream names the stream ffmpeg has sent nothing of for longer than
// ffmpegStallTimeout, or is "".
func (t *transcoder) silentStream(lastVideo, lastAudio *atomic.Int64) string {
	stale := func(last *atomic.Int64) bool {
		return time.Since(time.Unix(0, last.Load())) > ffmpegStallTimeout
	}
	switch {
	case t.video && stale(lastVideo):
		return "video"
	case t.audio && stale(lastAudio):
		return "audio"
	}
	return ""
}

func ffmpegExitError(err error, stderr *tailbuf.Buffer, sc scrubber) error {
	msg := strings.TrimSpace(sc.scrub(stderr.String()))
	if msg == "" {
		msg = "no output"
	}
	if i := strings.LastIndexByte(msg, '\n'); i >= 0 && len(msg) > 300 {
		msg = msg[i+1:]
	}
	var exit *exec.ExitError
	if err == nil || errors.As(err, &exit) {
		return fmt.Errorf("ffmpeg exited (%v): %s", err, msg)
	}
	return fmt.Errorf("ffmpeg: %w: %s", err, msg)
}
