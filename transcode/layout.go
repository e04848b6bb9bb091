package transcode

import (
	"podium/vod"

	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// The replay is what a classroom saw and heard during the lesson (see
// docs/ARCHITECTURE.md, "What the composite shows"):
//
//   - the main picture is the shared screen while it is shown, else
//     whoever is on stage, else the teacher's camera;
//   - the teacher's camera is picture-in-picture in the bottom-right
//     corner whenever something else is the main picture;
//   - whoever is on stage while the screen is the main picture is a
//     second picture-in-picture just above the teacher's;
//   - a picture is shown only where its track has pictures: a hole of
//     maxFreeze or more (muted, unpublished, off stage, reconnecting) shows
//     the other sources or the black slate, never its last frame;
//   - every voice a classroom heard is mixed: the teacher's microphone all
//     along, the microphone of whoever is on stage (a classroom or an RTSP
//     camera) while on stage.

// maxFreeze is the longest hole between two pictures of a track that the
// composite bridges by holding the last one (a static screen share sends
// about a picture a second); a longer hole hides the track.
const maxFreeze = 2.0

// span is a stretch [from, to) of the lesson clock, in seconds.
type span [2]float64

// spans is a set of stretches; normalized ones are sorted and disjoint.
type spans []span

// normalized sorts s and merges what overlaps or touches, dropping empty
// stretches.
func (s spans) normalized() spans {
	in := make(spans, 0, len(s))
	for _, x := range s {
		if x[1] > x[0] {
			in = append(in, x)
		}
	}
	sort.Slice(in, func(i, j int) bool { return in[i][0] < in[j][0] })
	var out spans
	for _, x := range in {
		if n := len(out); n > 0 && x[0] <= out[n-1][1] {
			out[n-1][1] = max(out[n-1][1], x[1])
			continue
		}
		out = append(out, x)
	}
	return out
}

// intersect is where both normalized sets are.
func (s spans) intersect(o spans) spans {
	var out spans
	for i, j := 0, 0; i < len(s) && j < len(o); {
		from, to := max(s[i][0], o[j][0]), min(s[i][1], o[j][1])
		if to > from {
			out = append(out, span{from, to})
		}
		if s[i][1] < o[j][1] {
			i++
		} else {
			j++
		}
	}
	return out
}

func (s spans) contains(t float64) bool {
	for _, x := range s {
		if t >= x[0] && t < x[1] {
			return true
		}
	}
	return false
}

// expr is an ffmpeg expression of t that is 1 inside s and 0 outside
// (half-open stretches, so two pictures never both show at a switch).
func (s spans) expr() string {
	if len(s) == 0 {
		return "0"
	}
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = fmt.Sprintf("gte(t,%.3f)*lt(t,%.3f)", x[0], x[1])
	}
	return strings.Join(parts, "+")
}

// timeline is where the chosen recorded tracks sit on the asset's clock.
type timeline struct {
	start    time.Time // wall clock of t=0
	duration float64   // seconds
	teacher  *placedTrack
	screen   *placedTrack
	// stage has the picture of every participant ever put on stage, each
	// with its stage stretches in when.
	stage []*placedTrack
	// voices are the microphones mixed: the teacher's (when nil: all
	// along) and those of participants on stage (when: on stage).
	voices []*placedTrack
}

type placedTrack struct {
	track  vod.ManifestTrack
	offset float64 // seconds after t=0 of its first sample
	span   float64 // seconds from its first sample to the end of its last
	// when is where the lesson's events say the track is seen or heard;
	// nil means wherever it has media.
	when spans
	// name is who the track belongs to, for chapters.
	name string
}

// videoTracks are the timeline's pictures, teacher first.
func (tl *timeline) videoTracks() []*placedTrack {
	var out []*placedTrack
	for _, p := range append([]*placedTrack{tl.teacher, tl.screen}, tl.stage...) {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// stageStretch is one participant's time on stage, in seconds.
type stageStretch struct {
	participant, name string
	at                span
}

// stageStretches reads who was on stage when from the "stage" events (each
// names who is on stage from then on; "" nobody), clipped to
// [0, duration].
func stageStretches(events []vod.ManifestEvent, start time.Time, duration float64) []stageStretch {
	evs := append([]vod.ManifestEvent(nil), events...)
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time.Before(evs[j].Time) })
	var out []stageStretch
	var cur *stageStretch
	for _, e := range evs {
		if e.Type != "stage" {
			continue
		}
		t := min(duration, max(0, e.Time.Sub(start).Seconds()))
		if cur != nil && cur.participant == e.ParticipantID {
			continue
		}
		if cur != nil {
			cur.at[1] = t
			out = append(out, *cur)
			cur = nil
		}
		if e.ParticipantID != "" {
			cur = &stageStretch{participant: e.ParticipantID, name: e.Participant, at: span{t, duration}}
		}
	}
	if cur != nil {
		out = append(out, *cur)
	}
	return out
}

// chooseTracks picks what the replay shows and plays: the teacher's camera
// and screen (falling back to any camera or screen when the teacher's is
// missing), the picture of everyone put on stage (camera, else whiteboard,
// else any picture), the teacher's microphones and the microphones of
// everyone put on stage (any microphone when there is none of those).
func chooseTracks(m *vod.Manifest, stage []stageStretch) (teacher, screen *vod.ManifestTrack, staged map[string]*vod.ManifestTrack, voices []*vod.ManifestTrack) {
	onStage := map[string]bool{}
	for _, s := range stage {
		onStage[s.participant] = true
	}
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
	teacher = pick(func(t *vod.ManifestTrack) bool {
		return t.Kind == "video" && !isScreen(t) && (t.Role == "teacher" || !onStage[t.ParticipantID])
	})
	screen = pick(func(t *vod.ManifestTrack) bool { return t.Kind == "video" && isScreen(t) })
	rank := func(t *vod.ManifestTrack) int {
		switch t.Source {
		case "camera":
			return 0
		case "whiteboard":
			return 1
		}
		return 2
	}
	staged = map[string]*vod.ManifestTrack{}
	for i := range m.Tracks {
		t := &m.Tracks[i]
		if len(t.Segments) == 0 || !onStage[t.ParticipantID] || t == teacher || t == screen {
			continue
		}
		switch t.Kind {
		case "video":
			if cur := staged[t.ParticipantID]; !isScreen(t) && (cur == nil || rank(t) < rank(cur)) {
				staged[t.ParticipantID] = t
			}
		case "audio":
			voices = append(voices, t)
		}
	}
	var teachers []*vod.ManifestTrack
	for i := range m.Tracks {
		if t := &m.Tracks[i]; len(t.Segments) > 0 && t.Kind == "audio" && t.Role == "teacher" {
			teachers = append(teachers, t)
		}
	}
	voices = append(teachers, voices...)
	if len(voices) == 0 {
		if a := pick(func(t *vod.ManifestTrack) bool { return t.Kind == "audio" }); a != nil {
			voices = append(voices, a)
		}
	}
	return teacher, screen, staged, voices
}

// planTimeline places the chosen tracks on one clock starting at the
// earliest first sample, and marks when the events say each is seen or
// heard.
func planTimeline(m *vod.Manifest) (*timeline, error) {
	// The clock's start depends on the tracks chosen and the stage on
	// the clock: choose with the stage read on the manifest's clock
	// first (only who was on stage matters for the choice).
	roughStage := stageStretches(m.Events, m.StartedAt, m.Duration().Seconds()+1)
	teacher, screen, staged, voices := chooseTracks(m, roughStage)
	if teacher == nil && screen == nil && len(staged) == 0 {
		return nil, permanent(fmt.Errorf("recording has no video track with segments"))
	}
	chosen := append([]*vod.ManifestTrack{teacher, screen}, voices...)
	for _, t := range staged {
		chosen = append(chosen, t)
	}
	tl := &timeline{}
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
		p := &placedTrack{track: *t, name: t.Participant}
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
	tl.teacher, tl.screen = place(teacher), place(screen)
	placedVoices := make([]*placedTrack, len(voices))
	for i, v := range voices {
		placedVoices[i] = place(v)
	}
	ids := make([]string, 0, len(staged))
	for id := range staged {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	stagedPlaced := map[string]*placedTrack{}
	for _, id := range ids {
		stagedPlaced[id] = place(staged[id])
	}
	if tl.duration <= 0 {
		return nil, permanent(fmt.Errorf("recording has no media duration"))
	}

	// Now on the clock: who was on stage when.
	onStage := map[string]spans{}
	names := map[string]string{}
	for _, s := range stageStretches(m.Events, tl.start, tl.duration) {
		onStage[s.participant] = append(onStage[s.participant], s.at)
		if s.name != "" {
			names[s.participant] = s.name
		}
	}
	// A stage that lasted no time leaves when empty but not nil (nil
	// would mean "whenever it has media").
	stageOf := func(id string) spans { return append(spans{}, onStage[id].normalized()...) }
	for _, id := range ids {
		p := stagedPlaced[id]
		p.when = stageOf(id)
		if names[id] != "" {
			p.name = names[id]
		}
		tl.stage = append(tl.stage, p)
	}
	for _, v := range placedVoices {
		if _, staged := onStage[v.track.ParticipantID]; staged && v.track.Role != "teacher" {
			v.when = stageOf(v.track.ParticipantID)
		}
		tl.voices = append(tl.voices, v)
	}
	return tl, nil
}

// Places on the canvas.
type slot int

const (
	slotMain slot = iota // the whole canvas
	slotPiP              // bottom-right corner: the teacher
	slotPiP2             // above slotPiP: the stage beside a screen
)

// layer is one picture drawn in one slot while on.
type layer struct {
	track *placedTrack
	slot  slot
	on    spans
}

// chapter is a change in what the replay shows.
type chapter = vod.Chapter

// compose decides, for every stretch of the lesson, which picture goes in
// which slot (the rules at the top of this file), from when each picture
// is shown (shown[track], normalized). It returns the layers, main slot
// first, and a chapter for every change of screen share or stage.
func compose(tl *timeline, shown map[*placedTrack]spans) ([]layer, []chapter) {
	cuts := []float64{0, tl.duration}
	for _, s := range shown {
		for _, x := range s {
			cuts = append(cuts, x[0], x[1])
		}
	}
	sort.Float64s(cuts)
	on := func(p *placedTrack, t float64) bool { return p != nil && shown[p].contains(t) }
	type key struct {
		p *placedTrack
		s slot
	}
	places := map[key]spans{}
	var chapters []chapter
	screenWas := false
	var stageWas *placedTrack
	for i := 0; i+1 < len(cuts); i++ {
		a, b := cuts[i], min(cuts[i+1], tl.duration)
		if b <= a {
			continue
		}
		mid := (a + b) / 2
		teacher, screen := on(tl.teacher, mid), on(tl.screen, mid)
		var stage *placedTrack
		for _, p := range tl.stage {
			if on(p, mid) {
				stage = p
				break
			}
		}
		var main *placedTrack
		switch {
		case screen:
			main = tl.screen
		case stage != nil:
			main = stage
		case teacher:
			main = tl.teacher
		}
		if main != nil {
			places[key{main, slotMain}] = append(places[key{main, slotMain}], span{a, b})
		}
		if teacher && main != tl.teacher {
			places[key{tl.teacher, slotPiP}] = append(places[key{tl.teacher, slotPiP}], span{a, b})
		}
		if stage != nil && main != stage {
			places[key{stage, slotPiP2}] = append(places[key{stage, slotPiP2}], span{a, b})
		}

		at := math.Round(a*1000) / 1000
		if screen && !screenWas {
			title := "Screen share"
			if n := tl.screen.name; n != "" {
				title += ": " + n
			}
			chapters = append(chapters, chapter{Time: at, Type: "screenStart", Title: title})
		}
		if !screen && screenWas {
			chapters = append(chapters, chapter{Time: at, Type: "screenStop", Title: "Screen share ended"})
		}
		if stage != stageWas {
			switch {
			case stage != nil:
				chapters = append(chapters, chapter{Time: at, Type: "stage", Title: "On stage: " + stage.name})
			default:
				chapters = append(chapters, chapter{Time: at, Type: "stage", Title: "Back to the teacher"})
			}
		}
		screenWas, stageWas = screen, stage
	}
	var layers []layer
	for _, s := range []slot{slotMain, slotPiP, slotPiP2} {
		for _, p := range tl.videoTracks() {
			if sp := places[key{p, s}]; len(sp) > 0 {
				layers = append(layers, layer{track: p, slot: s, on: sp.normalized()})
			}
		}
	}
	return layers, chapters
}

// voice is one microphone in the mix: ffmpeg input in, placed at offset,
// heard during when (nil: all along). pieces are where it has sound, from
// its first packet (nil: one piece).
type voice struct {
	in     int
	offset float64
	when   spans
	pieces spans
}

// compositeFilter builds the filtergraph that draws the replay on a w x h
// canvas and mixes its voices, labelling its outputs [v] and [a]. Each
// layer's track is the ffmpeg input inputs[track], shifted to its place
// with -itsoffset.
//
// Each voice keeps the recording's timeline: a recorded Opus track has
// holes (DTX sends one packet per 400 ms in silence, a muted or
// reconnecting publisher sends nothing) and may overlap itself (packets
// the network held back arrive in a burst), so its samples do not add up
// to its timestamps. aresample's async mode puts every sample at its
// timestamp, filling holes with silence and dropping overlaps; anything
// that re-times audio by counting samples (asetpts=N/SR/TB) would pull
// every sound after a hole earlier, and let an overlapping recording run
// longer than its video. A piece's place on the lesson clock is then a
// lead of silence that adelay makes as the mix goes (padding it at once,
// as aresample's first_pts does, holds the whole lead in memory: 450 MB
// for a classroom first on stage 20 minutes in). The pieces are summed
// (amix normalize=0: a voice is as loud alone as in the mix) and a
// limiter keeps the sum from clipping.
func compositeFilter(w, h, fps int, duration float64, layers []layer, inputs map[*placedTrack]int, voices []voice) string {
	var f []string
	f = append(f, fmt.Sprintf("color=c=black:s=%dx%d:r=%d:d=%.3f,format=yuv420p[base0]", w, h, fps, duration))
	pw, ph, margin := even(w/4), even(h/4), even(h/30)
	box := func(s slot) (x, y, bw, bh int) {
		switch s {
		case slotPiP:
			return w - pw - margin, h - ph - margin, pw, ph
		case slotPiP2:
			return w - pw - margin, h - 2*ph - 2*margin, pw, ph
		}
		return 0, 0, w, h
	}
	// Each input is decoded once and split into as many pictures as it
	// has layers.
	uses := map[int]int{}
	wanted := map[int]spans{}
	for _, l := range layers {
		in := inputs[l.track]
		uses[in]++
		for _, x := range l.on {
			wanted[in] = append(wanted[in], span{max(0, x[0]-maxFreeze), x[1]})
		}
	}
	// Only the pictures an input may show are scaled: from maxFreeze
	// before each stretch one of its layers shows (the picture held at
	// its start) to its end, selected before the split so that no branch
	// reads ahead of another.
	keep := func(in int) string {
		w := wanted[in].normalized()
		if len(w) == 1 && w[0][0] <= 0 && w[0][1] >= duration {
			return ""
		}
		return fmt.Sprintf("select='%s',", w.expr())
	}
	split := map[int]int{}
	label := func(in int) string {
		if uses[in] == 1 {
			return fmt.Sprintf("[%d:v]%s", in, keep(in))
		}
		if _, done := split[in]; !done {
			outs := ""
			for k := 0; k < uses[in]; k++ {
				outs += fmt.Sprintf("[in%d_%d]", in, k)
			}
			f = append(f, fmt.Sprintf("[%d:v]%ssplit=%d%s", in, keep(in), uses[in], outs))
		}
		k := split[in]
		split[in]++
		return fmt.Sprintf("[in%d_%d]", in, k)
	}
	cur := "[base0]"
	for i, l := range layers {
		in := inputs[l.track]
		x, y, bw, bh := box(l.slot)
		f = append(f, fmt.Sprintf("%sscale=%d:%d:force_original_aspect_ratio=decrease:force_divisible_by=2,pad=%d:%d:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p[l%d]",
			label(in), bw, bh, bw, bh, i))
		next := fmt.Sprintf("[base%d]", i+1)
		f = append(f, fmt.Sprintf("%s[l%d]overlay=%d:%d:eof_action=pass:enable='%s'%s", cur, i, x, y, l.on.expr(), next))
		cur = next
	}
	f = append(f, cur+"null[v]")

	if len(voices) == 0 {
		f = append(f, fmt.Sprintf("anullsrc=r=48000:cl=stereo,atrim=end=%.3f[a]", duration))
		return strings.Join(f, ";")
	}
	mix, n := "", 0
	for _, v := range voices {
		// A voice is mixed piece by piece, a piece ending at a hole of
		// maxFreeze or more (a microphone muted, a classroom off stage):
		// adelay makes the silence between, as the mix goes, where
		// aresample would hold all of it in memory at once.
		pieces := v.pieces
		if len(pieces) == 0 {
			pieces = spans{{0, duration}}
		}
		src := fmt.Sprintf("[%d:a]", v.in)
		if len(pieces) > 1 {
			outs := ""
			for k := range pieces {
				outs += fmt.Sprintf("[in%d_%d]", v.in, k)
			}
			f = append(f, fmt.Sprintf("%sasplit=%d%s", src, len(pieces), outs))
		}
		for k, pc := range pieces {
			chain := src
			if len(pieces) > 1 {
				chain = fmt.Sprintf("[in%d_%d]atrim=start=%.6f:end=%.6f,", v.in, k, pc[0], pc[1])
			}
			chain += fmt.Sprintf("aresample=48000:async=1:min_hard_comp=0.02,asetpts=PTS-STARTPTS,adelay=delays=%dS:all=1,aformat=sample_fmts=fltp:channel_layouts=stereo,apad,atrim=end=%.3f",
				int64((v.offset+pc[0])*48000+0.5), duration)
			if v.when != nil {
				chain += fmt.Sprintf(",volume=volume='%s':eval=frame", v.when.expr())
			}
			f = append(f, fmt.Sprintf("%s[voice%d]", chain, n))
			mix += fmt.Sprintf("[voice%d]", n)
			n++
		}
	}
	if n == 1 {
		f = append(f, "[voice0]anull[a]")
	} else {
		f = append(f, fmt.Sprintf("%samix=inputs=%d:normalize=0:duration=longest,alimiter=limit=0.98:level=0:latency=1,atrim=end=%.3f[a]", mix, n, duration))
	}
	return strings.Join(f, ";")
}

func even(n int) int { return n &^ 1 }
