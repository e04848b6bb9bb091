package recorder

import (
	"context"
	"time"
)

// Recovery: a recording must end even when its recorder did not see the
// lesson end (kill -9, a shutdown mid-lesson, storage down at the time).
//
//   - This node's own: the spool keeps every closed segment and the full
//     manifest (state.json). At start each is uploaded and the lesson is
//     held "interrupted" for ResumeGrace; a lesson that comes back in that
//     time continues the recording (cutDowntimeLocked cuts the downtime when its first track is recorded again), else
//     it is closed at its last recorded media and transcode takes it.
//   - Another node's: a manifest not complete whose owner has not written
//     it for TakeoverAfter (heartbeat and storage time both) is adopted and
//     closed the same way. A live owner's lesson is never touched.

// holdInterrupted waits ResumeGrace for an interrupted lesson to resume
// before closing it.
func (r *Recorder) holdInterrupted(l *lesson) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.resumeTimer != nil {
		l.resumeTimer.Stop()
	}
	grace := max(r.cfg.ResumeGrace, 0)
	l.resumeTimer = time.AfterFunc(grace, func() {
		if r.ctx.Err() == nil {
			r.closeInterrupted(l, "the lesson did not resume after the recorder stopped")
		}
	})
}

// closeInterrupted ends a recording that was interrupted and not resumed:
// it ends at its last recorded media (not now: the downtime is no part of
// the lesson), the interruption is marked, and it completes once every
// spooled segment is in storage.
func (r *Recorder) closeInterrupted(l *lesson, reason string) {
	l.mu.Lock()
	if l.recording || l.ended {
		l.mu.Unlock()
		return
	}
	end := l.lastMediaEndLocked()
	if end.IsZero() {
		end = l.man.StartedAt // nothing recorded: an empty lesson
	}
	now, from := time.Now(), end.Add(l.shift)
	l.man.EndedAt = end
	l.man.Interruptions = append(l.man.Interruptions, ManifestInterruption{At: end, From: from, To: now, Reason: reason})
	l.ended = true
	l.saveStateLocked()
	pending := len(l.pending)
	l.mu.Unlock()
	r.log.Info("recorder: closing an interrupted recording at its last media", "lesson", l.id,
		"ended_at", end, "downtime", now.Sub(from).Round(time.Second), "objects_pending", pending, "reason", reason)
}

// watch rewrites the manifests of the lessons this node holds every
// HeartbeatInterval (so other nodes know they are owned) and looks for
// recordings other nodes left unfinished at start and every minute.
func (r *Recorder) watch(ctx context.Context) {
	beat := time.NewTicker(r.cfg.HeartbeatInterval)
	defer beat.Stop()
	scan := time.NewTicker(min(time.Minute, r.cfg.TakeoverAfter/2))
	defer scan.Stop()
	r.adoptOrphans(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			r.heartbeat()
		case <-scan.C:
			r.adoptOrphans(ctx)
		}
	}
}

// heartbeat queues a manifest upload for every lesson this node holds and
// has not finished.
func (r *Recorder) heartbeat() {
	r.mu.Lock()
	ls := make([]*lesson, 0, len(r.lessons))
	for _, l := range r.lessons {
		ls = append(ls, l)
	}
	r.mu.Unlock()
	for _, l := range ls {
		l.mu.Lock()
		if !l.complete {
			l.queueManifestLocked()
		}
		l.mu.Unlock()
	}
}

// adoptOrphans closes the unfinished recordings of OpenLessons that no live
// node holds: this node's own (its spool was lost) after ResumeGrace,
// another node's once its heartbeat is TakeoverAfter old.
func (r *Recorder) adoptOrphans(ctx context.Context) {
	if r.cfg.OpenLessons == nil {
		return
	}
	ids, err := r.cfg.OpenLessons(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("recorder: listing unfinished recordings failed", "err", err)
		}
		return
	}
	for _, id := range ids {
		r.mu.Lock()
		held := r.lessons[id] != nil
		r.mu.Unlock()
		if held {
			continue
		}
		m, written := r.loadStoredManifest(id)
		if m.Lesson == "" || m.Complete {
			continue
		}
		last := written
		if m.Heartbeat.After(last) {
			last = m.Heartbeat
		}
		mine := m.Node == r.cfg.Node
		if !mine && time.Since(last) < r.cfg.TakeoverAfter {
			continue // its node is alive: it is recording or will close it
		}
		l := newLesson(r, m)
		r.mu.Lock()
		if r.closed || r.lessons[id] != nil {
			r.mu.Unlock()
			continue
		}
		r.lessons[id] = l
		r.mu.Unlock()
		if mine {
			r.log.Warn("recorder: found a recording this node left interrupted (its spool is gone); closing it unless the lesson resumes",
				"lesson", id, "resume_grace", r.cfg.ResumeGrace)
			r.holdInterrupted(l)
			continue
		}
		r.log.Warn("recorder: taking over a recording left unfinished by a node that is gone",
			"lesson", id, "node", m.Node, "last_written", last)
		r.closeInterrupted(l, "the recording node "+m.Node+" stopped and did not come back")
	}
}
