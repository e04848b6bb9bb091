package ingest

import (
	"strings"
	"testing"
	"time"

	"podium/internal/rtspcam"
	"podium/internal/testenv"
)

// A camera whose pictures cannot be decoded while its sound is fine (here
// MJPEG cut after its headers; in the field, MJPEG cameras that RFC 2435
// receivers cannot read) must not show "live": its sound alone used to keep
// the shared transcoder looking busy and the source live while no picture
// reached the lesson. It reports its video as the error and retries.
func TestUndecodableVideoIsAnError(t *testing.T) {
	cam := rtspcam.Start(t, rtspcam.Options{Codec: "mjpeg", Audio: true, BrokenVideo: true})
	m, _ := newTestManager(t)
	info, err := m.Add("broken", SourceConfig{URL: cam.URL("", ""), Transport: TransportTCP})
	if err != nil {
		t.Fatal(err)
	}
	var last SourceInfo
	testenv.WaitFor(t, 60*time.Second, "the source to report its video", func() bool {
		last, _ = m.Get("broken", info.ID)
		return strings.Contains(last.LastError, "no video")
	})
	t.Logf("state %s, error %q", last.State, last.LastError)
	if last.State == StateLive {
		t.Fatalf("state %s with undecodable video", last.State)
	}
}
