package transcodetest

import (
	"math"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"podium/internal/testenv"
)

// StreamEnd is where the last packet of a file's (or playlist's) audio or
// video stream ends, in seconds, as ffprobe reads it; stream is an ffprobe
// stream specifier such as "v:0" or "a:0".
func StreamEnd(t testing.TB, path, stream string) float64 {
	t.Helper()
	ffprobe := testenv.RequireBinary(t, "ffprobe")
	out, err := exec.Command(ffprobe, "-v", "error", "-select_streams", stream, "-show_entries",
		"packet=pts_time,duration_time", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s %s: %v", path, stream, err)
	}
	end := 0.0
	for _, line := range strings.Fields(string(out)) {
		f := strings.Split(line, ",")
		pts, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		d := 0.0
		if len(f) > 1 {
			d, _ = strconv.ParseFloat(f[1], 64)
		}
		end = math.Max(end, pts+d)
	}
	return end
}
