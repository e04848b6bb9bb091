package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"

	"podium/internal/testmedia"
)

// videoClip is a looped video file held in memory, frame by frame, with
// its keyframes marked.
type videoClip struct {
	frames [][]byte
	key    []bool
}

func loadIVF(path string) (*videoClip, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	r, _, err := ivfreader.NewWith(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("media: %s: %w", path, err)
	}
	c := &videoClip{}
	for {
		f, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("media: %s: %w", path, err)
		}
		c.frames = append(c.frames, f)
		// VP8 frame tag: bit 0 of the first byte is 0 for a key frame.
		c.key = append(c.key, len(f) > 0 && f[0]&1 == 0)
	}
	return c.check(path)
}

func loadH264(path string) (*videoClip, error) {
	units, err := testmedia.ReadH264AccessUnits(path)
	if err != nil {
		return nil, err
	}
	c := &videoClip{frames: units}
	for _, au := range units {
		c.key = append(c.key, hasIDR(au))
	}
	return c.check(path)
}

func hasIDR(au []byte) bool {
	for i := 0; i+4 < len(au); i++ {
		if au[i] == 0 && au[i+1] == 0 && au[i+2] == 1 && au[i+3]&0x1f == 5 {
			return true
		}
	}
	return false
}

func (c *videoClip) check(path string) (*videoClip, error) {
	if len(c.frames) == 0 || !c.key[0] {
		return nil, fmt.Errorf("media: %s: does not start with a keyframe", path)
	}
	return c, nil
}

// nextKey returns the index of the first keyframe at or after i (looping).
func (c *videoClip) nextKey(i int) int {
	for j := 0; j < len(c.frames); j++ {
		k := (i + j) % len(c.frames)
		if c.key[k] {
			return k
		}
	}
	return 0
}

// playClip sends a clip at fps until ctx ends, looping. A keyframe request
// (PLI or FIR from the server) makes the next frame sent the clip's next
// keyframe, as a live encoder would produce one: a file cannot encode a new
// keyframe, but it can skip ahead to one, so joins do not wait up to a
// whole keyframe interval.
func playClip(ctx context.Context, clip *videoClip, fps int, track testmedia.SampleWriter, keyframe <-chan struct{}) error {
	dur := time.Second / time.Duration(fps)
	tick := time.NewTicker(dur)
	defer tick.Stop()
	i := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		select {
		case <-keyframe:
			i = clip.nextKey(i)
		default:
		}
		// A failed write (a full socket buffer under load) loses this
		// frame, as it would for a browser; the encoder goes on.
		if err := track.WriteSample(media.Sample{Data: clip.frames[i], Duration: dur}); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			writeErrors.Add(1)
		}
		i = (i + 1) % len(clip.frames)
	}
}

// writeErrors counts frames the players could not hand to their
// connection, for the report.
var writeErrors atomic.Uint64

// readRTCP reads one simulcast layer's (or a plain sender's, rid "")
// incoming RTCP, so the interceptors see it (NACKs are answered only for
// what is read), and turns keyframe requests into a signal. It ends when
// the sender closes.
func readRTCP(s *webrtc.RTPSender, rid string, keyframe chan<- struct{}) {
	for {
		var pkts []rtcp.Packet
		var err error
		if rid == "" {
			pkts, _, err = s.ReadRTCP()
		} else {
			pkts, _, err = s.ReadSimulcastRTCP(rid)
		}
		if err != nil {
			return
		}
		if keyframe == nil {
			continue
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				select {
				case keyframe <- struct{}{}:
				default:
				}
			}
		}
	}
}
