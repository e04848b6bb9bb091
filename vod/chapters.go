package vod

import (
	"math"
	"sort"
	"time"
)

// lessonChapters are the chapters of a lesson's replay: once transcoded,
// the changes of what its composite shows (Assets.Chapters, which
// transcode writes from the same plan that draws the picture: a share
// muted ends, a classroom appears when its picture does); before that, or
// for assets of older versions, the changes the manifest's events name.
func lessonChapters(m *Manifest, a *Assets, start time.Time, duration float64) []Chapter {
	if a != nil && len(a.Chapters) > 0 {
		return a.Chapters
	}
	return eventChapters(m.Events, start, duration)
}

// eventChapters makes markers of screen shares starting and stopping and
// of on-stage changes.
func eventChapters(events []ManifestEvent, start time.Time, duration float64) []Chapter {
	var out []Chapter
	for _, ev := range events {
		t := math.Max(0, ev.Time.Sub(start).Seconds())
		if duration > 0 && t > duration {
			continue
		}
		var title string
		switch ev.Type {
		case "stage":
			title = "Back to the teacher"
			if ev.Participant != "" {
				title = "On stage: " + ev.Participant
			} else if ev.ParticipantID != "" {
				title = "On stage: " + ev.ParticipantID
			}
		case "screenStart":
			title = "Screen share"
			if ev.Participant != "" {
				title = "Screen share: " + ev.Participant
			}
		case "screenStop":
			title = "Screen share ended"
		default:
			continue
		}
		out = append(out, Chapter{Time: math.Round(t*1000) / 1000, Type: ev.Type, Title: title})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time < out[j].Time })
	return out
}
