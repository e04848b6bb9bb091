package ingest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"podium/internal/rtspcam"
	"podium/internal/testenv"
	"podium/sfu"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/<pid>/stat: 100
// on every Linux architecture Go supports.
const clockTicks = 100

// procCPU returns the user+system CPU time of a process so far and its
// parent's pid, from /proc/<pid>/stat.
func procCPU(pid int) (cpu time.Duration, ppid int, err error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may contain spaces: split after its ')'.
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(raw[i+1:])) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ppid, _ = strconv.Atoi(f[1])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks, ppid, nil
}

// transcoderPIDs lists this process's ffmpeg children that send RTP to
// loopback: the source transcoders (the test camera's encoder publishes
// RTSP and is left out).
func transcoderPIDs(tb testing.TB) []int {
	tb.Helper()
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		tb.Fatal(err)
	}
	self := os.Getpid()
	var pids []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if _, ppid, err := procCPU(pid); err != nil || ppid != self {
			continue
		}
		cmdline, err := os.ReadFile(d + "/cmdline")
		if err != nil {
			continue
		}
		if strings.Contains(string(cmdline), "rtp://127.0.0.1:") {
			pids = append(pids, pid)
		}
	}
	return pids
}

func selfCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTranscodedSource measures the CPU cost of one transcoded source
// (a 320x240, 25 fps camera): the ffmpeg transcoder process plus this
// process (the source's RTP reading/retiming/forwarding and one sink, but
// also the in-process test camera's RTSP server, so it is an upper bound),
// over b.N seconds of media, counted in transcoded pictures that reached
// the sink (25 per second). %core/source = CPU seconds / media seconds
// × 100; ffmpeg-%core and self-%core split it. The camera's own encoder is
// not counted. Run with a small count: -benchtime 3x.
func BenchmarkTranscodedSource(b *testing.B) {
	for _, codec := range []string{"h265", "mjpeg"} {
		b.Run(codec, func(b *testing.B) { benchTranscoded(b, codec) })
	}
}

// benchSource registers cam as a source of lesson "bench" on a manager of
// its own and returns them with the source's video track.
func benchSource(b *testing.B, cam *rtspcam.Camera) (*Manager, SourceInfo, *sfu.Track) {
	b.Helper()
	rooms := sfu.NewRooms(testLoggerTB())
	m, err := New(Config{Rooms: rooms, Log: testLoggerTB(), Backoff: Backoff{Min: 200 * time.Millisecond, Max: time.Second}, ReadTimeout: 3 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		m.Close()
		rooms.EndAll("bench over")
	})
	info, err := m.Add("bench", SourceConfig{URL: cam.URL("", ""), Transport: TransportTCP})
	if err != nil {
		b.Fatal(err)
	}
	var track *sfu.Track
	testenv.WaitFor(b, 25*time.Second, "video track", func() bool {
		var ok bool
		track, ok = m.Track("bench", info.ID, sfu.KindVideo)
		return ok
	})
	return m, info, track
}

func benchTranscoded(b *testing.B, codec string) {
	const fps = 25
	cam := rtspcam.Start(b, rtspcam.Options{Codec: codec})
	m, info, track := benchSource(b, cam)
	vs := &videoSink{}
	track.AddSink("bench", vs)
	defer track.RemoveSink("bench")
	// Warm up: ffmpeg has probed the camera and pictures flow.
	testenv.WaitFor(b, 25*time.Second, "first transcoded pictures", func() bool { f, _, _, _ := vs.snapshot(); return f >= fps })
	pids := transcoderPIDs(b)
	if len(pids) != 1 {
		b.Fatalf("want 1 transcoder process, found %v", pids)
	}
	pid := pids[0]
	ffStart, _, err := procCPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	selfStart := selfCPU(b)
	before, _ := m.Get("bench", info.ID) // may have retried while the camera came up
	framesStart, idrsStart, _, _ := vs.snapshot()
	b.ResetTimer()

	want := framesStart + b.N*fps
	testenv.WaitFor(b, time.Duration(b.N)*3*time.Second+10*time.Second, fmt.Sprintf("%d s of transcoded media", b.N),
		func() bool { f, _, _, _ := vs.snapshot(); return f >= want })

	b.StopTimer()
	ffEnd, _, err := procCPU(pid)
	if err != nil {
		b.Fatalf("transcoder %d gone during the measurement: %v", pid, err)
	}
	selfEnd := selfCPU(b)
	frames, idrs, _, violations := vs.snapshot()
	if len(violations) > 0 {
		b.Fatalf("output contract violated: %v", violations[:min(5, len(violations))])
	}
	idr, nonIDR := idrs, frames-idrs
	if idr == 0 || nonIDR == 0 {
		b.Fatalf("no real H.264 out: %d IDR and %d non-IDR pictures", idr, nonIDR)
	}
	if got, _ := m.Get("bench", info.ID); got.Reconnects != before.Reconnects || got.State != StateLive {
		b.Fatalf("source not steadily live during the measurement: %+v", got)
	}
	media := float64(frames-framesStart) / fps
	ff := (ffEnd - ffStart).Seconds()
	self := (selfEnd - selfStart).Seconds()
	b.ReportMetric((ff+self)/media*100, "%core/source")
	b.ReportMetric(ff/media*100, "ffmpeg-%core")
	b.ReportMetric(self/media*100, "self-%core")
	b.ReportMetric(float64(idrs-idrsStart)/media, "IDR/s")
	b.ReportMetric(float64(frames-framesStart-(idrs-idrsStart))/media, "non-IDR/s")
}
