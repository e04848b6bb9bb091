package vod

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
)

// segment is an fMP4 media segment as the recorder writes it: one track,
// Opus-like 960-tick samples from base.
func segment(t *testing.T, base uint64, samples int) []byte {
	t.Helper()
	p := fmp4.Part{SequenceNumber: 7, Tracks: []*fmp4.PartTrack{{ID: 1, BaseTime: base}}}
	for i := range samples {
		p.Tracks[0].Samples = append(p.Tracks[0].Samples, &fmp4.Sample{Duration: 960, Payload: []byte{byte(i), 1, 2}})
	}
	var buf seekablebuffer.Buffer
	if err := p.Marshal(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestShiftSegment(t *testing.T) {
	for _, tc := range []struct {
		name      string
		base      uint64
		off       int64
		wantBase  uint64
		wantFirst byte // payload's first byte of the first sample kept
		wantN     int
		wantErr   bool
	}{
		{name: "later", base: 960, off: 48000, wantBase: 48960, wantN: 4},
		{name: "earlier, still after zero", base: 48000, off: -960, wantBase: 47040, wantN: 4},
		{name: "samples before zero are left out", base: 1000, off: -2000, wantBase: 920, wantFirst: 2, wantN: 2},
		{name: "wholly before zero", base: 0, off: -4000, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := shiftSegment(segment(t, tc.base, 4), tc.off)
			if tc.wantErr {
				if err == nil {
					t.Fatal("shifted a segment with nothing left")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var parts fmp4.Parts
			if err := parts.Unmarshal(out); err != nil || len(parts) != 1 || len(parts[0].Tracks) != 1 {
				t.Fatalf("shifted segment unreadable: %v", err)
			}
			tr := parts[0].Tracks[0]
			if tr.BaseTime != tc.wantBase || len(tr.Samples) != tc.wantN || tr.Samples[0].Payload[0] != tc.wantFirst ||
				parts[0].SequenceNumber != 7 {
				t.Errorf("base %d, %d samples, first payload %d, seq %d; want base %d, %d samples, first %d, seq 7",
					tr.BaseTime, len(tr.Samples), tr.Samples[0].Payload[0], parts[0].SequenceNumber, tc.wantBase, tc.wantN, tc.wantFirst)
			}
		})
	}
}

// TestPlanRawPlacesTracksOnTheLessonClock: the replay starts with the
// earlier track, and the other is moved by how much later its first sample
// came; a hole is folded into the segment before it; the teacher's camera
// is the picture even when a screen and another camera are recorded; a VP8
// camera alone leaves the voice.
func TestPlanRawPlacesTracksOnTheLessonClock(t *testing.T) {
	start := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	seg := func(seq int, at time.Duration, media uint64, dur time.Duration) ManifestSegment {
		return ManifestSegment{Seq: seq, Key: "k", Start: start.Add(at), Duration: dur, MediaStart: media}
	}
	m := &Manifest{StartedAt: start, Tracks: []ManifestTrack{
		{ID: "screen", Role: "teacher", Kind: "video", Source: "screen", Codec: "h264", Init: "i",
			Segments: []ManifestSegment{seg(0, 0, 0, 4*time.Second)}},
		{ID: "cam", Role: "teacher", Kind: "video", Source: "camera", Codec: "h264", Init: "i",
			// First sample 2 s after the start; a 3 s hole after the first segment.
			Segments: []ManifestSegment{seg(0, 2*time.Second, 0, 4*time.Second), seg(1, 9*time.Second, 7*90000, 4*time.Second)}},
		{ID: "ceiling", Role: "source", Kind: "video", Source: "camera", Codec: "h264", Init: "i",
			Segments: []ManifestSegment{seg(0, 0, 0, 4*time.Second)}},
		{ID: "mic", Role: "teacher", Kind: "audio", Source: "microphone", Codec: "opus", Init: "i",
			// Resumed track: media time 1 s a second before the start.
			Segments: []ManifestSegment{seg(3, -time.Second, 48000, time.Second), seg(4, 0, 96000, 4*time.Second)}},
	}}
	p := planRaw(m)
	if p.video == nil || p.video.t.ID != "cam" || p.audio == nil || p.audio.t.ID != "mic" || p.playback() != PlaybackRaw {
		t.Fatalf("plan: %+v", p)
	}
	if !p.origin.Equal(start.Add(-2*time.Second)) || p.video.off != 4*90000 || p.audio.off != 0 {
		t.Errorf("origin %v, offsets: video %d, audio %d; want the microphone's start, 360000, 0", p.origin, p.video.off, p.audio.off)
	}
	var durs []float64
	for _, s := range p.video.segments() {
		durs = append(durs, s.duration)
	}
	if len(durs) != 2 || durs[0] != 7 || durs[1] != 4 {
		t.Errorf("camera segments last %v s, want [7 4] (the hole folded into the first)", durs)
	}
	if audio := p.audio.segments(); len(audio) != 2 || audio[0].duration != 1 || audio[1].duration != 4 {
		t.Errorf("audio segments %+v, want 1 s and 4 s", audio)
	}

	m.Tracks[1].Codec, m.Tracks[0].Codec, m.Tracks[2].Codec = "vp8", "vp8", "vp8"
	if p := planRaw(m); p.playback() != PlaybackRawAudio {
		t.Errorf("VP8 cameras: playback %q, want %q", p.playback(), PlaybackRawAudio)
	}
}

// TestPlanRawWaitsForTheOtherTrack: a player reads the master playlist
// once, so while the lesson runs the camera's first segment is not offered
// alone while the microphone's is on its way; after rawPartnerWait, or once
// the recording is complete, what there is plays.
func TestPlanRawWaitsForTheOtherTrack(t *testing.T) {
	now := time.Now()
	m := &Manifest{StartedAt: now.Add(-5 * time.Second), Tracks: []ManifestTrack{
		{ID: "cam", Role: "teacher", Kind: "video", Source: "camera", Codec: "h264", Init: "i",
			Segments: []ManifestSegment{{Key: "k", Start: now.Add(-4 * time.Second), Duration: 4 * time.Second}}},
		{ID: "mic", Role: "teacher", Kind: "audio", Source: "microphone", Codec: "opus", Init: "i", Segments: []ManifestSegment{}},
	}}
	if p := planRaw(m); p.playback() != "" {
		t.Errorf("live, the microphone's first segment on its way: playback %q, want none yet", p.playback())
	}
	m.Complete = true
	if p := planRaw(m); p.playback() != PlaybackRaw || p.audio != nil {
		t.Errorf("complete: playback %q, want the camera alone", p.playback())
	}
	m.Complete = false
	m.Tracks[0].Segments[0].Start = now.Add(-rawPartnerWait - time.Second)
	if p := planRaw(m); p.playback() != PlaybackRaw {
		t.Errorf("live, the microphone silent for longer than %v: playback %q, want the camera", rawPartnerWait, p.playback())
	}
}

// TestRawSignatures: a raw URL opens that object with that shift only, and
// never a transcoded object of the same name.
func TestRawSignatures(t *testing.T) {
	s := &Service{key: []byte("k"), now: time.Now}
	g := urlGrant{exp: time.Now().Add(time.Minute), by: "classroom-1"}
	parse := func(u string) (rel string, q url.Values) {
		t.Helper()
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimPrefix(pu.Path, "/api/vod/raw/math/"), pu.Query()
	}
	rel, q := parse(s.rawURL("math", "rec/cam/000001.m4s", 180000, g))
	if by, ok := s.verifyRaw("math", rel, q); !ok || by != "classroom-1" {
		t.Fatalf("own URL refused (%q)", by)
	}
	for name, change := range map[string]func(url.Values) (string, string, url.Values){
		"another shift":   func(q url.Values) (string, string, url.Values) { q.Set("off", "0"); return "math", rel, q },
		"no shift":        func(q url.Values) (string, string, url.Values) { q.Del("off"); return "math", rel, q },
		"another segment": func(q url.Values) (string, string, url.Values) { return "math", "rec/cam/000002.m4s", q },
		"another lesson":  func(q url.Values) (string, string, url.Values) { return "bio", rel, q },
		"another holder":  func(q url.Values) (string, string, url.Values) { q.Set("by", "x"); return "math", rel, q },
	} {
		c := url.Values{}
		for k, v := range q {
			c[k] = append([]string(nil), v...)
		}
		if _, ok := s.verifyRaw(change(c)); ok {
			t.Errorf("%s: accepted", name)
		}
	}
	mrel, mq := parse(strings.Replace(s.mediaURL("math", "rec/cam/000001.m4s", g), "/api/vod/media/", "/api/vod/raw/", 1))
	if _, ok := s.verifyRaw("math", mrel, mq); ok {
		t.Error("a transcoded media signature opened a raw object")
	}
}

// TestRawChaptersFollowTheRawTimeline: before the transcode, chapters are
// placed on the raw replay's timeline, which starts with the recording
// (here five minutes after the lesson was opened), not at the lesson's
// opening.
func TestRawChaptersFollowTheRawTimeline(t *testing.T) {
	opened := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	camStart := opened.Add(5 * time.Minute)
	m := &Manifest{StartedAt: opened,
		Events: []ManifestEvent{{Time: camStart.Add(10 * time.Second), Type: "stage", Participant: "Hill School"}},
		Tracks: []ManifestTrack{{ID: "cam", Role: "teacher", Kind: "video", Source: "camera", Codec: "h264", Init: "i",
			Segments: []ManifestSegment{{Key: "k", Start: camStart, Duration: 4 * time.Second}}}}}
	e := &lessonEntry{manifest: m}
	if chs := eventChapters(m.Events, e.timelineStart(), 0); len(chs) != 1 || chs[0].Time != 10 {
		t.Errorf("chapters %+v, want one at 10 s", chs)
	}
}

// TestAddToDecodeTimes: a later shift is patched into the stored bytes (the
// samples untouched); one that would go below zero, or a segment that is
// not fMP4, is left to shiftSegment.
func TestAddToDecodeTimes(t *testing.T) {
	b := segment(t, 960, 4)
	if !addToDecodeTimes(b, 48000) {
		t.Fatal("a later shift was not patched")
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(b); err != nil || len(parts) != 1 {
		t.Fatalf("patched segment unreadable: %v", err)
	}
	if tr := parts[0].Tracks[0]; tr.BaseTime != 48960 || len(tr.Samples) != 4 || tr.Samples[3].Payload[0] != 3 {
		t.Errorf("base %d, %d samples; want 48960, 4", tr.BaseTime, len(tr.Samples))
	}
	before := segment(t, 960, 4)
	for name, c := range map[string]struct {
		b   []byte
		off int64
	}{
		"below zero":       {segment(t, 960, 4), -961},
		"not fMP4":         {[]byte("not a segment at all"), 10},
		"truncated":        {before[:len(before)/2], 10},
		"box past its end": {append([]byte{0, 0, 1, 0, 'm', 'o', 'o', 'f'}, before[8:40]...), 10},
	} {
		orig := append([]byte(nil), c.b...)
		if addToDecodeTimes(c.b, c.off) {
			t.Errorf("%s: patched", name)
		}
		if string(orig) != string(c.b) {
			t.Errorf("%s: bytes changed", name)
		}
	}
}
