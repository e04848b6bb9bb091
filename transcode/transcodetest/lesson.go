package transcodetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"podium/internal/testenv"
	"podium/internal/testmedia"
	"podium/recorder"
	"podium/sfu"
	"podium/storage"
	"podium/vod"
)

// Lesson is a scripted lesson for RecordLesson: who takes part, what each
// of their tracks sends and when, and who is put on stage when.
type Lesson struct {
	ID, Title string
	Seconds   int
	Tracks    []ScriptTrack
	Stage     []StageChange
}

// ScriptTrack is one published track of a scripted lesson.
type ScriptTrack struct {
	Participant string // participant id
	Name        string // its display name
	Role        sfu.Role
	Kind        sfu.Kind
	Source      sfu.Source
	// Lavfi is the ffmpeg lavfi source of what the track sends, as long
	// as the lesson: a picture (with its size and rate, e.g.
	// "color=c=green:s=480x270:r=30") or a sound
	// ("aevalsrc=exprs='0.5*sin(2*PI*400*t)':s=48000").
	Lavfi string
	// Filter is an optional ffmpeg filter chain on Lavfi.
	Filter string
	FPS    int // a picture's rate (default 30)
	// From..To the track is published (To 0: until the end).
	From, To time.Duration
	// Mutes are the stretches during which the server mutes the track
	// (sfu.Room.SetTrackMuted): the publisher sends on, nothing is
	// forwarded.
	Mutes [][2]time.Duration
}

// StageChange puts a participant on stage at At ("" takes whoever is on
// stage off it).
type StageChange struct {
	At          time.Duration
	Participant string
}

// FlashExpr is an ffmpeg expression of t (seconds) that is 1 for flash
// every period, starting at period/3 (as LiveOptions.Flashing), else 0:
// for a picture that flashes white and a microphone that beeps at the
// same instants.
func FlashExpr(period, flash time.Duration) string {
	p, f := period.Seconds(), flash.Seconds()
	return fmt.Sprintf("gte(t,%[1]f)*lt(mod(t-%[1]f,%[2]f),%[3]f)", p/3, p, f)
}

// RecordLesson runs a scripted lesson through the real recorder in real
// time: every track is encoded (H.264 or Opus) by ffmpeg from its lavfi
// source, packetized as RTP and written into an sfu track of a real room
// paced by the wall clock, published, muted and unpublished as scripted,
// while the room's stage changes as scripted. It returns the complete
// manifest the recorder wrote into store and the wall-clock time of the
// script's t=0.
func RecordLesson(t testing.TB, store storage.Store, l Lesson) (vod.Manifest, time.Time) {
	t.Helper()
	ffmpeg := testenv.RequireBinary(t, "ffmpeg")
	end := time.Duration(l.Seconds) * time.Second
	type media struct {
		track  *sfu.Track
		script ScriptTrack
		units  [][]byte // H.264 access units or Opus packets
	}
	var all []media
	participants := map[string]sfu.ParticipantInfo{}
	for i, st := range l.Tracks {
		if st.FPS <= 0 {
			st.FPS = 30
		}
		if st.To <= 0 || st.To > end {
			st.To = end
		}
		participants[st.Participant] = sfu.ParticipantInfo{ID: st.Participant, Name: st.Name, Role: st.Role}
		m := media{script: st}
		info := sfu.TrackInfo{ID: fmt.Sprintf("%s-%d", st.Participant, i), ParticipantID: st.Participant, Kind: st.Kind, Source: st.Source}
		var err error
		if st.Kind == sfu.KindVideo {
			info.Codec = sfu.Codec{MimeType: "video/H264", ClockRate: 90000}
			m.units, err = encodeH264(t, ffmpeg, st.Lavfi, st.Filter, st.FPS, l.Seconds)
		} else {
			info.Codec = sfu.Codec{MimeType: "audio/opus", ClockRate: 48000, Channels: 2}
			m.units, err = encodeOpus(t, ffmpeg, st.Lavfi, st.Filter, l.Seconds)
		}
		if err != nil {
			t.Fatalf("track %d of %s: %v", i, st.Participant, err)
		}
		m.track = sfu.NewTrack(info, nil)
		all = append(all, m)
	}

	rooms, stop := recordInto(t, store)
	defer stop()
	title := l.Title
	if title == "" {
		title = "Lesson " + l.ID
	}
	room, err := rooms.CreateRoom(sfu.LessonInfo{ID: l.ID, Title: title})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, len(participants))
	for id := range participants {
		ids = append(ids, id)
	}
	sort.Strings(ids) // teachers join in the script's order of ids; fine for a test
	for _, id := range ids {
		if err := room.AddParticipant(participants[id]); err != nil {
			t.Fatal(err)
		}
	}

	// Every track follows one wall-clock schedule, as browsers' captures
	// do, so the recorded tracks line up as they were sent.
	start := time.Now().Add(500 * time.Millisecond)
	errs := make(chan error, len(all)+1)
	var wg sync.WaitGroup
	for _, m := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- play(room, m.track, m.script, m.units, start)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, s := range l.Stage {
			time.Sleep(time.Until(start.Add(s.At)))
			if err := room.SetStage(s.Participant); err != nil {
				errs <- fmt.Errorf("stage %q at %s: %w", s.Participant, s.At, err)
				return
			}
		}
		errs <- nil
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	room.End("lesson over")

	return waitComplete(t, store, l.ID), start
}

// recordInto starts a real recorder writing into store, attached to a
// fresh set of rooms; stop closes it.
func recordInto(t testing.TB, store storage.Store) (rooms *sfu.Rooms, stop func()) {
	t.Helper()
	rec, err := recorder.New(recorder.Config{Store: store, SpoolDir: t.TempDir(), SegmentDuration: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rooms = sfu.NewRooms(nil)
	rec.Attach(rooms, true)
	return rooms, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := rec.Close(ctx); err != nil {
			t.Errorf("recorder close: %v", err)
		}
	}
}

// waitComplete waits (up to a minute) for the recorder to complete a
// lesson's manifest, and returns it.
func waitComplete(t testing.TB, store storage.Store, lesson string) vod.Manifest {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var m vod.Manifest
		if err := readJSON(store, vod.ManifestKey(lesson), &m); err == nil && m.Complete {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("recording of %s did not complete", lesson)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// play publishes one track as scripted and writes its media as RTP, one
// frame (or Opus packet) at its time, until the track's end.
func play(room *sfu.Room, tr *sfu.Track, s ScriptTrack, units [][]byte, start time.Time) error {
	info := tr.Info()
	var pk rtp.Packetizer
	var step time.Duration
	var ticks uint32
	if s.Kind == sfu.KindVideo {
		pk = rtp.NewPacketizer(1200, 102, rand.Uint32(), &codecs.H264Payloader{}, rtp.NewRandomSequencer(), 90000)
		step, ticks = time.Second/time.Duration(s.FPS), uint32(90000/s.FPS)
	} else {
		pk = rtp.NewPacketizer(1200, 111, rand.Uint32(), &codecs.OpusPayloader{}, rtp.NewRandomSequencer(), 48000)
		step, ticks = 20*time.Millisecond, 960
	}
	// Published a moment before its first frame, so the recorder (which
	// subscribes on the room's event) mostly gets that first keyframe:
	// this publisher cannot answer a keyframe request, and sends the next
	// a second later.
	time.Sleep(time.Until(start.Add(s.From - 300*time.Millisecond)))
	if err := room.Publish(tr); err != nil {
		return fmt.Errorf("publish %s: %w", info.ID, err)
	}
	muted := false
	for i, u := range units {
		at := time.Duration(i) * step
		if at >= s.To {
			break
		}
		if at < s.From {
			pk.SkipSamples(ticks) // the capture runs before it is published
			continue
		}
		time.Sleep(time.Until(start.Add(at)))
		want := false
		for _, m := range s.Mutes {
			want = want || (at >= m[0] && at < m[1])
		}
		if want != muted {
			if err := room.SetTrackMuted(info.ID, want); err != nil {
				return fmt.Errorf("mute %s: %w", info.ID, err)
			}
			muted = want
		}
		for _, p := range pk.Packetize(u, ticks) {
			tr.WriteRTP(0, p)
		}
	}
	time.Sleep(time.Until(start.Add(s.To)))
	room.Unpublish(info.ID)
	return nil
}

// encodeH264 encodes a lavfi picture source as a browser's encoder would
// send it: baseline H.264 without B-frames, one keyframe a second.
func encodeH264(t testing.TB, ffmpeg, lavfi, filter string, fps, seconds int) ([][]byte, error) {
	path := filepath.Join(t.TempDir(), "video.h264")
	args := []string{"-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", lavfi, "-t", fmt.Sprint(seconds)}
	if filter != "" {
		args = append(args, "-vf", filter)
	}
	args = append(args, "-r", fmt.Sprint(fps), "-c:v", "libx264", "-profile:v", "baseline", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-bf", "0",
		"-g", fmt.Sprint(fps), "-keyint_min", fmt.Sprint(fps), "-x264-params", "slices=1:repeat-headers=1",
		"-b:v", "1500k", "-f", "h264", path)
	if out, err := exec.Command(ffmpeg, args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("encode video: %v\n%s", err, out)
	}
	return testmedia.ReadH264AccessUnits(path)
}

// encodeOpus encodes a lavfi sound source as 20 ms Opus packets.
func encodeOpus(t testing.TB, ffmpeg, lavfi, filter string, seconds int) ([][]byte, error) {
	path := filepath.Join(t.TempDir(), "audio.ogg")
	args := []string{"-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", lavfi, "-t", fmt.Sprint(seconds)}
	if filter != "" {
		args = append(args, "-af", filter)
	}
	args = append(args, "-ac", "2", "-ar", "48000", "-c:a", "libopus", "-b:a", "48k", "-frame_duration", "20", "-page_duration", "20000", path)
	if out, err := exec.Command(ffmpeg, args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("encode audio: %v\n%s", err, out)
	}
	return oggPackets(path)
}
