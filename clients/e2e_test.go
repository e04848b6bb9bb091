package clients

import (
	"testing"

	"podium/internal/testenv"
)

// TestLessonInBrowsers runs a whole lesson in real headless Chromium pages
// (fake camera and microphone) against the real `podium serve` binary on
// loopback, which serves these pages. See runLesson for what it asserts.
//
// The screenshots in docs/ come from TestClassroomBigScreen,
// TestRosterTwentyClassrooms and TestReplayPageSignInTitleAndClips, run
// from the repository root with PODIUM_SCREENSHOTS=docs.
func TestLessonInBrowsers(t *testing.T) {
	browser := testenv.StartChromium(t)
	node := testenv.StartPodium(t)
	runLesson(t, browser, node.URL, func(role, name string) string {
		return node.Token("math-7", role, name)
	}, node.Restart)
}
