package recorder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4/pkg/media"

	"podium/internal/testenv"
	"podium/internal/testmedia"
	"podium/sfu"
	"podium/storage"
)

// rtpWriter packetizes media samples the way a browser's RTP sender does
// and writes the packets into a published sfu.Track, so the recorder sees
// real RTP without a WebRTC engine in between.
type rtpWriter struct {
	mu    sync.Mutex
	track *sfu.Track
	layer int
	pk    rtp.Packetizer
	rate  uint32
	// drop, when set, decides whether to lose a packet (loss tests).
	drop func(*rtp.Packet) bool
	// sent is the media time written so far: a loaded machine may send
	// fewer frames than wall-clock time allows, and the recording must
	// hold exactly what was sent.
	sent time.Duration
}

func (w *rtpWriter) sentDuration() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sent
}

func newRTPWriter(track *sfu.Track, layer int, codec string) *rtpWriter {
	var pl rtp.Payloader
	rate := uint32(90000)
	switch codec {
	case codecH264:
		pl = &codecs.H264Payloader{}
	case codecVP8:
		pl = &codecs.VP8Payloader{EnablePictureID: true}
	case codecOpus:
		pl, rate = &codecs.OpusPayloader{}, 48000
	}
	return &rtpWriter{track: track, layer: layer, rate: rate,
		pk: rtp.NewPacketizer(1200, 96, rand.Uint32(), pl, rtp.NewRandomSequencer(), rate)}
}

func (w *rtpWriter) WriteSample(s media.Sample) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	samples := uint32(s.Duration.Seconds() * float64(w.rate))
	w.sent += s.Duration
	for _, p := range w.pk.Packetize(s.Data, samples) {
		if w.drop != nil && w.drop(p) {
			continue
		}
		w.track.WriteRTP(w.layer, p)
	}
	return nil
}

// lessonFixture is a live lesson with a teacher in it.
type lessonFixture struct {
	rooms *sfu.Rooms
	room  *sfu.Room
	files testmedia.Files
}

func startLesson(t *testing.T, rec *Recorder, id string) *lessonFixture {
	t.Helper()
	files := testmedia.ForTest(t)
	rooms := sfu.NewRooms(nil)
	rec.Attach(rooms, true)
	room, err := rooms.CreateRoom(sfu.LessonInfo{ID: id, Title: "Fractions"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { room.End("test over") })
	if err := room.AddParticipant(sfu.ParticipantInfo{ID: "t1", Name: "Ms Teacher", Role: sfu.RoleTeacher}); err != nil {
		t.Fatal(err)
	}
	return &lessonFixture{rooms: rooms, room: room, files: files}
}

// publish publishes a teacher track and plays media into it until ctx ends;
// the returned function waits for the player to stop.
func (f *lessonFixture) publish(t *testing.T, ctx context.Context, id string, source sfu.Source, codec string) (*sfu.Track, *rtpWriter, func()) {
	t.Helper()
	return f.publishAs(t, ctx, "t1", id, source, codec)
}

func (f *lessonFixture) publishAs(t *testing.T, ctx context.Context, participant, id string, source sfu.Source, codec string) (*sfu.Track, *rtpWriter, func()) {
	t.Helper()
	info := sfu.TrackInfo{ID: id, ParticipantID: participant, Source: source}
	switch codec {
	case codecH264:
		info.Kind, info.Codec = sfu.KindVideo, sfu.Codec{MimeType: "video/H264", ClockRate: 90000}
	case codecOpus:
		info.Kind, info.Codec = sfu.KindAudio, sfu.Codec{MimeType: "audio/opus", ClockRate: 48000, Channels: 2}
	}
	tr := sfu.NewTrack(info, nil)
	if err := f.room.Publish(tr); err != nil {
		t.Fatal(err)
	}
	w := newRTPWriter(tr, 0, codec)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var err error
		if codec == codecH264 {
			err = testmedia.PlayH264(ctx, f.files.H264, testmedia.FPS, w, true)
		} else {
			err = testmedia.PlayOgg(ctx, f.files.Opus, w, true)
		}
		if err != nil {
			t.Errorf("play %s: %v", id, err)
		}
	}()
	return tr, w, func() { <-done }
}

// waitManifest polls storage until the lesson's manifest satisfies ok.
func waitManifest(t *testing.T, store storage.Store, lesson string, timeout time.Duration, ok func(Manifest) bool) Manifest {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last Manifest
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rc, _, err := store.Get(ctx, storage.ManifestKey(lesson))
		if err == nil {
			data, _ := io.ReadAll(rc)
			rc.Close()
			var m Manifest
			if json.Unmarshal(data, &m) == nil {
				last = m
				if ok(m) {
					cancel()
					return m
				}
			}
		}
		cancel()
		time.Sleep(200 * time.Millisecond)
	}
	b, _ := json.MarshalIndent(last, "", " ")
	t.Fatalf("manifest of %s not as expected after %v; last:\n%s", lesson, timeout, b)
	return Manifest{}
}

func manifestTrack(t *testing.T, m Manifest, id string) ManifestTrack {
	t.Helper()
	for _, tr := range m.Tracks {
		if tr.ID == id {
			return tr
		}
	}
	t.Fatalf("manifest has no track %q: %+v", id, m.Tracks)
	return ManifestTrack{}
}

// assemble downloads a recorded track (init + every segment in the
// manifest) from storage into one playable file, as a replay would.
func assemble(t *testing.T, store storage.Store, tr ManifestTrack) string {
	t.Helper()
	var buf bytes.Buffer
	keys := []string{tr.Init}
	for _, s := range tr.Segments {
		keys = append(keys, s.Key)
	}
	for _, k := range keys {
		rc, _, err := store.Get(context.Background(), k)
		if err != nil {
			t.Fatalf("get %s: %v", k, err)
		}
		if _, err := io.Copy(&buf, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	p := filepath.Join(t.TempDir(), tr.ID+".mp4")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

type probe struct {
	codec    string
	duration float64
	frames   int
}

// probeFile asks ffprobe what a user's player would find in the file: the
// codec, the duration, and how many frames decode.
func probeFile(t *testing.T, path string) probe {
	t.Helper()
	ffprobe := testenv.RequireBinary(t, "ffprobe")
	out, err := exec.Command(ffprobe, "-v", "error", "-count_frames", "-show_entries",
		"stream=codec_name,nb_read_frames:format=duration", "-of", "json", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
	}
	var res struct {
		Streams []struct {
			CodecName    string `json:"codec_name"`
			NbReadFrames string `json:"nb_read_frames"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Streams) != 1 {
		t.Fatalf("ffprobe output %s: %v", out, err)
	}
	d, _ := strconv.ParseFloat(res.Format.Duration, 64)
	n, _ := strconv.Atoi(res.Streams[0].NbReadFrames)
	return probe{codec: res.Streams[0].CodecName, duration: d, frames: n}
}

// decodeErrors decodes the whole file and returns what ffmpeg complained
// about ("" when it decoded cleanly).
func decodeErrors(t *testing.T, path string) string {
	t.Helper()
	ffmpeg := testenv.RequireBinary(t, "ffmpeg")
	out, err := exec.Command(ffmpeg, "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput()
	if err != nil {
		return err.Error() + ": " + string(out)
	}
	return string(bytes.TrimSpace(out))
}

func isNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }

// frameWidths lists the distinct frame widths a decoder sees, in order.
func frameWidths(t *testing.T, path string) string {
	t.Helper()
	ffprobe := testenv.RequireBinary(t, "ffprobe")
	out, err := exec.Command(ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=width", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe frames: %v\n%s", err, out)
	}
	var widths []string
	for _, w := range strings.Fields(string(out)) {
		if len(widths) == 0 || widths[len(widths)-1] != w {
			widths = append(widths, w)
		}
	}
	return strings.Join(widths, ",")
}
