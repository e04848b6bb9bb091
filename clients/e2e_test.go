package clients

import (
	"io"
	"net/http"
	"strconv"
	"strings"
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
	// The browsers' pictures and sound were protected and sent by the
	// node's egress itself: it is the DTLS server of their receiving
	// connections and knows the SRTP keys.
	if direct := metricValue(t, node.URL, "podium_media_packets_out_srtp_direct_total"); direct == 0 {
		t.Error("no packet reached the browsers through the egress's own SRTP")
	}
}

// metricValue reads one unlabelled series from a node's /metrics.
func metricValue(t *testing.T, baseURL, name string) float64 {
	t.Helper()
	res, err := http.Get(baseURL + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metrics: %s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("metrics: no series %s", name)
	return 0
}
