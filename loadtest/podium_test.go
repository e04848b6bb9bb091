package loadtest

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"podium/internal/testenv"
)

// One teacher and three classrooms against a real podium, through the
// `podium loadtest` entry point: every classroom sees the teacher's video
// and hears the audio, and the report's fields are filled and plausible.
// No timing thresholds: the figures are the bench's business.
func TestLoadtestAgainstPodium(t *testing.T) {
	testenv.RequireBinary(t, "ffmpeg")
	srv := testenv.StartPodium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	jsonPath := filepath.Join(t.TempDir(), "report.json")
	var out bytes.Buffer
	err := Main(ctx, []string{
		"--server", srv.URL, "--secret", srv.Secret,
		"--classrooms", "3", "--join-rate", "10", "--duration", "8s", "--progress", "2s",
		"--link", "rate=4mbit,loss=1%", "--json", jsonPath,
	}, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	rep := readReport(t, jsonPath)
	if rep.Classrooms != 3 || rep.Joined != 3 || rep.Failed != 0 {
		t.Fatalf("classrooms %d joined %d failed %d (errors %v), want 3, 3, 0", rep.Classrooms, rep.Joined, rep.Failed, rep.Errors)
	}
	if rep.Receiving != 3 {
		t.Fatalf("%d of 3 classrooms received the teacher's video", rep.Receiving)
	}
	if rep.JoinToFirstFrameMs.N != 3 || rep.JoinToFirstFrameMs.Max <= 0 {
		t.Fatalf("join to first frame not measured: %+v", rep.JoinToFirstFrameMs)
	}
	if rep.VideoKbps.N != 3 || rep.VideoKbps.P50 <= 0 || rep.AudioKbps.N != 3 || rep.AudioKbps.P50 <= 0 {
		t.Fatalf("bitrates not measured: video %+v audio %+v", rep.VideoKbps, rep.AudioKbps)
	}
	// The delay fingerprints match frames through the real SFU, which
	// rewrites headers: the match also names the layer forwarded.
	if rep.DelayMs.N == 0 || rep.DelayMs.Max <= 0 {
		t.Fatalf("no end-to-end delay measured: %+v", rep.DelayMs)
	}
	known := 0
	for _, l := range []string{"q", "h", "f"} {
		known += rep.SettledLayer[l]
	}
	if known != 3 {
		t.Fatalf("settled layers %v: want a known layer for each classroom", rep.SettledLayer)
	}
	if rep.VideoLossPct.Max < 0 || rep.VideoLossPct.Max > 100 {
		t.Fatalf("implausible loss %+v", rep.VideoLossPct)
	}
	if rep.LinkDroppedPackets == 0 {
		t.Fatal("the 1% loss link dropped nothing")
	}
	// Server cost comes from the node's /metrics process_* series.
	if rep.Server.CPUSeconds <= 0 || rep.Server.RSSMiB <= 0 {
		t.Fatalf("server cost not measured: %+v", rep.Server)
	}
	if !strings.Contains(out.String(), "receiving 3") || !strings.Contains(out.String(), "join to first frame") {
		t.Fatalf("progress line or table missing")
	}
}
