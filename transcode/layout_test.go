package transcode

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"podium/vod"
)

func TestSpans(t *testing.T) {
	s := spans{{5, 8}, {0, 2}, {1, 3}, {8, 9}, {4, 4}}.normalized()
	if want := (spans{{0, 3}, {5, 9}}); !reflect.DeepEqual(s, want) {
		t.Fatalf("normalized = %v, want %v", s, want)
	}
	if got, want := s.intersect(spans{{2, 6}, {8.5, 20}}), (spans{{2, 3}, {5, 6}, {8.5, 9}}); !reflect.DeepEqual(got, want) {
		t.Fatalf("intersect = %v, want %v", got, want)
	}
	if !s.contains(0) || s.contains(3) || !s.contains(8.9) || s.contains(4) {
		t.Fatal("contains is not half-open")
	}
	if got := (spans{{1, 2.5}}).expr(); got != "gte(t,1.000)*lt(t,2.500)" {
		t.Fatalf("expr = %s", got)
	}
	if got := spans(nil).expr(); got != "0" {
		t.Fatalf("empty expr = %s", got)
	}
}

// A picture's holes of maxFreeze or more are gaps; shorter ones (a static
// screen share sends about a picture a second) are held.
func TestHolesAsGaps(t *testing.T) {
	var pts []float64
	for i := 0; i < 30; i++ { // 10 s..11 s at 30 fps
		pts = append(pts, 10+float64(i)/30)
	}
	pts = append(pts, 12.5, 16) // a 1.5 s hole held, a 3.5 s one not
	got := holesAsGaps(pts, maxFreeze)
	if len(got) != 2 || got[0][0] != 0 || got[1][0] != 6 || got[0][1] < 2.5 || got[0][1] > 2.6 || got[1][1] > 6.1 {
		t.Fatalf("spans %v", got)
	}
}

func TestStageStretches(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	ev := []vod.ManifestEvent{
		{Time: at(30), Type: "stage", ParticipantID: "c2", Participant: "Valley School"}, // out of order on purpose
		{Time: at(10), Type: "stage", ParticipantID: "c1", Participant: "Hill School"},
		{Time: at(12), Type: "stage", ParticipantID: "c1", Participant: "Hill School"}, // repeated: no change
		{Time: at(20), Type: "screenStart"},
		{Time: at(40), Type: "stage"},
		{Time: at(60), Type: "stage", ParticipantID: "cam", Participant: "Ceiling camera"}, // to the end
	}
	got := stageStretches(ev, t0, 90)
	want := []stageStretch{{"c1", "Hill School", span{10, 30}}, {"c2", "Valley School", span{30, 40}}, {"cam", "Ceiling camera", span{60, 90}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// The composite's rules, stretch by stretch: the screen is the main
// picture while shown, else the stage, else the teacher; the teacher is
// picture-in-picture whenever it is not the main picture; the stage is a
// second picture-in-picture beside a screen. A chapter marks every change
// of screen or stage.
func TestComposeFollowsTheLesson(t *testing.T) {
	teacher := &placedTrack{name: "Ms. Okafor"}
	screen := &placedTrack{name: "Ms. Okafor"}
	hill := &placedTrack{name: "Hill School"}
	cam := &placedTrack{name: "Ceiling camera"}
	tl := &timeline{duration: 60, teacher: teacher, screen: screen, stage: []*placedTrack{hill, cam}}
	shown := map[*placedTrack]spans{
		teacher: {{0, 50}},            // camera off from 50 s
		screen:  {{10, 20}, {30, 40}}, // muted at 20 s, unmuted at 30 s, stopped at 40 s
		hill:    {{15, 25}},
		cam:     {{45, 55}},
	}
	layers, chapters := compose(tl, shown)
	got := map[string]spans{}
	names := map[*placedTrack]string{teacher: "teacher", screen: "screen", hill: "hill", cam: "cam"}
	for i, l := range layers {
		if i > 0 && l.slot < layers[i-1].slot {
			t.Errorf("layer %d in slot %d drawn after slot %d", i, l.slot, layers[i-1].slot)
		}
		got[names[l.track]+"/"+[]string{"main", "pip", "pip2"}[l.slot]] = l.on
	}
	want := map[string]spans{
		"teacher/main": {{0, 10}, {25, 30}, {40, 45}},
		"teacher/pip":  {{10, 25}, {30, 40}, {45, 50}},
		"screen/main":  {{10, 20}, {30, 40}},
		"hill/pip2":    {{15, 20}},
		"hill/main":    {{20, 25}},
		"cam/main":     {{45, 55}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("layers:\n got %v\nwant %v", got, want)
	}
	var titles []string
	for _, c := range chapters {
		titles = append(titles, fmt.Sprintf("%g %s", c.Time, c.Title))
	}
	wantTitles := []string{"10 Screen share: Ms. Okafor", "15 On stage: Hill School", "20 Screen share ended",
		"25 Back to the teacher", "30 Screen share: Ms. Okafor", "40 Screen share ended",
		"45 On stage: Ceiling camera", "55 Back to the teacher"}
	if !reflect.DeepEqual(titles, wantTitles) {
		t.Errorf("chapters:\n got %q\nwant %q", titles, wantTitles)
	}
}

// The filter draws each layer in its slot only while on, decodes each
// input once, and mixes the voices unnormalized through a limiter, a
// voice on stage heard only then.
func TestCompositeFilter(t *testing.T) {
	teacher, screen := &placedTrack{}, &placedTrack{}
	layers := []layer{
		{track: teacher, slot: slotMain, on: spans{{0, 10}}},
		{track: screen, slot: slotMain, on: spans{{10, 20}}},
		{track: teacher, slot: slotPiP, on: spans{{10, 20}}},
	}
	f := compositeFilter(1280, 720, 30, 60, layers, map[*placedTrack]int{teacher: 0, screen: 1},
		[]voice{{in: 2, offset: 0.5}, {in: 3, offset: 12, when: spans{{15, 25}}}, {in: 4, offset: 1, pieces: spans{{0, 5}, {65.5, 70}}}})
	for _, want := range []string{
		"color=c=black:s=1280x720:r=30:d=60.000",
		"[1:v]select='gte(t,8.000)*lt(t,20.000)',scale=1280:720:",
		"[0:v]select='gte(t,0.000)*lt(t,20.000)',split=2[in0_0][in0_1]",
		"[in0_1]scale=320:180:",
		"overlay=0:0:eof_action=pass:enable='gte(t,10.000)*lt(t,20.000)'",
		"overlay=936:516:eof_action=pass:enable='gte(t,10.000)*lt(t,20.000)'",
		"[2:a]aresample=48000:async=1:min_hard_comp=0.02,asetpts=PTS-STARTPTS,adelay=delays=24000S:all=1,",
		"adelay=delays=576000S:all=1,",
		"volume=volume='gte(t,15.000)*lt(t,25.000)':eval=frame[voice1]",
		// A voice with a long hole is mixed in two pieces: no silence held.
		"[4:a]asplit=2[in4_0][in4_1]",
		"[in4_1]atrim=start=65.500000:end=70.000000,aresample=48000:async=1:min_hard_comp=0.02,asetpts=PTS-STARTPTS,adelay=delays=3192000S:all=1,",
		"[voice0][voice1][voice2][voice3]amix=inputs=4:normalize=0:duration=longest,alimiter=limit=0.98:level=0:latency=1,atrim=end=60.000[a]",
	} {
		if !strings.Contains(f, want) {
			t.Errorf("filter lacks %q:\n%s", want, f)
		}
	}
	silent := compositeFilter(640, 360, 30, 5, layers[:1], map[*placedTrack]int{teacher: 0}, nil)
	if strings.Contains(silent, "split") || !strings.Contains(silent, "anullsrc") {
		t.Errorf("camera-only filter: %s", silent)
	}
}

// The tracks chosen: the teacher's camera, screen and microphone; the
// picture of everyone ever on stage (a camera before a whiteboard) and
// their microphones, heard only while on stage (never, for a stage that
// lasted no time); nobody else's.
func TestPlanTimelineChoosesWhatClassroomsSawAndHeard(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	track := func(id, participant, role, kind, source string, from, to int) vod.ManifestTrack {
		return vod.ManifestTrack{ID: id, ParticipantID: participant, Participant: "name of " + participant, Role: role, Kind: kind, Source: source,
			Segments: []vod.ManifestSegment{{Seq: 1, Start: at(from), Duration: time.Duration(to-from) * time.Second}}}
	}
	m := &vod.Manifest{StartedAt: t0, EndedAt: at(60), Tracks: []vod.ManifestTrack{
		track("c1-camera", "c1", "classroom", "video", "camera", 10, 20),
		track("teacher-camera", "t1", "teacher", "video", "camera", 0, 60),
		track("teacher-microphone", "t1", "teacher", "audio", "microphone", 0, 60),
		track("teacher-screen", "t1", "teacher", "video", "screen", 5, 50),
		track("c1-microphone", "c1", "classroom", "audio", "microphone", 10, 20),
		track("cam1-whiteboard", "cam1", "source", "video", "whiteboard", 0, 60),
		track("cam1-camera", "cam1", "source", "video", "camera", 0, 60),
		track("cam1-microphone", "cam1", "source", "audio", "microphone", 0, 60),
		track("cam2-microphone", "cam2", "source", "audio", "microphone", 0, 60),
		track("cam3-microphone", "cam3", "source", "audio", "microphone", 0, 60), // never on stage
	}, Events: []vod.ManifestEvent{
		{Time: at(10), Type: "stage", ParticipantID: "c1", Participant: "Hill School"},
		{Time: at(20), Type: "stage", ParticipantID: "cam1", Participant: "Ceiling camera"},
		{Time: at(30), Type: "stage"},
		{Time: at(40), Type: "stage", ParticipantID: "cam2"}, // on and off in no time: never heard
		{Time: at(40), Type: "stage"},
	}}
	tl, err := planTimeline(m)
	if err != nil {
		t.Fatal(err)
	}
	if tl.teacher.track.ID != "teacher-camera" || tl.screen.track.ID != "teacher-screen" || tl.screen.offset != 5 || tl.duration != 60 {
		t.Fatalf("teacher %s, screen %s at %v, duration %v", tl.teacher.track.ID, tl.screen.track.ID, tl.screen.offset, tl.duration)
	}
	var stage []string
	for _, p := range tl.stage {
		stage = append(stage, fmt.Sprintf("%s %s %v", p.track.ID, p.name, p.when))
	}
	if want := []string{"c1-camera Hill School [[10 20]]", "cam1-camera Ceiling camera [[20 30]]"}; !reflect.DeepEqual(stage, want) {
		t.Errorf("stage %q, want %q", stage, want)
	}
	var voices []string
	for _, v := range tl.voices {
		always := ""
		if v.when == nil {
			always = " always"
		}
		voices = append(voices, fmt.Sprintf("%s %v%s", v.track.ID, v.when, always))
	}
	if want := []string{"teacher-microphone [] always", "c1-microphone [[10 20]]", "cam1-microphone [[20 30]]", "cam2-microphone []"}; !reflect.DeepEqual(voices, want) {
		t.Errorf("voices %q, want %q", voices, want)
	}
}
