package transcode

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"time"
)

// Progress is one report of ffmpeg's -progress output.
type Progress struct {
	OutTime time.Duration // media time written so far
	Speed   float64       // multiple of real time, 0 when unknown
	Done    bool          // progress=end
}

// parseProgressLine folds one "key=value" line of ffmpeg's -progress output
// into p. It reports true when the line ends a block (progress=continue or
// progress=end), i.e. when p is a complete report.
func parseProgressLine(line string, p *Progress) bool {
	key, val, ok := strings.Cut(strings.TrimSpace(line), "=")
	if !ok {
		return false
	}
	val = strings.TrimSpace(val)
	switch key {
	case "out_time_us", "out_time_ms": // both are microseconds (a historic ffmpeg quirk)
		if us, err := strconv.ParseInt(val, 10, 64); err == nil && us >= 0 {
			p.OutTime = time.Duration(us) * time.Microsecond
		}
	case "speed":
		s := strings.TrimSuffix(val, "x")
		if f, err := strconv.ParseFloat(s, 64); err == nil && f >= 0 && f < 1e6 {
			p.Speed = f
		}
	case "progress":
		p.Done = val == "end"
		return true
	}
	return false
}

// readProgress reads ffmpeg's -progress stream until EOF, calling report
// after each complete block.
func readProgress(r io.Reader, report func(Progress)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64*1024)
	var p Progress
	for sc.Scan() {
		if parseProgressLine(sc.Text(), &p) {
			report(p)
		}
	}
	// Drain whatever is left (a line longer than the buffer) so ffmpeg
	// never blocks writing to a full pipe.
	_, _ = io.Copy(io.Discard, r)
}
