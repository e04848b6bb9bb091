package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"time"

	"podium/transcode"
)

// newTranscodeQueue builds the transcode job queue on the replay database.
// With --vod-transcode and ffmpeg found it has workers and scans storage
// for completed recordings; otherwise it only queues jobs (clips, explicit
// transcodes) for the worker nodes sharing the database and answers the
// jobs API for them.
func newTranscodeQueue(a *app) (*transcode.Queue, error) {
	f := vodFlags
	ladder, err := parseLadder(f.ladder)
	if err != nil {
		return nil, err
	}
	workers := f.workers
	switch {
	case !f.transcode:
		workers = -1
	case workers <= 0:
		return nil, errors.New("--vod-workers must be at least 1 (--vod-transcode=false runs none)")
	}
	if f.jobTimeout <= 0 || f.rescueAfter < time.Second || f.rescueAfter >= f.jobTimeout {
		return nil, fmt.Errorf("--vod-job-rescue-after (%s) must be at least 1s and less than --vod-job-timeout (%s)", f.rescueAfter, f.jobTimeout)
	}
	if workers > 0 {
		if _, err := exec.LookPath(f.ffmpeg); err != nil {
			a.log.Warn("vod: ffmpeg not found; this node runs no transcode jobs", "ffmpeg", f.ffmpeg, "err", err)
			workers = -1
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	q, err := transcode.NewQueue(ctx, a.db, a.store, transcode.QueueConfig{
		Config:  transcode.Config{FFmpeg: f.ffmpeg, FFprobe: f.ffprobe, Ladder: ladder, Preset: f.preset, StallTimeout: f.stall},
		Workers: workers, MaxAttempts: f.maxAttempts, PollInterval: f.poll,
		JobTimeout: f.jobTimeout, RescueAfter: f.rescueAfter,
		RetentionEvery: retentionEvery(f.retention),
	}, a.log.With("part", "transcode"), transcode.NewMetrics(a.reg))
	if err != nil {
		return nil, err
	}
	a.onClose(func(context.Context) error {
		q.Close()
		return nil
	})
	return q, nil
}

// runTranscodeQueue runs q until the node closes; then its running jobs
// are stopped and go back to the queue (for any node) without counting as
// an attempt.
func runTranscodeQueue(a *app, q *transcode.Queue) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	a.onClose(func(closeCtx context.Context) error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-closeCtx.Done():
			return errors.Join(errors.New("vod: transcode workers did not stop in time"), closeCtx.Err())
		}
	})
}

// retentionEvery is how often a retention pass runs: hourly when
// --vod-retention is set, never otherwise.
func retentionEvery(retention daysFlag) time.Duration {
	if retention > 0 {
		return time.Hour
	}
	return 0
}
