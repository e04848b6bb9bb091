package vod

import (
	"context"
	"fmt"
	"time"

	"podium/internal/audit"
)

// Retention deletes, with their VOD assets and clips, the finished lessons
// of the catalog that started more than Config.Retention ago, and writes an audit line for
// each. A lesson still recording is never deleted. It returns the lessons
// deleted; a lesson that fails to delete is reported and tried again at
// the next pass.
func (s *Service) Retention(ctx context.Context) ([]string, error) {
	if s.cfg.Retention <= 0 {
		return nil, nil
	}
	cutoff := s.now().Add(-s.cfg.Retention)
	candidates, err := s.db.LessonsStartedBefore(ctx, cutoff)
	if err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	// Storage decides: a lesson is deleted only when its manifest says it
	// is finished and started before the cutoff.
	var old []*lessonEntry
	for _, c := range candidates {
		e, err := s.readLesson(ctx, c.ID)
		if err != nil {
			continue
		}
		if e.manifest.Complete && e.manifest.StartedAt.Before(cutoff) {
			old = append(old, e)
		}
	}
	var deleted []string
	var errs []error
	for _, e := range old {
		if err := s.deleteLesson(ctx, e.id); err != nil {
			errs = append(errs, fmt.Errorf("retention: lesson %s: %w", e.id, err))
			continue
		}
		deleted = append(deleted, e.id)
		s.cfg.Audit.Record(ctx, audit.Entry{At: s.now(), Actor: "system", Action: audit.RetentionDelete, Lesson: e.id,
			Detail: fmt.Sprintf("%q started %s, older than the %s retention", e.title(), e.manifest.StartedAt.Format(time.RFC3339), s.cfg.Retention)})
		s.log.Info("vod: retention deleted a lesson", "lesson", e.id, "started", e.manifest.StartedAt)
	}
	if len(errs) > 0 {
		return deleted, fmt.Errorf("%v (and %d more)", errs[0], len(errs)-1)
	}
	return deleted, nil
}
