package rtspcam

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
)

// describe reads the camera's stream description as an RTSP client would,
// retrying while the encoder has not published yet (404).
func describe(t *testing.T, rawURL string) (*gortsplib.Client, *description.Session, error) {
	t.Helper()
	u, err := base.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		tcp := gortsplib.TransportTCP
		c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tcp}
		if err := c.Start2(); err != nil {
			t.Fatalf("connect: %v", err)
		}
		desc, res, err := c.Describe(u)
		if err == nil {
			return c, desc, nil
		}
		c.Close()
		if res == nil || res.StatusCode != base.StatusNotFound || time.Now().After(deadline) {
			return nil, nil, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A reader with the wrong password is refused; with the right one it finds
// H.264 video and AAC audio and receives the video's RTP packets.
func TestCameraServesH264AndAAC(t *testing.T) {
	cam := Start(t, Options{Audio: true, User: "admin", Pass: "pw-123"})
	if _, _, err := describe(t, cam.URL("admin", "wrong")); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("describe with a wrong password: %v, want 401", err)
	}
	c, desc, err := describe(t, cam.URL("admin", "pw-123"))
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	defer c.Close()
	var h264 *format.H264
	var aac *format.MPEG4Audio
	videoMedia := desc.FindFormat(&h264)
	if videoMedia == nil || desc.FindFormat(&aac) == nil {
		t.Fatalf("camera offers %+v, want H.264 and AAC", desc.Medias)
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatalf("setup: %v", err)
	}
	var video atomic.Int64
	c.OnPacketRTPAny(func(m *description.Media, _ format.Format, _ *rtp.Packet) {
		if m == videoMedia {
			video.Add(1)
		}
	})
	if _, err := c.Play(nil); err != nil {
		t.Fatalf("play: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for video.Load() < 50 {
		if time.Now().After(deadline) {
			t.Fatalf("received %d video packets in 20 s, want >= 50", video.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
