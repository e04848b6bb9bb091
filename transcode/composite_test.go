package transcode

import (
	"context"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"podium/sfu"
	"podium/transcode/transcodetest"
	"podium/vod"
)

// Colours of the scripted lesson's pictures, as ffmpeg's color source
// makes them (mean Y, U, V of a yuv420p frame).
var lessonColours = map[string][3]float64{
	"red":    {81, 90, 240},  // the teacher camera's left half
	"blue":   {41, 240, 110}, // its right half
	"white":  {235, 128, 128},
	"yellow": {210, 16, 146}, // the screen share
	"lime":   {145, 54, 34},  // the classroom's camera
	"cyan":   {170, 166, 16}, // the ceiling camera
	"black":  {16, 128, 128}, // the slate
}

// colourOf names the lesson colour nearest to a region's mean.
func colourOf(f frameStats) string {
	best, bestD := "", math.Inf(1)
	for name, c := range lessonColours {
		if d := math.Hypot(math.Hypot(f.y-c[0], f.u-c[1]), f.v-c[2]); d < bestD {
			best, bestD = name, d
		}
	}
	return best
}

// toneLevels is the RMS level (dBFS) of a file's audio through a narrow
// band-pass at freq, per 100 ms window, by the window's start time.
func toneLevels(t *testing.T, ffmpeg, path string, freq int) map[float64]float64 {
	t.Helper()
	bp := fmt.Sprintf("bandpass=f=%d:width_type=h:w=40", freq)
	af := bp + "," + bp + ",asetnsamples=n=4800,astats=metadata=1:reset=1,ametadata=print:key=lavfi.astats.Overall.RMS_level"
	out, err := exec.Command(ffmpeg, "-v", "info", "-i", path, "-map", "0:a:0", "-ar", "48000", "-af", af, "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("measure %d Hz in %s: %v\n%s", freq, path, err, out)
	}
	levels := map[float64]float64{}
	at := -1.0
	for _, line := range strings.Split(string(out), "\n") {
		if i := strings.Index(line, "pts_time:"); i >= 0 {
			at, _ = strconv.ParseFloat(strings.Fields(line[i+len("pts_time:"):])[0], 64)
			continue
		}
		if i := strings.Index(line, "RMS_level="); i >= 0 && at >= 0 {
			v, err := strconv.ParseFloat(strings.TrimSpace(line[i+len("RMS_level="):]), 64)
			if err != nil {
				v = math.Inf(-1) // "-inf": digital silence
			}
			levels[math.Round(at*10)/10] = v
		}
	}
	return levels
}

// nearestPairs pairs each flash with its nearest beep: {flash, beep -
// flash} (a sound after its picture is positive).
func nearestPairs(flashes, beeps []float64) [][2]float64 {
	var out [][2]float64
	for _, f := range flashes {
		if len(beeps) == 0 {
			break
		}
		best := beeps[0]
		for _, b := range beeps {
			if math.Abs(b-f) < math.Abs(best-f) {
				best = b
			}
		}
		out = append(out, [2]float64{f, math.Round((best-f)*1000) / 1000})
	}
	return out
}

// recordedPairs are nearestPairs of a recorded camera's flashes and its
// microphone's beeps (heard through band), on the replay's clock: each
// recorded track placed where its first segment starts, after start.
func recordedPairs(t *testing.T, p *pipeline, m vod.Manifest, start time.Time, video, audio, band string) [][2]float64 {
	t.Helper()
	place := func(id string) (string, float64) {
		for _, tr := range m.Tracks {
			if tr.ID == id && len(tr.Segments) > 0 {
				path := filepath.Join(t.TempDir(), id+".mp4")
				if err := p.fetchTrack(context.Background(), tr, path); err != nil {
					t.Fatal(err)
				}
				return path, tr.Segments[0].Start.Sub(start).Seconds()
			}
		}
		t.Fatalf("no recorded track %s", id)
		return "", 0
	}
	vPath, vAt := place(video)
	aPath, aAt := place(audio)
	var flashes, beeps []float64
	for _, f := range whiteOnsets(pictureStats(t, p.cfg.FFmpeg, vPath, "")) {
		flashes = append(flashes, f+vAt)
	}
	for _, b := range soundOnsets(t, p.cfg.FFmpeg, aPath, band) {
		beeps = append(beeps, b+aAt)
	}
	return nearestPairs(flashes, beeps)
}

// peakLevel is the highest sample of a file's audio, in dBFS.
func peakLevel(t *testing.T, ffmpeg, path string) float64 {
	t.Helper()
	out, err := exec.Command(ffmpeg, "-v", "info", "-i", path, "-map", "0:a:0", "-af", "astats=measure_perchannel=none", "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("astats %s: %v\n%s", path, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if i := strings.Index(line, "Peak level dB:"); i >= 0 {
			v, _ := strconv.ParseFloat(strings.TrimSpace(line[i+len("Peak level dB:"):]), 64)
			return v
		}
	}
	t.Fatalf("astats printed no peak level:\n%s", out)
	return 0
}

// A lesson recorded live through the real recorder, with everything a
// classroom sees and hears change: the teacher's camera (red | blue,
// flashing white while the microphone beeps 1 kHz), a screen share
// (yellow) started, muted, unmuted and stopped, a classroom (lime camera,
// 400 Hz voice, both flashing and beeping 2.5 kHz on their own beat) and
// an RTSP ceiling camera (cyan 4:3 picture, 700 Hz microphone, recorded
// all along) each put on stage and taken off.
// The replay shows, stretch by stretch, the picture the layout rules
// promise (the teacher never twice), plays each voice exactly while it was
// heard, keeps every beep on its flash, lasts as long in audio as in
// video, and lists a chapter for every change.
func TestReplayShowsAndPlaysTheWholeLesson(t *testing.T) {
	ffmpeg, ffprobe := requireFF(t)
	store := minioStore(t)
	s := time.Second
	flash := transcodetest.FlashExpr(3*s, 200*time.Millisecond)      // the teacher's: 1, 4, 7, ... s
	classFlash := transcodetest.FlashExpr(2*s, 200*time.Millisecond) // the classroom's: 0.67, 2.67, 4.67, ... s
	lesson := transcodetest.Lesson{ID: "whole", Title: "Fractions", Seconds: 28,
		Tracks: []transcodetest.ScriptTrack{
			{Participant: "t1", Name: "Ms. Okafor", Role: sfu.RoleTeacher, Kind: sfu.KindVideo, Source: sfu.SourceCamera,
				Lavfi:  "color=c=red:s=640x360:r=30",
				Filter: "drawbox=x=320:y=0:w=320:h=360:c=blue:t=fill,drawbox=c=white:t=fill:enable='" + flash + "'"},
			{Participant: "t1", Name: "Ms. Okafor", Role: sfu.RoleTeacher, Kind: sfu.KindAudio, Source: sfu.SourceMicrophone,
				Lavfi: "aevalsrc=exprs='" + flash + "*0.5*sin(2*PI*1000*t)':s=48000"},
			{Participant: "t1", Name: "Ms. Okafor", Role: sfu.RoleTeacher, Kind: sfu.KindVideo, Source: sfu.SourceScreen,
				Lavfi: "color=c=yellow:s=640x360:r=10", FPS: 10, From: 3 * s, To: 19 * s, Mutes: [][2]time.Duration{{9 * s, 16 * s}}},
			{Participant: "c1", Name: "Hill School", Role: sfu.RoleClassroom, Kind: sfu.KindVideo, Source: sfu.SourceCamera,
				Lavfi: "color=c=0x00FF00:s=480x270:r=30", Filter: "drawbox=c=white:t=fill:enable='" + classFlash + "'"},
			{Participant: "c1", Name: "Hill School", Role: sfu.RoleClassroom, Kind: sfu.KindAudio, Source: sfu.SourceMicrophone,
				Lavfi: "aevalsrc=exprs='0.6*sin(2*PI*400*t)+" + classFlash + "*0.4*sin(2*PI*2500*t)':s=48000"},
			{Participant: "cam1", Name: "Ceiling camera", Role: sfu.RoleSource, Kind: sfu.KindVideo, Source: sfu.SourceCamera,
				Lavfi: "color=c=0x00FFFF:s=640x480:r=25", FPS: 25},
			{Participant: "cam1", Name: "Ceiling camera", Role: sfu.RoleSource, Kind: sfu.KindAudio, Source: sfu.SourceMicrophone,
				Lavfi: "aevalsrc=exprs='0.3*sin(2*PI*700*t)':s=48000"},
		},
		Stage: []transcodetest.StageChange{{At: 6 * s, Participant: "c1"}, {At: 13 * s}, {At: 21 * s, Participant: "cam1"}, {At: 25 * s}},
	}
	m, scriptStart := transcodetest.RecordLesson(t, store, lesson)
	for _, tr := range m.Tracks {
		t.Logf("recorded %s (%s %s of %s): %d segments", tr.ID, tr.Kind, tr.Source, tr.Participant, len(tr.Segments))
	}

	cfg := Config{FFmpeg: ffmpeg, FFprobe: ffprobe, TempDir: t.TempDir()}
	cfg.setDefaults()
	p := &pipeline{cfg: cfg, store: store}
	began := time.Now()
	a, err := p.buildLesson(context.Background(), lesson.ID, func(string, float64) {})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	t.Logf("transcode took %.1f s for a %.1f s lesson (%.2fx real time; a figure, not a benchmark: it depends on the load)",
		took.Seconds(), a.Duration, a.Duration/took.Seconds())
	if a.Layout != "composite" {
		t.Errorf("layout %q, want composite", a.Layout)
	}
	dir := download(t, store, vod.LessonBase(lesson.ID))
	pl := filepath.Join(dir, "hls", "360p", "index.m3u8")
	// The script's clock in the replay, whose t=0 is the first recorded
	// sample.
	lead := scriptStart.Sub(a.StartedAt).Seconds()
	t.Logf("the script's t=0 is at %.3f s in the replay", lead)
	at := func(d time.Duration) float64 { return d.Seconds() + lead }

	// Durations: audio as long as video; the replay as long as the lesson.
	vEnd, aEnd := transcodetest.StreamEnd(t, pl, "v:0"), transcodetest.StreamEnd(t, pl, "a:0")
	var recorded time.Time // the end of the last recorded media
	for _, tr := range m.Tracks {
		if n := len(tr.Segments); n > 0 {
			if e := tr.Segments[n-1].Start.Add(tr.Segments[n-1].Duration); e.After(recorded) {
				recorded = e
			}
		}
	}
	content := recorded.Sub(a.StartedAt).Seconds()
	t.Logf("replay %.3f s: video ends at %.3f s, audio at %.3f s (A-V %+.0f ms); the recorded media spans %.3f s (replay %+.0f ms)",
		a.Duration, vEnd, aEnd, (aEnd-vEnd)*1000, content, (a.Duration-content)*1000)
	if math.Abs(aEnd-vEnd) > 0.1 {
		t.Errorf("video ends at %.3f s, audio at %.3f s: they must agree within 0.1 s", vEnd, aEnd)
	}

	// The picture, region by region (640x360 canvas: the teacher's
	// picture-in-picture at 468,258 160x90, the stage's above it at
	// 468,156). Each stretch is checked away from its switches (a picture
	// that starts waits up to a second for a keyframe: the fixture's
	// publishers cannot answer a keyframe request) and the teacher's
	// flashes.
	regions := map[string]string{
		"main": "200:140:100:40", // top left of the main picture
		"pip":  "60:70:478:268",  // left half of the teacher's picture-in-picture
		"pip2": "100:60:498:171", // the stage's picture-in-picture
	}
	stats := map[string][]frameStats{}
	for name, crop := range regions {
		stats[name] = pictureStats(t, ffmpeg, pl, crop)
	}
	type stretch struct {
		from, to       time.Duration
		main, pip, pp2 string
		what           string
	}
	stretches := []stretch{
		{0, 3 * s, "red", "blue", "", "the teacher alone"},
		{3 * s, 6 * s, "yellow", "red", "", "the screen, the teacher in the corner"},
		{6 * s, 9 * s, "yellow", "red", "lime", "the screen, the teacher and the classroom on stage in the corner"},
		{9 * s, 13 * s, "lime", "red", "", "the classroom on stage, the teacher in the corner (the screen muted)"},
		{13 * s, 16 * s, "red", "blue", "", "the teacher alone, once (the screen muted)"},
		{16 * s, 19 * s, "yellow", "red", "", "the screen again (unmuted)"},
		{19 * s, 21 * s, "red", "blue", "", "the teacher alone (the screen stopped)"},
		{21 * s, 25 * s, "cyan", "red", "", "the ceiling camera on stage, the teacher in the corner"},
		{25 * s, 28 * s, "red", "blue", "", "the teacher alone"},
	}
	flashing := func(ts float64) bool {
		for f := 1.0; f < 30; f += 3 {
			if ts > at(time.Duration(f*float64(s)))-0.1 && ts < at(time.Duration(f*float64(s)))+0.5 {
				return true
			}
		}
		for f := 6 + 2.0/3; f < 13; f += 2 { // the classroom's, while it is seen
			if ts > at(time.Duration(f*float64(s)))-0.1 && ts < at(time.Duration(f*float64(s)))+0.5 {
				return true
			}
		}
		return false
	}
	for _, st := range stretches {
		from, to := at(st.from)+1.2, at(st.to)-0.2
		checked, wrong := 0, map[string]int{}
		for i, f := range stats["main"] {
			if f.t < from || f.t >= to || flashing(f.t) || i >= len(stats["pip"]) || i >= len(stats["pip2"]) {
				continue
			}
			checked++
			got := map[string]string{"main": colourOf(f), "pip": colourOf(stats["pip"][i]), "pip2": colourOf(stats["pip2"][i])}
			want := map[string]string{"main": st.main, "pip": st.pip, "pip2": st.pp2}
			for r, w := range want {
				if w != "" && got[r] != w {
					wrong[fmt.Sprintf("%s %s, want %s", r, got[r], w)]++
				}
			}
		}
		t.Logf("%4.1f-%4.1f s, %s: %d frames checked, wrong: %v", from, to, st.what, checked, wrong)
		if checked < 10 {
			t.Errorf("%4.1f-%4.1f s: only %d frames to check", from, to, checked)
		}
		if len(wrong) > 0 {
			t.Errorf("%4.1f-%4.1f s should show %s: %v", from, to, st.what, wrong)
		}
	}
	// The lime classroom is seen only while it is on stage.
	for _, f := range append(stats["main"], stats["pip2"]...) {
		if colourOf(f) == "lime" && (f.t < at(6*s) || f.t > at(13*s)+0.1) {
			t.Errorf("the classroom is seen at %.2f s, off stage", f.t)
			break
		}
	}

	// The voices: the classroom's (400 Hz) only while on stage, the ceiling
	// camera's (700 Hz) only while it is on stage though recorded all along.
	for _, v := range []struct {
		freq     int
		from, to time.Duration
		who      string
	}{{400, 6 * s, 13 * s, "the classroom"}, {700, 21 * s, 25 * s, "the ceiling camera"}} {
		levels := toneLevels(t, ffmpeg, pl, v.freq)
		var loud, quiet, wrong []string
		for w, db := range levels {
			in := w >= at(v.from)+0.3 && w+0.1 <= at(v.to)-0.3
			out := w+0.1 <= at(v.from)-0.3 || w >= at(v.to)+0.3
			switch {
			case in && db < -25:
				wrong = append(wrong, fmt.Sprintf("%.1f s: %.0f dB", w, db))
			case out && db > -40:
				wrong = append(wrong, fmt.Sprintf("%.1f s: %.0f dB", w, db))
			case in:
				loud = append(loud, fmt.Sprintf("%.0f", db))
			case out:
				quiet = append(quiet, "")
			}
		}
		sort.Strings(wrong)
		t.Logf("%s (%d Hz): %d windows heard on stage, %d silent off it", v.who, v.freq, len(loud), len(quiet))
		if len(loud) < 20 || len(quiet) < 50 || len(wrong) > 0 {
			t.Errorf("%s (%d Hz) must be heard exactly while on stage: %d loud windows, %d quiet, wrong: %v", v.who, v.freq, len(loud), len(quiet), wrong)
		}
	}
	if peak := peakLevel(t, ffmpeg, pl); peak > 0 {
		t.Errorf("the mix clips: peak %.2f dBFS", peak)
	} else {
		t.Logf("mix peak %.2f dBFS (voices of amplitude 0.5 and 0.6+0.4 summed)", peak)
	}

	// A/V offset. How far each beep is from its flash in the recording
	// depends on when the publishers' packets reached the recorder (under
	// load, a late first video packet puts a whole track late) and is
	// logged; the replay must keep it, give or take a frame: the teacher
	// (1 kHz beeps) seen in the corner where it is in every layout, the
	// classroom (2.5 kHz beeps) on stage, in the stage's corner and then as
	// the main picture.
	teacherBand := "bandpass=f=1000:width_type=h:w=100,bandpass=f=1000:width_type=h:w=100"
	classBand := "bandpass=f=2500:width_type=h:w=100,bandpass=f=2500:width_type=h:w=100"
	var classFlashes []float64
	white := false
	for i, f := range stats["main"] {
		now := f.t >= at(6*s) && f.t < at(13*s) && i < len(stats["pip2"]) &&
			(colourOf(f) == "white" || colourOf(stats["pip2"][i]) == "white")
		if now && !white {
			classFlashes = append(classFlashes, f.t)
		}
		white = now
	}
	for _, c := range []struct {
		who          string
		video, audio string
		flashes      []float64
		band         string
		pairs        int
	}{
		{"the teacher", "teacher-camera", "teacher-microphone", whiteOnsets(stats["pip"]), teacherBand, 9},
		// Its beep at 6.67 s comes before its first picture (the keyframe
		// at 7 s): three pairs.
		{"the classroom", "c1-camera", "c1-microphone", classFlashes, classBand, 3},
	} {
		recorded := recordedPairs(t, p, m, a.StartedAt, c.video, c.audio, c.band)
		replayed := nearestPairs(c.flashes, soundOnsets(t, ffmpeg, pl, c.band))
		worst, added, matched := 0.0, 0.0, 0
		for _, r := range replayed {
			for _, q := range recorded {
				if math.Abs(r[0]-q[0]) < 0.25 {
					matched++
					if math.Abs(r[1]) > math.Abs(worst) {
						worst = r[1]
					}
					if d := r[1] - q[1]; math.Abs(d) > math.Abs(added) {
						added = d
					}
					break
				}
			}
		}
		t.Logf("%s: flash/beep pairs recorded %v, replayed %v; worst A/V offset %+.0f ms (audio after video is positive), %+.0f ms of it added by the transcode",
			c.who, recorded, replayed, worst*1000, added*1000)
		if matched != c.pairs || math.Abs(added) > 0.04 {
			t.Errorf("%s: %d flash/beep pairs found again in the replay (want %d), %+.0f ms further apart than recorded (at most a frame)",
				c.who, matched, c.pairs, added*1000)
		}
	}

	// Chapters: every change of screen and stage, as the replay shows it.
	want := []struct {
		at    time.Duration
		title string
	}{
		{3 * s, "Screen share: Ms. Okafor"}, {6 * s, "On stage: Hill School"}, {9 * s, "Screen share ended"},
		{13 * s, "Back to the teacher"}, {16 * s, "Screen share: Ms. Okafor"}, {19 * s, "Screen share ended"},
		{21 * s, "On stage: Ceiling camera"}, {25 * s, "Back to the teacher"},
	}
	var got []string
	for _, c := range a.Chapters {
		got = append(got, fmt.Sprintf("%.2f %s", c.Time, c.Title))
	}
	t.Logf("chapters: %q", got)
	if len(a.Chapters) != len(want) {
		t.Fatalf("%d chapters, want %d", len(a.Chapters), len(want))
	}
	for i, w := range want {
		c := a.Chapters[i]
		// A picture appears when its first keyframe is recorded: up to a
		// second after the switch.
		if c.Title != w.title || c.Time < at(w.at)-0.3 || c.Time > at(w.at)+1.2 {
			t.Errorf("chapter %d is %.2f %q, want %q at %.2f", i, c.Time, c.Title, w.title, at(w.at))
		}
	}
}
