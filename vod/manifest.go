package vod

import "time"

// Manifest is the part of the recorder's manifest (CONTRACT in
// recorder/manifest.go, stored at lessons/{lesson}/manifest.json) that VOD
// reads. It is decoded from the JSON rather than imported, so that vod and
// transcode do not link the recorder and, through it, WebRTC; the JSON
// field names are the contract. Unknown fields are ignored, so the recorder
// may add some freely.
type Manifest struct {
	Version   int             `json:"version"`
	Lesson    string          `json:"lesson"`
	Title     string          `json:"title,omitempty"`
	Teacher   string          `json:"teacher,omitempty"`
	StartedAt time.Time       `json:"startedAt"`
	EndedAt   time.Time       `json:"endedAt,omitempty"`
	Complete  bool            `json:"complete"`
	Tracks    []ManifestTrack `json:"tracks"`
	Events    []ManifestEvent `json:"events"`
	// State is "recording", "interrupted" or "complete" ("" in older
	// manifests).
	State string `json:"state,omitempty"`
}

// Empty reports whether no track has a recorded segment.
func (m *Manifest) Empty() bool {
	for _, t := range m.Tracks {
		if len(t.Segments) > 0 {
			return false
		}
	}
	return true
}

// ManifestVersion is the recorder's manifest version this code reads.
const ManifestVersion = 1

// ManifestTrack is one recorded track.
type ManifestTrack struct {
	ID            string            `json:"id"`
	ParticipantID string            `json:"participantId"`
	Participant   string            `json:"participant"`
	Role          string            `json:"role"`
	Kind          string            `json:"kind"`
	Source        string            `json:"source"`
	Codec         string            `json:"codec"`
	TimeScale     uint32            `json:"timescale,omitempty"` // ticks per second of MediaStart (0: 90000 video, 48000 Opus)
	Init          string            `json:"init"`
	Segments      []ManifestSegment `json:"segments"`
}

// ManifestSegment is one uploaded fMP4 media segment.
type ManifestSegment struct {
	Seq        int           `json:"seq"`
	Key        string        `json:"key"`
	Start      time.Time     `json:"start"`
	Duration   time.Duration `json:"duration"`
	MediaStart uint64        `json:"mediaStart"`
	// MediaDuration is Duration in the track's timescale (0 in older
	// manifests: Duration then says it).
	MediaDuration uint64 `json:"mediaDuration,omitempty"`
	Bytes         int64  `json:"bytes"`
}

// ManifestEvent is a moment worth a chapter marker.
type ManifestEvent struct {
	Time          time.Time `json:"time"`
	Type          string    `json:"type"`
	ParticipantID string    `json:"participantId,omitempty"`
	Participant   string    `json:"participant,omitempty"`
	Text          string    `json:"text,omitempty"`
}

// Duration is the recording's length as far as the manifest knows.
func (m *Manifest) Duration() time.Duration {
	if !m.EndedAt.IsZero() && m.EndedAt.After(m.StartedAt) {
		return m.EndedAt.Sub(m.StartedAt)
	}
	var d time.Duration
	for _, t := range m.Tracks {
		if n := len(t.Segments); n > 0 {
			last := t.Segments[n-1]
			if e := last.Start.Add(last.Duration).Sub(m.StartedAt); e > d {
				d = e
			}
		}
	}
	return d
}
