package transcode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"podium/storage"
	"podium/vod"
)

// scanState is what this node learned of recordings, so a poll reads no
// more than what changed.
type scanState struct {
	// done: lessons with assets or a job; never looked at again.
	done map[string]bool
	// seen: the manifest version of a lesson whose recording was not
	// complete when last read. (Not its time: S3 keeps that to the
	// second, and a recording's last two manifests, "stopped" and
	// "complete", are often written within one.)
	seen map[string]string
}

func newScanState() scanState {
	return scanState{done: map[string]bool{}, seen: map[string]string{}}
}

// manifestVersion tells one write of a manifest from another.
func manifestVersion(st storage.ObjectInfo) string {
	if st.Version != "" {
		return st.Version
	}
	return st.LastModified.Format(time.RFC3339Nano) + "-" + strconv.FormatInt(st.Size, 10)
}

// poll scans for completed recordings every PollInterval.
func (q *Queue) poll(ctx context.Context) {
	t := time.NewTicker(q.cfg.PollInterval)
	defer t.Stop()
	for {
		if err := q.ScanRecordings(ctx); err != nil && ctx.Err() == nil {
			q.log.Warn("transcode: scanning recordings failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ScanRecordings queues a lesson job for every complete recording that has
// neither VOD assets nor a job. Its cost does not grow with segments: one
// delimiter listing of lessons/ (lesson ids, not their objects), then per
// lesson not yet known one Stat of the manifest, and the manifest and its
// assets record only when the manifest changed. Several nodes may scan the
// same storage: the job is unique per lesson, so each recording is queued
// once.
func (q *Queue) ScanRecordings(ctx context.Context) error {
	ids, err := q.store.ListDirs(ctx, "lessons/")
	if err != nil {
		return fmt.Errorf("list lessons: %w", err)
	}
	for _, lesson := range ids {
		if !vod.ValidID(lesson) {
			continue
		}
		q.mu.Lock()
		done := q.scan.done[lesson]
		seen, looked := q.scan.seen[lesson]
		q.mu.Unlock()
		if done {
			continue
		}
		st, err := q.store.Stat(ctx, vod.ManifestKey(lesson))
		if errors.Is(err, storage.ErrNotFound) {
			continue // no recording (yet)
		}
		if err != nil {
			return fmt.Errorf("stat manifest of %s: %w", lesson, err)
		}
		if looked && seen == manifestVersion(st) {
			continue
		}
		queue, err := q.needsJob(ctx, lesson)
		if err != nil {
			q.log.Warn("transcode: reading a recording failed", "lesson", lesson, "err", err)
			continue
		}
		q.mu.Lock()
		if queue == scanWait {
			q.scan.seen[lesson] = manifestVersion(st)
		} else {
			delete(q.scan.seen, lesson)
		}
		q.mu.Unlock()
		if queue != scanQueue {
			if queue == scanDone {
				q.markDone(lesson)
			}
			continue
		}
		if _, err := q.jobs.client.Insert(ctx, LessonArgs{Lesson: lesson}, q.insertOpts()); err != nil {
			return fmt.Errorf("queue lesson %s: %w", lesson, err)
		}
		// Inserted, or another node's (or an earlier) job is there.
		q.markDone(lesson)
	}
	return nil
}

func (q *Queue) markDone(lesson string) {
	q.mu.Lock()
	q.scan.done[lesson] = true
	q.mu.Unlock()
}

// What a scan does with a lesson.
const (
	scanWait  = iota // recording not complete: look again when it changes
	scanDone         // transcoded already (by any version): never again
	scanQueue        // complete and not transcoded: queue it
)

// needsJob reads a changed manifest (and whether assets exist).
func (q *Queue) needsJob(ctx context.Context, lesson string) (int, error) {
	if _, err := q.store.Stat(ctx, vod.LessonBase(lesson)+vod.AssetsFile); err == nil {
		return scanDone, nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return scanWait, fmt.Errorf("stat assets: %w", err)
	}
	b, err := readAll(ctx, q.store, vod.ManifestKey(lesson))
	if err != nil {
		return scanWait, err
	}
	var m vod.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		// Broken: looked at again when it changes.
		q.log.Warn("transcode: unreadable manifest", "lesson", lesson, "err", err)
		return scanWait, nil
	}
	if !m.Complete {
		return scanWait, nil
	}
	if m.Empty() {
		return scanDone, nil // nothing was recorded: the catalog says so, no job
	}
	return scanQueue, nil
}
