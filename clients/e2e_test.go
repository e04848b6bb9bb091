package clients

import (
	"os"
	"path/filepath"
	"testing"

	"podium/internal/testenv"
)

// TestLessonInBrowsers runs a whole lesson in real headless Chromium pages
// (fake camera and microphone) against the real `podium serve` binary on
// loopback, which serves these pages. See runLesson for what it asserts.
//
// From the repository root,
//
//	PODIUM_SCREENSHOTS=docs go test ./clients -run LessonInBrowsers
//
// also saves docs/screenshot-classroom.png (docs/screenshot-teacher.png
// comes from TestRosterTwentyClassrooms, with twenty classrooms).
func TestLessonInBrowsers(t *testing.T) {
	browser := testenv.StartChromium(t)
	node := testenv.StartPodium(t)
	if dir := os.Getenv("PODIUM_SCREENSHOTS"); dir != "" && !filepath.IsAbs(dir) {
		t.Setenv("PODIUM_SCREENSHOTS", filepath.Join("..", dir))
	}
	runLesson(t, browser, node.URL, func(role, name string) string {
		return node.Token("math-7", role, name)
	}, node.Restart)
}
