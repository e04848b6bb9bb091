package recorder

// CONTRACT: Manifest is what transcode and vod read to rebuild a lesson. It
// is stored as JSON at lessons/{lesson}/manifest.json and rewritten (whole)
// whenever a segment closes or something worth a chapter happens.

import "time"

// ManifestVersion is bumped on incompatible changes.
const ManifestVersion = 1

// Manifest describes one lesson's recording.
type Manifest struct {
	Version   int       `json:"version"`
	Lesson    string    `json:"lesson"`
	Title     string    `json:"title,omitempty"`
	Teacher   string    `json:"teacher,omitempty"` // teacher's display name
	StartedAt time.Time `json:"startedAt"`
	// EndedAt is zero while the lesson is live; set when the recording is
	// complete and every segment is in storage.
	EndedAt  time.Time       `json:"endedAt,omitempty"`
	Complete bool            `json:"complete"`
	Tracks   []ManifestTrack `json:"tracks"`
	Events   []ManifestEvent `json:"events"`
}

// ManifestTrack is one recorded track: a fragmented MP4 init segment and its
// media segments.
type ManifestTrack struct {
	ID            string `json:"id"` // storage-safe track id, used in keys
	ParticipantID string `json:"participantId"`
	Participant   string `json:"participant"` // display name
	Role          string `json:"role"`        // teacher, classroom, source
	Kind          string `json:"kind"`        // audio | video
	Source        string `json:"source"`      // camera, microphone, screen, whiteboard, ...
	Codec         string `json:"codec"`       // "h264", "vp8", "opus", ...
	// TimeScale is the track's media clock (ticks per second) used by
	// MediaStart and MediaDuration: 90000 for video, 48000 for Opus.
	TimeScale uint32 `json:"timescale,omitempty"`
	// Init is the storage key of the init segment.
	Init     string            `json:"init"`
	Segments []ManifestSegment `json:"segments"`
	Gaps     []ManifestGap     `json:"gaps,omitempty"`
}

// ManifestSegment is one closed, uploaded segment.
type ManifestSegment struct {
	Seq      int           `json:"seq"`
	Key      string        `json:"key"`
	Start    time.Time     `json:"start"` // wall-clock time of its first sample
	Duration time.Duration `json:"duration"`
	// MediaStart is the segment's decode time in the track's timescale
	// (tfdt), monotonic across the whole track.
	MediaStart uint64 `json:"mediaStart"`
	// MediaDuration is Duration in the track's timescale (exact).
	MediaDuration uint64 `json:"mediaDuration,omitempty"`
	Bytes         int64  `json:"bytes"`
}

// ManifestGap marks a stretch with no media for a track (publisher gone,
// muted, reconnecting).
type ManifestGap struct {
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Reason string    `json:"reason"`
}

// ManifestEvent is a moment worth a chapter marker on replay.
type ManifestEvent struct {
	Time time.Time `json:"time"`
	// Type is one of: "stage" (Participant is on stage, "" = none),
	// "screenStart", "screenStop", "chat", "join", "leave".
	Type          string `json:"type"`
	ParticipantID string `json:"participantId,omitempty"`
	Participant   string `json:"participant,omitempty"`
	Text          string `json:"text,omitempty"`
}
