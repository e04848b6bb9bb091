// Package audit is the shape of one line of Podium's audit log — who did
// what to which lesson's recording or token — and the small interface the
// parts that act (signaling, vod) write it through. Where lines are kept
// (the replay database) is wired in cmd/podium.
package audit

import (
	"context"
	"time"
)

// Actions recorded.
const (
	LessonRename    = "lesson.rename"
	LessonDelete    = "lesson.delete"
	LessonDownload  = "lesson.download"
	LessonTranscode = "lesson.transcode"
	ClipCreate      = "clip.create"
	ClipDelete      = "clip.delete"
	CourseUpdate    = "course.put"
	CourseDelete    = "course.delete"
	TokenIssue      = "token.issue"
	TokenRevoke     = "token.revoke"
	RetentionDelete = "retention.delete"
)

// Entry is one audit line.
type Entry struct {
	At         time.Time `json:"at"`
	Actor      string    `json:"actor"` // token subject, or "system"
	Role       string    `json:"role,omitempty"`
	Action     string    `json:"action"`
	Lesson     string    `json:"lesson,omitempty"`
	Object     string    `json:"object,omitempty"` // clip id, course id, token id, file
	Detail     string    `json:"detail,omitempty"`
	RemoteAddr string    `json:"remoteAddr,omitempty"`
}

// Recorder keeps audit lines. Record must not fail the action it records:
// implementations log what they cannot keep.
type Recorder interface {
	Record(ctx context.Context, e Entry)
}

// Discard keeps nothing (tests, nodes without a database).
type Discard struct{}

// Record does nothing.
func (Discard) Record(context.Context, Entry) {}
