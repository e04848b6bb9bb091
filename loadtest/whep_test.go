package loadtest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// relay is the smallest WHIP/WHEP server that forwards one simulcast layer:
// a real pion peer on each side, standing in for "any WHEP server" the tool
// can be pointed at. It checks the tool's plain WHIP/WHEP path; the Podium
// path is checked against a real podium.
type relay struct {
	t   testing.TB
	api *webrtc.API

	mu     sync.Mutex
	tracks []*webrtc.TrackLocalStaticRTP // video (rid "h"), audio
	pcs    []*webrtc.PeerConnection
	wg     sync.WaitGroup
}

func newRelay(t testing.TB) *relay {
	api, err := newAPI(peerOptions{loopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{t: t, api: api.API}
	video, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "v", "relay")
	audio, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "a", "relay")
	r.tracks = []*webrtc.TrackLocalStaticRTP{video, audio}
	return r
}

func (r *relay) close() {
	r.mu.Lock()
	pcs := r.pcs
	r.mu.Unlock()
	for _, pc := range pcs {
		_ = pc.Close()
	}
	r.wg.Wait()
}

func (r *relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method == http.MethodDelete {
		w.WriteHeader(http.StatusOK)
		return
	}
	offer, _ := io.ReadAll(req.Body)
	pc, err := r.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	r.mu.Lock()
	r.pcs = append(r.pcs, pc)
	r.mu.Unlock()
	if strings.HasPrefix(req.URL.Path, "/whip/") {
		pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			r.t.Logf("relay got track kind=%s rid=%q ssrc=%d", tr.Kind(), tr.RID(), tr.SSRC())
			out := r.tracks[1]
			if tr.Kind() == webrtc.RTPCodecTypeVideo {
				if tr.RID() != "h" {
					return
				}
				out = r.tracks[0]
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				for {
					p, _, err := tr.ReadRTP()
					if err != nil {
						return
					}
					p.Header.Extensions = nil
					p.Header.Extension = false
					if err := out.WriteRTP(p); err != nil && !errors.Is(err, io.ErrClosedPipe) {
						return
					}
				}
			}()
		})
	} else {
		for _, tr := range r.tracks {
			s, err := pc.AddTrack(tr)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			go readRTCP(s, "", nil)
		}
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	sdp, err := completeLocal(req.Context(), pc, ans)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	w.Header().Set("Location", req.URL.Path+"/res")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, sdp)
}

func TestWHIPWHEPAgainstMinimalRelay(t *testing.T) {
	ffmpeg := requireFFmpeg(t)
	rel := newRelay(t)
	srv := httptest.NewServer(rel)
	t.Cleanup(func() {
		srv.Close()
		rel.close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := Run(ctx, Config{
		Server: srv.URL, Bearer: "x", Lessons: 1, Classrooms: 2, JoinRate: 10, Duration: 4 * time.Second,
		Codec: "vp8", Publish: "whip", Subscribe: "whep", MetricsURL: "-", Progress: time.Second,
		LoopbackOnly: true, LessonPrefix: "relay", FFmpeg: ffmpeg,
	}, &progress)
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	rep.WriteTable(&table)
	t.Log("\n" + progress.String() + table.String())
	if rep.Receiving != 2 || rep.Failed != 0 {
		t.Fatalf("receiving %d failed %d, want 2 and 0; errors %v", rep.Receiving, rep.Failed, rep.Errors)
	}
	// The relay forwards layer h only: the fingerprints must say so.
	if rep.SettledLayer["h"] != 2 {
		t.Fatalf("settled layers %v, want h=2", rep.SettledLayer)
	}
	if rep.DelayMs.N == 0 || rep.DelayMs.Max <= 0 {
		t.Fatalf("no end-to-end delay measured: %+v", rep.DelayMs)
	}
	if rep.VideoKbps.P50 <= 0 || rep.AudioKbps.P50 <= 0 {
		t.Fatalf("no bitrate: video %+v audio %+v", rep.VideoKbps, rep.AudioKbps)
	}
	if !strings.Contains(progress.String(), "classrooms 2/2") {
		t.Fatalf("progress line missing: %q", progress.String())
	}
}
