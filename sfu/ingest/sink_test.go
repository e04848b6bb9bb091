package ingest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"

	"podium/internal/testenv"
)

// videoSink is what a WebRTC down-track does with a source's video, checked
// strictly: it waits for a keyframe before keeping anything (like the sfu's
// down-track), depacketizes RTP into Annex-B with pion's H.264 depacketizer,
// and records every violation of the output contract (packet size, SSRC or
// sequence jumps, a keyframe without parameter sets before it).
type videoSink struct {
	mu        sync.Mutex
	depak     codecs.H264Packet
	started   bool
	annexB    bytes.Buffer
	frame     bytes.Buffer
	frames    int // complete pictures kept
	idrs      int
	packets   int
	ssrc      uint32
	lastSeq   uint16
	lastTS    uint32
	violation []string
	havePic   bool
	// With checkStale, seen holds every keyframe forwarded so far: one
	// forwarded twice is a stale picture (a running camera's keyframes all
	// differ; P-frames of a still scene may repeat byte for byte, and a
	// restarted test camera starts with the same picture again).
	checkStale bool
	seen       map[string]bool
	// firstTS is the RTP time of the first picture kept (after a keyframe).
	firstTS uint32
	// arrivals holds when each kept picture's last packet arrived.
	arrivals []time.Time
}

func (s *videoSink) WriteRTP(_ int, pkt *rtp.Packet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	size := pkt.Header.MarshalSize() + len(pkt.Payload)
	if size > maxPacketSize {
		s.violation = append(s.violation, fmt.Sprintf("packet of %d bytes", size))
	}
	if s.packets > 0 {
		if pkt.SSRC != s.ssrc {
			s.violation = append(s.violation, "SSRC changed")
		}
		if pkt.SequenceNumber != s.lastSeq+1 {
			s.violation = append(s.violation, fmt.Sprintf("sequence jump %d -> %d", s.lastSeq, pkt.SequenceNumber))
		}
		if int32(pkt.Timestamp-s.lastTS) < 0 {
			s.violation = append(s.violation, fmt.Sprintf("timestamp back %d -> %d", s.lastTS, pkt.Timestamp))
		}
	}
	s.packets++
	s.ssrc, s.lastSeq, s.lastTS = pkt.SSRC, pkt.SequenceNumber, pkt.Timestamp
	data, err := s.depak.Unmarshal(pkt.Payload)
	if err != nil {
		return
	}
	s.frame.Write(data)
	if !pkt.Marker {
		return
	}
	pic := s.frame.Bytes()
	hasSPS, hasPPS, hasIDR := false, false, false
	for _, n := range bytes.Split(pic, []byte{0, 0, 0, 1}) {
		if len(n) == 0 {
			continue
		}
		switch n[0] & 0x1f {
		case naluSPS:
			hasSPS = true
		case naluPPS:
			hasPPS = true
		case naluIDR:
			hasIDR = true
		}
	}
	if hasIDR {
		if !hasSPS || !hasPPS {
			s.violation = append(s.violation, "IDR without SPS/PPS before it")
		}
		if !s.started {
			s.firstTS = pkt.Timestamp
		}
		s.started = true
		s.idrs++
	}
	if hasIDR && s.checkStale {
		if s.seen == nil {
			s.seen = map[string]bool{}
		}
		if s.seen[string(pic)] {
			s.violation = append(s.violation, fmt.Sprintf("a keyframe forwarded again at RTP time %d (stale)", pkt.Timestamp))
		}
		s.seen[string(pic)] = true
	}
	s.havePic = true
	if s.started {
		s.annexB.Write(pic)
		s.frames++
		s.arrivals = append(s.arrivals, time.Now())
	}
	s.frame.Reset()
}

func (s *videoSink) snapshot() (frames, idrs int, annexB []byte, violations []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frames, s.idrs, append([]byte(nil), s.annexB.Bytes()...), append([]string(nil), s.violation...)
}

// decodedFrames decodes Annex-B H.264 with ffprobe and returns how many
// pictures it decoded: what a viewer would see.
func decodedFrames(t *testing.T, annexB []byte) int {
	t.Helper()
	ffprobe := testenv.RequireBinary(t, "ffprobe")
	path := filepath.Join(t.TempDir(), "video.h264")
	if err := os.WriteFile(path, annexB, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(ffprobe, "-v", "error", "-f", "h264", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=nb_read_frames,width,height", "-of", "default=nw=1", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v: %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "nb_read_frames="); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			if n == 0 {
				t.Logf("ffprobe: %s", out)
			}
			return n
		}
	}
	t.Fatalf("ffprobe said nothing about frames: %s", out)
	return 0
}

// audioSink writes a source's Opus packets to an Ogg file.
type audioSink struct {
	mu      sync.Mutex
	w       *oggwriter.OggWriter
	packets int
}

func newAudioSink(t *testing.T) (*audioSink, string) {
	path := filepath.Join(t.TempDir(), "audio.ogg")
	w, err := oggwriter.New(path, 48000, 2)
	if err != nil {
		t.Fatal(err)
	}
	return &audioSink{w: w}, path
}

func (s *audioSink) WriteRTP(_ int, pkt *rtp.Packet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w != nil && s.w.WriteRTP(pkt) == nil {
		s.packets++
	}
}

func (s *audioSink) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w != nil {
		s.w.Close()
		s.w = nil
	}
}

func (s *audioSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.packets
}

// decodedAudioSeconds decodes an Ogg/Opus file with ffmpeg and returns the
// duration of audio it produced.
func decodedAudioSeconds(t *testing.T, path string) float64 {
	t.Helper()
	ffmpeg := testenv.RequireBinary(t, "ffmpeg")
	out, err := exec.Command(ffmpeg, "-hide_banner", "-v", "error", "-i", path, "-f", "s16le", "-ac", "2", "-ar", "48000", "-").Output()
	if err != nil {
		t.Fatalf("decode audio: %v", err)
	}
	return float64(len(out)) / (48000 * 2 * 2)
}
