package transcode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"podium/internal/tailbuf"
)

// errStalled ends an ffmpeg run that stopped reporting progress.
var errStalled = errors.New("ffmpeg stalled")

// runFFmpeg runs ffmpeg with args (it adds the progress flags), calling
// onProgress (may be nil) for every progress report. It never outlives ctx,
// and it kills ffmpeg when no progress arrives for stall, so a worker can
// never hang on a wedged process. A failed run's error ends with the last
// lines ffmpeg wrote to stderr.
func runFFmpeg(ctx context.Context, bin string, stall time.Duration, args []string, onProgress func(Progress)) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	full := append([]string{"-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-progress", "pipe:1", "-nostats"}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.WaitDelay = 5 * time.Second
	cmd.SysProcAttr = childProcAttr()
	stderr := tailbuf.New(4096)
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("ffmpeg pipe: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start ffmpeg: %w", err)
	}

	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		readProgress(stdout, func(p Progress) {
			last.Store(time.Now().UnixNano())
			if onProgress != nil {
				onProgress(p)
			}
		})
	}()
	watchdogDone := make(chan struct{})
	go func() {
		defer wg.Done()
		t := time.NewTicker(stall / 10)
		defer t.Stop()
		for {
			select {
			case <-watchdogDone:
				return
			case <-ctx.Done():
				return
			case now := <-t.C:
				if now.Sub(time.Unix(0, last.Load())) > stall {
					cancel(fmt.Errorf("%w: no progress for %s", errStalled, stall))
					return
				}
			}
		}
	}()
	err = cmd.Wait()
	close(watchdogDone)
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil && errors.Is(cause, errStalled) {
		return cause
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if err != nil {
		return fmt.Errorf("ffmpeg: %v: %s", err, oneLine(stderr))
	}
	return nil
}

// oneLine is ffmpeg's last words on one line, for an error message.
func oneLine(out *tailbuf.Buffer) string {
	s := out.String()
	if s == "" {
		return "(no output)"
	}
	return strings.ReplaceAll(s, "\n", " | ")
}

// probe is what ffprobe tells about a media file.
type probe struct {
	Duration float64
	Width    int
	Height   int
	Video    string // codec name, "" when there is no video stream
	Audio    string
	// FrameRate is the video's frame rate (frames per second), 0 when
	// ffprobe cannot tell.
	FrameRate float64
}

// runFFprobe describes a media file (or playlist).
func runFFprobe(ctx context.Context, bin, path string) (probe, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-v", "error", "-show_entries",
		"format=duration:stream=codec_type,codec_name,width,height,avg_frame_rate,r_frame_rate", "-of", "json", path)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return probe{}, fmt.Errorf("ffprobe: %v: %s", err, strings.TrimSpace(errb.String()))
	}
	var res struct {
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
		Streams []struct {
			Type   string `json:"codec_type"`
			Codec  string `json:"codec_name"`
			Width  int    `json:"width"`
			Height int    `json:"height"`
			Avg    string `json:"avg_frame_rate"`
			Real   string `json:"r_frame_rate"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return probe{}, fmt.Errorf("ffprobe output: %w", err)
	}
	var p probe
	p.Duration, _ = strconv.ParseFloat(res.Format.Duration, 64)
	for _, s := range res.Streams {
		switch s.Type {
		case "video":
			if p.Video == "" {
				p.Video, p.Width, p.Height = s.Codec, s.Width, s.Height
				p.FrameRate = parseRate(s.Avg)
				if p.FrameRate == 0 {
					p.FrameRate = parseRate(s.Real)
				}
			}
		case "audio":
			if p.Audio == "" {
				p.Audio = s.Codec
			}
		}
	}
	return p, nil
}

// parseRate reads ffprobe's "num/den" frame rate; 0 for none or nonsense
// (a timescale such as 90000/1 is not a frame rate).
func parseRate(s string) float64 {
	n, d, ok := strings.Cut(s, "/")
	if !ok {
		d = "1"
	}
	num, err1 := strconv.ParseFloat(n, 64)
	den, err2 := strconv.ParseFloat(d, 64)
	if err1 != nil || err2 != nil || num <= 0 || den <= 0 {
		return 0
	}
	if r := num / den; r <= 240 {
		return r
	}
	return 0
}
