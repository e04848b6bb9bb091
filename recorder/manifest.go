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

	// State is StateRecording, StateInterrupted or StateComplete (empty in
	// manifests of older versions: Complete says it).
	State string `json:"state,omitempty"`
	// Node is the recorder that owns the recording (Config.Node): only it
	// writes the manifest while the lesson is recording or interrupted.
	Node string `json:"node,omitempty"`
	// Heartbeat is when Node last wrote the manifest (its wall clock); it
	// rewrites it at least every HeartbeatInterval while it holds the
	// lesson, so a manifest not complete with an old heartbeat was left by
	// a node that died, and another node may close it.
	Heartbeat time.Time `json:"heartbeat,omitzero"`
	// Interruptions are the stretches in which the lesson's recorder was
	// gone (killed, stopped, storage down at its shutdown): each is marked
	// where the replay jumps over it.
	Interruptions []ManifestInterruption `json:"interruptions,omitempty"`
}

// Manifest states.
const (
	StateRecording   = "recording"   // Node is recording the lesson
	StateInterrupted = "interrupted" // stopped before the lesson ended: it resumes or is closed
	StateComplete    = "complete"    // the lesson ended and every segment is in storage
)

// ManifestInterruption is one stretch in which nothing was recorded
// because the recorder itself was gone. Every time in the manifest
// (segment starts, gaps, events, EndedAt) is on the recording clock: the
// wall clock minus the Cut of every interruption before it, so a lesson
// resumed after a restart continues its timeline after a short pause
// instead of carrying the downtime as minutes of frozen video.
type ManifestInterruption struct {
	// At is where the recording clock jumps: the end of the last media
	// recorded before.
	At time.Time `json:"at"`
	// From and To are the wall-clock stretch: from the last media recorded
	// to the resume (or to when a node found the recording and closed it).
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Cut is how much of it the recording clock leaves out: all but
	// ResumePause for a resumed lesson, 0 for one closed at its end.
	Cut    time.Duration `json:"cut"`
	Reason string        `json:"reason"`
}

// ResumePause is what is left of an interruption in a resumed recording:
// a one-second pause (the last picture held, silence) that marks the jump.
const ResumePause = time.Second

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
