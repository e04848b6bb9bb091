package clients

import (
	"testing"

	"podium/internal/testenv"
)

// TestClassroomLiveOnlyOnAir: a classroom that joined a lesson whose
// teacher is present but not on air does not say LIVE; it does once the
// teacher goes live.
func TestClassroomLiveOnlyOnAir(t *testing.T) {
	browser := testenv.StartChromium(t)
	node := testenv.StartPodium(t)
	token := func(role, name string) string { return node.Token("onair-1", role, name) }

	teacher := openPage(t, browser, "teacher", node.URL+"/teacher#token="+token("teacher", "Ms Rivera"))
	teacher.waitState(t, "ready")
	hill := openPage(t, browser, "Hill School", node.URL+"/classroom#token="+token("classroom", "Hill School"))
	hill.waitState(t, "live") // joined the lesson
	pill := func() (string, string) {
		var v struct{ Text, State string }
		_ = hill.eval(`(() => { const e = document.getElementById('state'); return { text: e.textContent, state: e.dataset.state }; })()`, &v)
		return v.Text, v.State
	}
	hill.waitUntil(t, "the pill says the teacher is not on air", func() (bool, string) {
		text, state := pill()
		return text == "Joined · the teacher is not on air yet" && state != "live", text + " / " + state
	})

	teacher.do(t, `window.podium.goLive()`)
	teacher.waitState(t, "live")
	hill.waitUntil(t, "the pill says LIVE", func() (bool, string) {
		text, state := pill()
		return text == "LIVE" && state == "live", text + " / " + state
	})
}
