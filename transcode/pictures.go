package transcode

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"
)

// mediaSpans is where a file's first stream of a kind ("v" or "a") has
// media, in seconds after its first packet (as ffmpeg places an input:
// its start at 0, then -itsoffset): from each packet to the next, a hole
// of maxFreeze or more ending a stretch, the last packet lasting the
// usual interval. It reads packet timestamps only, without decoding.
func mediaSpans(ctx context.Context, ffprobe, path, kind string) (spans, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ffprobe, "-v", "error", "-select_streams", kind+":0",
		"-show_entries", "packet=pts_time", "-of", "csv=p=0", path)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("ffprobe packets: %v: %s", err, strings.TrimSpace(errb.String()))
	}
	var pts []float64
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(sc.Text(), ",")), 64)
		if err == nil {
			pts = append(pts, v)
		}
	}
	if len(pts) == 0 {
		return nil, fmt.Errorf("no %s packets", kind)
	}
	sort.Float64s(pts)
	return holesAsGaps(pts, maxFreeze), nil
}

// holesAsGaps turns sorted packet times into the stretches they cover,
// relative to the first: a hole of hold or more ends a stretch; the last
// packet of a stretch lasts the typical interval.
func holesAsGaps(pts []float64, hold float64) spans {
	frame := 1.0 / 30
	var steps []float64
	for i := 1; i < len(pts); i++ {
		if d := pts[i] - pts[i-1]; d > 0 && d < hold {
			steps = append(steps, d)
		}
	}
	if len(steps) > 0 {
		sort.Float64s(steps)
		frame = steps[len(steps)/2]
	}
	t0 := pts[0]
	var out spans
	from := pts[0]
	for i := 1; i <= len(pts); i++ {
		if i < len(pts) && pts[i]-pts[i-1] < hold {
			continue
		}
		out = append(out, span{from - t0, pts[i-1] + frame - t0})
		if i < len(pts) {
			from = pts[i]
		}
	}
	return out
}
