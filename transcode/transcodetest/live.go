package transcodetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"

	"podium/internal/testenv"
	"podium/internal/testmedia"
	"podium/sfu"
	"podium/storage"
	"podium/vod"
)

// LiveOptions describe a lesson recorded live by the real recorder.
type LiveOptions struct {
	Seconds int
	// Width, Height and FPS of the teacher's camera (default 1280x720 at 30).
	Width, Height, FPS int
	// Every Period (default 3 s), starting at Period/3, the camera shows a
	// white picture and the microphone beeps (1 kHz) for Flash (200 ms):
	// the same instants on both tracks, so a replay's A/V offset can be
	// measured.
	Period, Flash time.Duration
	// DTX makes the microphone send as a browser with Opus DTX does in
	// silence: one packet every 400 ms, the RTP clock running on.
	DTX bool
	// MuteFrom..MuteTo the microphone sends nothing and its RTP clock runs
	// on (a browser's muted or replaced track).
	MuteFrom, MuteTo time.Duration
	// Hold, when set, is called once all media is sent; the lesson stays
	// live (sending nothing more) until it returns.
	Hold func()
	// Ended, when set, is called the moment the lesson ends (before the
	// recording is complete), from RecordLive's goroutine.
	Ended func(at time.Time)
}

func (o *LiveOptions) defaults() {
	if o.Seconds <= 0 {
		o.Seconds = 20
	}
	if o.Width <= 0 || o.Height <= 0 {
		o.Width, o.Height = 1280, 720
	}
	if o.FPS <= 0 {
		o.FPS = 30
	}
	if o.Period <= 0 {
		o.Period = 3 * time.Second
	}
	if o.Flash <= 0 {
		o.Flash = 200 * time.Millisecond
	}
}

// Flashing reports whether the fixture's camera is white (and its microphone
// beeping) at t after the start.
func (o LiveOptions) Flashing(t time.Duration) bool {
	o.defaults()
	ph := (t - o.Period/3) % o.Period
	return t >= o.Period/3 && ph < o.Flash
}

// RecordLive runs a lesson through the real recorder in real time: a
// teacher publishes an H.264 camera and an Opus microphone as RTP into sfu
// tracks, paced like a browser's encoder, and the recorder writes fMP4
// segments and the manifest into store. It returns the complete manifest.
func RecordLive(t testing.TB, store storage.Store, lesson string, o LiveOptions) vod.Manifest {
	t.Helper()
	o.defaults()
	ffmpeg := testenv.RequireBinary(t, "ffmpeg")
	dir := t.TempDir()
	period, flash := o.Period.Seconds(), o.Flash.Seconds()
	on := fmt.Sprintf("gte(t,%[1]f)*lt(mod(t-%[1]f,%[2]f),%[3]f)", period/3, period, flash)
	h264 := filepath.Join(dir, "cam.h264")
	ogg := filepath.Join(dir, "mic.ogg")
	jobs := [][]string{
		{"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=s=%dx%d:r=%d:d=%d", o.Width, o.Height, o.FPS, o.Seconds),
			"-vf", "drawbox=c=white:t=fill:enable='" + on + "'",
			"-c:v", "libx264", "-profile:v", "baseline", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-bf", "0",
			"-g", fmt.Sprint(o.FPS), "-keyint_min", fmt.Sprint(o.FPS), "-x264-params", "slices=1:repeat-headers=1",
			"-b:v", "2500k", "-f", "h264", h264},
		{"-f", "lavfi", "-i", fmt.Sprintf("aevalsrc=exprs='%[1]s*0.5*sin(2*PI*1000*t)|%[1]s*0.5*sin(2*PI*1000*t)':s=48000:d=%d", on, o.Seconds),
			"-c:a", "libopus", "-b:a", "48k", "-frame_duration", "20", "-page_duration", "20000", ogg},
	}
	for _, args := range jobs {
		full := append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...)
		if out, err := exec.Command(ffmpeg, full...).CombinedOutput(); err != nil {
			t.Fatalf("make fixture media: %v\n%s", err, out)
		}
	}
	units, err := testmedia.ReadH264AccessUnits(h264)
	if err != nil {
		t.Fatal(err)
	}
	opus, err := oggPackets(ogg)
	if err != nil {
		t.Fatal(err)
	}

	rooms, stop := recordInto(t, store)
	defer stop()
	room, err := rooms.CreateRoom(sfu.LessonInfo{ID: lesson, Title: "Flashes " + lesson})
	if err != nil {
		t.Fatal(err)
	}
	if err := room.AddParticipant(sfu.ParticipantInfo{ID: "t1", Name: "Ms. Okafor", Role: sfu.RoleTeacher}); err != nil {
		t.Fatal(err)
	}
	cam := sfu.NewTrack(sfu.TrackInfo{ID: "cam", ParticipantID: "t1", Kind: sfu.KindVideo, Source: sfu.SourceCamera,
		Codec: sfu.Codec{MimeType: "video/H264", ClockRate: 90000}}, nil)
	mic := sfu.NewTrack(sfu.TrackInfo{ID: "mic", ParticipantID: "t1", Kind: sfu.KindAudio, Source: sfu.SourceMicrophone,
		Codec: sfu.Codec{MimeType: "audio/opus", ClockRate: 48000, Channels: 2}}, nil)
	for _, tr := range []*sfu.Track{cam, mic} {
		if err := room.Publish(tr); err != nil {
			t.Fatal(err)
		}
	}

	// Both players follow one wall-clock schedule, as a browser's capture
	// does, so the recorded tracks line up as they were sent.
	start := time.Now().Add(100 * time.Millisecond)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		pk := rtp.NewPacketizer(1200, 102, rand.Uint32(), &codecs.H264Payloader{}, rtp.NewRandomSequencer(), 90000)
		frame := time.Second / time.Duration(o.FPS)
		for i, au := range units {
			time.Sleep(time.Until(start.Add(time.Duration(i) * frame)))
			for _, p := range pk.Packetize(au, uint32(90000/o.FPS)) {
				cam.WriteRTP(0, p)
			}
		}
	}()
	go func() {
		defer wg.Done()
		pk := rtp.NewPacketizer(1200, 111, rand.Uint32(), &codecs.OpusPayloader{}, rtp.NewRandomSequencer(), 48000)
		const frame = 20 * time.Millisecond
		for i, p := range opus {
			at := time.Duration(i) * frame
			send := true
			switch {
			case at >= o.MuteFrom && at < o.MuteTo:
				send = false
			case o.DTX && !o.Flashing(at) && !o.Flashing(at-frame) && !o.Flashing(at+frame):
				send = i%20 == 0
			}
			if !send {
				pk.SkipSamples(960)
				continue
			}
			time.Sleep(time.Until(start.Add(at)))
			for _, rp := range pk.Packetize(p, 960) {
				mic.WriteRTP(0, rp)
			}
		}
	}()
	wg.Wait()
	if o.Hold != nil {
		o.Hold()
	}
	endedAt := time.Now()
	room.End("lesson over")
	if o.Ended != nil {
		o.Ended(endedAt)
	}

	return waitComplete(t, store, lesson)
}

// oggPackets reads an Ogg Opus file's packets (one per page, as the
// fixture writes them).
func oggPackets(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r, _, err := oggreader.NewWith(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out [][]byte
	for {
		page, hdr, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if hdr.GranulePosition == 0 {
			continue // OpusHead, OpusTags
		}
		out = append(out, page)
	}
}

func readJSON(store storage.Store, key string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, _, err := store.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	return json.NewDecoder(rc).Decode(v)
}
