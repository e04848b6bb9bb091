package transcode

import (
	"podium/vod"

	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// timeline is where the chosen recorded tracks sit on the asset's clock.
type timeline struct {
	start    time.Time // wall clock of t=0
	duration float64   // seconds
	camera   *placedTrack
	screen   *placedTrack
	audio    *placedTrack
	// screenOn lists the [from, to) seconds during which the teacher's
	// screen is the main picture (camera as picture-in-picture).
	screenOn [][2]float64
}

type placedTrack struct {
	track  vod.ManifestTrack
	offset float64 // seconds after t=0 of its first sample
	span   float64 // seconds from its first sample to the end of its last
}

// pickTracks chooses what the micro-lecture shows: the teacher's camera,
// the teacher's screen and the teacher's microphone, falling back to any
// track of the right kind when the teacher's is missing.
func pickTracks(m *vod.Manifest) (camera, screen, audio *vod.ManifestTrack) {
	isScreen := func(t *vod.ManifestTrack) bool { return t.Source == "screen" }
	pick := func(ok func(t *vod.ManifestTrack) bool) *vod.ManifestTrack {
		var fallback *vod.ManifestTrack
		for i := range m.Tracks {
			t := &m.Tracks[i]
			if len(t.Segments) == 0 || !ok(t) {
				continue
			}
			if t.Role == "teacher" {
				return t
			}
			if fallback == nil {
				fallback = t
			}
		}
		return fallback
	}
	camera = pick(func(t *vod.ManifestTrack) bool { return t.Kind == "video" && !isScreen(t) })
	screen = pick(func(t *vod.ManifestTrack) bool { return t.Kind == "video" && isScreen(t) })
	audio = pick(func(t *vod.ManifestTrack) bool { return t.Kind == "audio" })
	return camera, screen, audio
}

// planTimeline places the chosen tracks and the screen-share switches on one
// clock starting at the earliest first sample.
func planTimeline(m *vod.Manifest) (*timeline, error) {
	cam, scr, aud := pickTracks(m)
	if cam == nil && scr == nil {
		return nil, permanent(fmt.Errorf("recording has no video track with segments"))
	}
	tl := &timeline{}
	chosen := []*vod.ManifestTrack{cam, scr, aud}
	for _, t := range chosen {
		if t == nil {
			continue
		}
		first := t.Segments[0].Start
		if !first.IsZero() && (tl.start.IsZero() || first.Before(tl.start)) {
			tl.start = first
		}
	}
	if tl.start.IsZero() {
		tl.start = m.StartedAt
	}
	place := func(t *vod.ManifestTrack) *placedTrack {
		if t == nil {
			return nil
		}
		segs := append([]vod.ManifestSegment(nil), t.Segments...)
		sort.Slice(segs, func(i, j int) bool { return segs[i].Seq < segs[j].Seq })
		p := &placedTrack{track: *t}
		p.track.Segments = segs
		first, last := segs[0], segs[len(segs)-1]
		if !first.Start.IsZero() && !tl.start.IsZero() {
			p.offset = first.Start.Sub(tl.start).Seconds()
			p.span = last.Start.Add(last.Duration).Sub(first.Start).Seconds()
		}
		if p.span <= 0 {
			for _, s := range segs {
				p.span += s.Duration.Seconds()
			}
		}
		if end := p.offset + p.span; end > tl.duration {
			tl.duration = end
		}
		return p
	}
	tl.camera, tl.screen, tl.audio = place(cam), place(scr), place(aud)
	if tl.duration <= 0 {
		return nil, permanent(fmt.Errorf("recording has no media duration"))
	}
	if tl.screen != nil {
		tl.screenOn = screenIntervals(m.Events, tl.start, tl.duration)
		if len(tl.screenOn) == 0 {
			tl.screenOn = [][2]float64{{tl.screen.offset, tl.screen.offset + tl.screen.span}}
		}
	}
	return tl, nil
}

// screenIntervals turns screenStart/screenStop events into [from, to)
// intervals in seconds after start, clipped to [0, duration].
func screenIntervals(events []vod.ManifestEvent, start time.Time, duration float64) [][2]float64 {
	evs := append([]vod.ManifestEvent(nil), events...)
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time.Before(evs[j].Time) })
	var out [][2]float64
	on, from := false, 0.0
	for _, e := range evs {
		t := math.Max(0, math.Min(duration, e.Time.Sub(start).Seconds()))
		switch e.Type {
		case "screenStart":
			if !on {
				on, from = true, t
			}
		case "screenStop":
			if on {
				on = false
				if t > from {
					out = append(out, [2]float64{from, t})
				}
			}
		}
	}
	if on && duration > from {
		out = append(out, [2]float64{from, duration})
	}
	return out
}

// compositeFilter builds the filtergraph that draws the micro-lecture
// picture on a w x h canvas and labels its outputs [v] and [a]. camIn,
// screenIn and audioIn are ffmpeg input indexes (-1 when absent); every
// input is expected to be shifted to its place with -itsoffset.
//
// The audio keeps the recording's timeline: a recorded Opus track has
// holes (DTX sends one packet per 400 ms in silence, a muted or
// reconnecting publisher sends nothing) and may overlap itself (packets
// the network held back arrive in a burst), so its samples do not add up
// to its timestamps. aresample's async mode puts every sample at its
// timestamp, filling holes with silence and dropping overlaps, and pads
// from t=0; anything that re-times audio by counting samples (adelay,
// asetpts=N/SR/TB) would pull every sound after a hole earlier, and let
// an overlapping recording run longer than its video.
func compositeFilter(w, h, fps int, duration float64, camIn, screenIn, audioIn int, screenOn [][2]float64) string {
	var f []string
	fit := func(in int, out string) string {
		return fmt.Sprintf("[%d:v]scale=%d:%d:force_original_aspect_ratio=decrease,pad=%d:%d:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p%s", in, w, h, w, h, out)
	}
	f = append(f, fmt.Sprintf("color=c=black:s=%dx%d:r=%d:d=%.3f,format=yuv420p[base0]", w, h, fps, duration))
	cur := "base0"
	enable := ""
	if len(screenOn) > 0 {
		parts := make([]string, len(screenOn))
		for i, iv := range screenOn {
			parts[i] = fmt.Sprintf("between(t,%.3f,%.3f)", iv[0], iv[1])
		}
		enable = ":enable='" + strings.Join(parts, "+") + "'"
	}
	pip := camIn >= 0 && screenIn >= 0
	if camIn >= 0 {
		if pip {
			pw, ph := even(w/4), even(h/4)
			f = append(f, fit(camIn, ",split=2[cam][campip0]"))
			f = append(f, fmt.Sprintf("[campip0]scale=%d:%d,setsar=1[campip]", pw, ph))
		} else {
			f = append(f, fit(camIn, "[cam]"))
		}
		f = append(f, "["+cur+"][cam]overlay=eof_action=pass[base1]")
		cur = "base1"
	}
	if screenIn >= 0 {
		f = append(f, fit(screenIn, "[scr]"))
		f = append(f, "["+cur+"][scr]overlay=eof_action=pass"+enable+"[base2]")
		cur = "base2"
	}
	if pip {
		margin := even(h / 30)
		f = append(f, fmt.Sprintf("[%s][campip]overlay=W-w-%d:H-h-%d:eof_action=pass%s[base3]", cur, margin, margin, enable))
		cur = "base3"
	}
	f = append(f, "["+cur+"]null[v]")
	if audioIn >= 0 {
		f = append(f, fmt.Sprintf("[%d:a]aresample=48000:async=1:min_hard_comp=0.02:first_pts=0,aformat=sample_fmts=fltp:channel_layouts=stereo,apad,atrim=end=%.3f[a]",
			audioIn, duration))
	} else {
		f = append(f, fmt.Sprintf("anullsrc=r=48000:cl=stereo,atrim=end=%.3f[a]", duration))
	}
	return strings.Join(f, ";")
}

func even(n int) int { return n &^ 1 }
