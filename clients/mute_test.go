package clients

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"podium/internal/testenv"
)

// TestMuteInBrowsers: the teacher page mutes a classroom page through its
// tile's button; the classroom's big screen says so and its microphone
// track is disabled, the teacher's browser stops receiving its audio, the
// classroom cannot lift the mute but raises its hand instead; unmute-all
// lifts it; a classroom muting itself shows "Muted" on the teacher's tile.
// The delay from each click to the other page's change is logged (the
// issue's goal is 300 ms; figures come from runs, not from a timed
// assertion that a loaded CI machine would fail now and then).
func TestMuteInBrowsers(t *testing.T) {
	browser := testenv.StartChromium(t)
	node := testenv.StartPodium(t)
	token := func(role, name string) string { return node.Token("mute-1", role, name) }

	teacher := openPage(t, browser, "teacher", node.URL+"/teacher#token="+token("teacher", "Ms Rivera"))
	teacher.waitState(t, "ready")
	teacher.do(t, `window.podium.goLive()`)
	teacher.waitState(t, "live")
	hill := openPage(t, browser, "Hill School", node.URL+"/classroom#token="+token("classroom", "Hill School"))
	hill.waitState(t, "live")
	var hillID string
	if err := hill.eval(`window.podium.session.self.id`, &hillID); err != nil {
		t.Fatal(err)
	}
	tile := fmt.Sprintf(`.tile[data-participant=%q]`, hillID)
	teacher.waitVisible(t, tile)
	fromHill := func(i inbound) bool { return i.ParticipantID == hillID }
	teacher.waitAudio(t, "Hill School microphone", fromHill)

	// Each page notes (Date.now(), one clock for both tabs) when a
	// selector starts or stops matching, so the test measures the delay
	// from a click on one page to the other page's DOM without polling.
	watch := func(p *page, name, sel string, present bool) {
		t.Helper()
		p.do(t, fmt.Sprintf(`(() => {
			window.__seen = window.__seen || {};
			delete window.__seen[%[1]q];
			const check = () => {
				const e = document.querySelector(%[2]q);
				const shown = !!e && e.getClientRects().length > 0;
				if (shown === %[3]v && !window.__seen[%[1]q]) { window.__seen[%[1]q] = Date.now(); obs.disconnect(); }
			};
			const obs = new MutationObserver(check);
			obs.observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
			check();
		})()`, name, sel, present))
	}
	click := func(p *page, sel string) float64 {
		t.Helper()
		var at float64
		if err := p.eval(fmt.Sprintf(`(() => { document.querySelector(%q).click(); return Date.now(); })()`, sel), &at); err != nil {
			t.Fatalf("%s: click %s: %v", p.name, sel, err)
		}
		return at
	}
	var delays []time.Duration
	shownWithin := func(p *page, name string, clickedAt float64) {
		t.Helper()
		var at float64
		p.waitUntil(t, name, func() (bool, string) {
			_ = p.eval(fmt.Sprintf(`(window.__seen || {})[%q] || 0`, name), &at)
			return at > 0, "not yet"
		})
		d := time.Duration(at-clickedAt) * time.Millisecond
		t.Logf("%s: %s after %v", p.name, name, d)
		delays = append(delays, d)
	}
	text := func(p *page, sel string) string {
		var s string
		_ = p.eval(fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ''`, sel), &s)
		return s
	}
	type micState struct {
		Muted        bool  `json:"muted"`
		ByTeacher    bool  `json:"byTeacher"`
		TrackEnabled *bool `json:"trackEnabled"`
	}
	mic := func() micState {
		var m micState
		_ = hill.eval(`window.podium.mic`, &m)
		return m
	}
	audioBytes := func() float64 {
		i, _ := find(teacher.stats(t), func(i inbound) bool { return i.Kind == "audio" && fromHill(i) })
		return i.BytesReceived
	}

	// The teacher mutes the classroom from its tile.
	watch(hill, "banner", "#mic-banner:not(.hidden)", true)
	watch(teacher, "tile muted", tile+" .muted-tag:not(.hidden)", true)
	at := click(teacher, tile+" .mute-btn")
	shownWithin(hill, "banner", at)
	shownWithin(teacher, "tile muted", at)
	if s := text(hill, "#mic-banner"); s == "" || !strings.Contains(s, "You are muted by the teacher") {
		t.Errorf("classroom banner says %q", s)
	}
	if s := text(hill, "#mic span"); s != "Muted by teacher" {
		t.Errorf("classroom mic button says %q, want Muted by teacher", s)
	}
	if m := mic(); !m.Muted || !m.ByTeacher || m.TrackEnabled == nil || *m.TrackEnabled {
		t.Errorf("classroom microphone %+v, want muted by the teacher with the track disabled", m)
	}
	if s := text(teacher, tile+" .muted-tag"); s != "Muted" {
		t.Errorf("teacher tile says %q, want Muted", s)
	}
	// The server stops forwarding: the teacher's browser receives no more
	// of the classroom's audio.
	teacher.waitUntil(t, "Hill School audio stopped", func() (bool, string) {
		before := audioBytes()
		time.Sleep(time.Second)
		after := audioBytes()
		return after == before, fmt.Sprintf("%v bytes in a second", after-before)
	})

	// The classroom cannot unmute itself: its button raises the hand.
	click(hill, "#mic")
	teacher.waitVisible(t, tile+" .hand")
	if m := mic(); !m.Muted || !m.ByTeacher {
		t.Errorf("after the classroom pressed its mic button: %+v, want still muted by the teacher", m)
	}

	// Unmute all lifts it, and the audio flows again.
	watch(hill, "banner gone", "#mic-banner:not(.hidden)", false)
	watch(teacher, "tile unmuted", tile+" .muted-tag:not(.hidden)", false)
	at = click(teacher, "#unmuteall")
	shownWithin(hill, "banner gone", at)
	shownWithin(teacher, "tile unmuted", at)
	if m := mic(); m.Muted || m.TrackEnabled == nil || !*m.TrackEnabled {
		t.Errorf("classroom microphone after unmute all: %+v, want on", m)
	}
	teacher.waitAudio(t, "Hill School microphone after unmute", fromHill)

	// The classroom mutes itself: the teacher's tile says so.
	watch(teacher, "tile self-muted", tile+`[data-mic="muted-by-self"] .muted-tag:not(.hidden)`, true)
	at = click(hill, "#mic")
	shownWithin(teacher, "tile self-muted", at)
	if s := text(hill, "#mic span"); s != "Muted by you" {
		t.Errorf("classroom mic button says %q after muting itself, want Muted by you", s)
	}
	watch(teacher, "tile on again", tile+" .muted-tag:not(.hidden)", false)
	at = click(hill, "#mic")
	shownWithin(teacher, "tile on again", at)
	if s := text(hill, "#mic span"); s != "Mic on" {
		t.Errorf("classroom mic button says %q after unmuting itself, want Mic on", s)
	}
	t.Logf("from a click to the other page: median %v of %v", median(delays), delays)
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
