package vod

// CONTRACT: Assets is what package transcode writes and package vod reads.
// It is stored as JSON at {base}assets.json, where base is LessonBase or
// ClipBase, and written last, after every file it names is in storage: its
// presence means the asset is complete and playable.

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"time"
)

// AssetsVersion is bumped on incompatible changes.
const AssetsVersion = 1

// PosterFile is the name of a lesson's (or clip's) poster image under its
// VOD base; transcode writes it, lists link it without reading assets.json.
const PosterFile = "poster.jpg"

// Assets describes one playable VOD asset (a whole lesson or a clip). Every
// path in it is relative to the asset's base key.
type Assets struct {
	Version int    `json:"version"`
	Lesson  string `json:"lesson"`
	Clip    string `json:"clip,omitempty"`
	Title   string `json:"title,omitempty"`
	// Duration of the asset in seconds.
	Duration float64 `json:"duration"`
	// StartedAt is the wall-clock time of the asset's t=0, so recorded
	// events (chapters) can be placed on its timeline.
	StartedAt time.Time `json:"startedAt"`
	// ClipStart and ClipEnd are the clip's range in the lesson, in seconds.
	ClipStart float64 `json:"clipStart,omitempty"`
	ClipEnd   float64 `json:"clipEnd,omitempty"`
	// Layout names how the picture was composed: "composite" (the
	// screen share and whoever is on stage, with the teacher camera as
	// picture-in-picture, as they were shown during the lesson) or
	// "camera" (the teacher camera alone).
	Layout string `json:"layout"`
	// Chapters are the changes of what the replay shows (a screen share
	// starting or ending, someone going on or off stage), as transcode
	// composed it; absent in older assets, whose chapters come from the
	// manifest's events.
	Chapters   []Chapter   `json:"chapters,omitempty"`
	Master     string      `json:"master"` // HLS master playlist
	Renditions []Rendition `json:"renditions"`
	Download   string      `json:"download,omitempty"`   // single MP4
	Poster     string      `json:"poster,omitempty"`     // JPEG
	Thumbnails string      `json:"thumbnails,omitempty"` // WebVTT pointing into Sprites (#xywh=)
	Sprites    []string    `json:"sprites,omitempty"`
	CreatedAt  time.Time   `json:"createdAt"`
}

// Rendition is one HLS variant.
type Rendition struct {
	Name       string `json:"name"` // "720p", "audio"
	Width      int    `json:"width,omitempty"`
	Height     int    `json:"height,omitempty"`
	Bandwidth  int    `json:"bandwidth"` // bits/s, peak as announced in the master playlist
	Codecs     string `json:"codecs"`    // RFC 6381, as in the master playlist
	Playlist   string `json:"playlist"`  // media playlist
	AudioOnly  bool   `json:"audioOnly,omitempty"`
	VideoCodec string `json:"videoCodec,omitempty"` // "h264"
	AudioCodec string `json:"audioCodec,omitempty"` // "aac"
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidID reports whether s is usable as a lesson, clip or course id: 1 to
// 64 letters, digits, '.', '_' or '-', not starting with a punctuation mark
// (so never "." or "..").
func ValidID(s string) bool { return idPattern.MatchString(s) }

// LessonBase is the key prefix of a lesson's VOD assets.
func LessonBase(lesson string) string { return "lessons/" + lesson + "/vod/" }

// ClipBase is the key prefix of one clip's VOD assets.
func ClipBase(lesson, clip string) string { return LessonBase(lesson) + "clips/" + clip + "/" }

// ClipsPrefix is the key prefix under which every clip of a lesson lives.
func ClipsPrefix(lesson string) string { return LessonBase(lesson) + "clips/" }

// ManifestKey is where the recorder keeps a lesson's manifest.
func ManifestKey(lesson string) string { return "lessons/" + lesson + "/manifest.json" }

// AssetsFile is the name of the assets record inside a base.
const AssetsFile = "assets.json"

// ClipRequest asks for a micro-lecture clip cut out of a lesson.
type ClipRequest struct {
	ID    string  `json:"id"`
	Title string  `json:"title"`
	Start float64 `json:"start"` // seconds into the lesson
	End   float64 `json:"end"`
}

// Validate checks the request against the lesson's duration (seconds; 0 =
// unknown: the end is then bounded by a week, longer than any lesson).
// Start and end must be finite, 0 <= start < end, at least 1 s apart, and
// within the lesson (the end may pass its duration by half a second: a
// player's idea of the duration can differ from the recording's by a frame
// or a rounding).
func (c ClipRequest) Validate(lessonDuration float64) error {
	const (
		maxLessonSeconds = 7 * 24 * 3600
		clipEndSlack     = 0.5
	)
	limit := float64(maxLessonSeconds)
	if lessonDuration > 0 && !math.IsInf(lessonDuration, 0) && !math.IsNaN(lessonDuration) {
		limit = lessonDuration
	}
	// The range first: an id derived from an absurd range is itself
	// absurd, and the range is what the caller got wrong.
	switch {
	case math.IsNaN(c.Start) || math.IsInf(c.Start, 0) || math.IsNaN(c.End) || math.IsInf(c.End, 0):
		return errors.New("clip start and end must be finite numbers of seconds")
	case c.Start < 0 || c.End <= c.Start:
		return fmt.Errorf("clip range must satisfy 0 <= start < end, got %g..%g", c.Start, c.End)
	case c.End-c.Start < 1:
		return fmt.Errorf("clip must be at least 1 s long")
	case c.Start >= limit:
		if lessonDuration > 0 {
			return fmt.Errorf("clip starts at %g s, after the lesson's end (%.3f s)", c.Start, lessonDuration)
		}
		return fmt.Errorf("clip starts at %g s, past the longest lesson (%d s)", c.Start, maxLessonSeconds)
	case c.End > limit+clipEndSlack:
		if lessonDuration > 0 {
			return fmt.Errorf("clip ends at %g s, after the lesson's end (%.3f s)", c.End, lessonDuration)
		}
		return fmt.Errorf("clip ends at %g s, past the longest lesson (%d s)", c.End, maxLessonSeconds)
	case !ValidID(c.ID):
		return fmt.Errorf("invalid clip id %q", c.ID)
	case len(c.Title) > 200:
		return fmt.Errorf("title is longer than 200 characters")
	}
	return nil
}
