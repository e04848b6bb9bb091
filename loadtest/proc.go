package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat CPU times; it is 100
// on every Linux the tool runs on.
const clockTicks = 100

// procSample is a process's cumulative CPU time and current RSS.
type procSample struct {
	cpu time.Duration
	rss int64 // bytes
}

// readProc reads /proc/<pid>/stat (utime+stime) and /proc/<pid>/status
// (VmRSS). pid 0 reads the tool itself.
func readProc(pid int) (procSample, error) {
	dir := "/proc/self"
	if pid > 0 {
		dir = "/proc/" + strconv.Itoa(pid)
	}
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return procSample{}, fmt.Errorf("process %d: %w", pid, err)
	}
	cpu, err := parseStatCPU(string(stat))
	if err != nil {
		return procSample{}, fmt.Errorf("process %d: %w", pid, err)
	}
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return procSample{}, fmt.Errorf("process %d: %w", pid, err)
	}
	return procSample{cpu: cpu, rss: parseStatusRSS(string(status))}, nil
}

// parseStatCPU returns utime+stime from a /proc/<pid>/stat line. The
// command name (field 2) may hold spaces and parentheses, so fields are
// counted after its last ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat")
	}
	f := strings.Fields(stat[i+1:])
	// After the name: state is field 3, utime 14, stime 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed stat: %d fields", len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed stat times")
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

func parseStatusRSS(status string) int64 {
	for _, line := range strings.Split(status, "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// metricsSample is what the tool reads from a Prometheus /metrics page:
// the standard process collector and the sums of Podium's own series.
type metricsSample struct {
	cpu    time.Duration
	rss    int64
	podium map[string]float64 // metric name -> sum over label sets
}

// scrapeMetrics fetches and parses a Prometheus text page.
func scrapeMetrics(ctx context.Context, client *http.Client, url string) (metricsSample, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return metricsSample{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return metricsSample{}, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return metricsSample{}, fmt.Errorf("metrics: %s", resp.Status)
	}
	return parseMetrics(io.LimitReader(resp.Body, 16<<20)), nil
}

func parseMetrics(r io.Reader) metricsSample {
	m := metricsSample{podium: map[string]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		name := line[:sp]
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
		}
		switch {
		case name == "process_cpu_seconds_total":
			m.cpu = time.Duration(v * float64(time.Second))
		case name == "process_resident_memory_bytes":
			m.rss = int64(v)
		case strings.HasPrefix(name, "podium_"):
			m.podium[name] += v
		}
	}
	return m
}

// selfWatch tells when the tool, not the server, is the limit: its own CPU
// use against the cores it may run on, and how late a 10 ms ticker fires
// (scheduler lag: if the tool's goroutines wait to run, its timestamps and
// pacing are wrong).
type selfWatch struct {
	cores   int
	lag     histogram
	lastCPU procSample
	lastAt  time.Time
	cpuUse  float64 // cores used over the last interval
	peakUse float64
	maxLag  time.Duration
	// The steady phase (after the last join): the tool's CPU and the
	// packets its classrooms received, for its cost per packet.
	steadyCPU     procSample
	steadyAt      time.Time
	steadyPackets uint64
	steadyCores   float64
	usPerPacket   float64
}

// receivedPackets is what the classrooms received so far.
func receivedPackets(all []*classroomStats) uint64 {
	var n uint64
	for _, c := range all {
		for _, st := range []*streamStats{&c.video, &c.audio, &c.other} {
			st.mu.Lock()
			n += st.packets
			st.mu.Unlock()
		}
	}
	return n
}

// markSteady starts the steady phase's account.
func (s *selfWatch) markSteady(now time.Time, all []*classroomStats) {
	s.steadyCPU, _ = readProc(0)
	s.steadyAt, s.steadyPackets = now, receivedPackets(all)
}

// finishSteady ends it: the tool's cores over the phase and its CPU per
// received packet.
func (s *selfWatch) finishSteady(now time.Time, all []*classroomStats) {
	cur, err := readProc(0)
	el := now.Sub(s.steadyAt)
	if err != nil || s.steadyAt.IsZero() || el <= 0 {
		return
	}
	cpu := cur.cpu - s.steadyCPU.cpu
	s.steadyCores = float64(cpu) / float64(el)
	if n := receivedPackets(all) - s.steadyPackets; n > 0 {
		s.usPerPacket = float64(cpu) / float64(time.Microsecond) / float64(n)
	}
}

func newSelfWatch() *selfWatch {
	s := &selfWatch{cores: runtime.GOMAXPROCS(0)}
	s.lastCPU, _ = readProc(0)
	s.lastAt = time.Now()
	return s
}

// sampleCPU updates the CPU use over the time since the last call.
func (s *selfWatch) sampleCPU(now time.Time) {
	cur, err := readProc(0)
	if err != nil {
		return
	}
	if el := now.Sub(s.lastAt); el > 0 {
		s.cpuUse = float64(cur.cpu-s.lastCPU.cpu) / float64(el)
		s.peakUse = max(s.peakUse, s.cpuUse)
	}
	s.lastCPU, s.lastAt = cur, now
}

// saturated reports whether the tool is near its limit now.
func (s *selfWatch) saturated() bool {
	return s.cpuUse > 0.85*float64(s.cores)
}

// lagSaturated reports whether the scheduler lag over the run says the
// tool's measurements are unreliable.
func (s *selfWatch) lagSaturated() bool {
	return s.lag.quantile(0.99) > 20*time.Millisecond
}
