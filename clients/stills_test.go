package clients

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"podium/internal/testenv"
)

// TestClassroomOnAWeakLinkShowsSoundAndStills: a classroom big screen on
// a failing village line (~100 kbit/s, a third of its packets lost), less
// than the teacher's smallest picture, is switched by the server to sound
// and still pictures and says so on the board, the teacher's roster says
// it too, and the lesson's sound goes on. (DevTools' emulation takes hold
// of connections made after it is set, so the board starts on that line;
// the way back to video is sfu's TestClassroomBelowTheLowestLayerGetsStills.)
func TestClassroomOnAWeakLinkShowsSoundAndStills(t *testing.T) {
	browser := testenv.StartChromium(t)
	node := testenv.StartPodium(t)
	const lesson = "stills-1"
	token := func(role, name string) string { return node.Token(lesson, role, name) }

	teacher := openPage(t, browser, "teacher", node.URL+"/teacher#token="+token("teacher", "Ms Rivera"))
	teacher.waitState(t, "ready")
	goLive(t, teacher)

	// The board opens a page of the node's own first, so that the line is
	// set on the renderer the classroom page will run in: once, set on
	// about:blank, it did not reach the board's connection (its estimate
	// rose to 3.6 Mbit/s, which a line losing 30 % never gives).
	hill := openBoard(t, browser, "Hill School", node.URL+"/")
	hill.emulateLine(t, 12_000, 30)
	if err := chromedp.Do(hill.ctx, chromedp.Navigate(node.URL+"/classroom#token="+token("classroom", "Hill School"))); err != nil {
		t.Fatal(err)
	}
	var b boxState
	took := hill.waitLong(t, 90*time.Second, "the stills banner", func() (bool, string) {
		b = hill.box(t, "#stills-banner")
		return b.Shown, fmt.Sprintf("%+v", b)
	})
	t.Logf("on sound and stills %v after opening the board", took.Round(time.Second))
	if !strings.Contains(b.Text, "sound and still pictures") || b.FontPx < 0.015*b.ViewH {
		t.Errorf("stills banner %q at %.1f px in a %.0f px high viewport", b.Text, b.FontPx, b.ViewH)
	}
	teacher.waitUntil(t, "the roster to say sound + stills", func() (bool, string) {
		var s string
		_ = teacher.eval(`document.getElementById('rows').innerText`, &s)
		return strings.Contains(s, "sound + stills"), s
	})
	// The stills are the teacher's smallest picture (a 720p keyframe would
	// take seconds on this line). The board may first rejoin: the seconds
	// of 720p it was sent before its estimate fell fill this line's queue
	// for long enough that its connection fails, and a new one takes a
	// while to connect through 30 % loss.
	hill.waitLong(t, 90*time.Second, "stills of the smallest layer", func() (bool, string) {
		f := hill.frames(t, "#main-video")
		return f.Width > 0 && f.Width <= 320, fmt.Sprintf("%+v", f)
	})
	// The sound goes on: the board's audio keeps arriving.
	audio := func() float64 {
		var n float64
		_ = hill.eval(`window.podium.stats().then(s => s.inbound.filter(i => i.kind === 'audio').reduce((a, i) => a + (i.packetsReceived || 0), 0))`, &n)
		return n
	}
	before := audio()
	hill.waitLong(t, 30*time.Second, "audio packets on stills", func() (bool, string) {
		n := audio()
		return n-before >= 100, fmt.Sprintf("%v received", n-before)
	})
}
