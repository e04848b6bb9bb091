package vod

import (
	"reflect"
	"testing"
	"time"
)

// Before a lesson is transcoded its chapters come from the manifest's
// events, the end of a share included; once transcoded, from what the
// composite shows.
func TestLessonChapters(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	m := &Manifest{Events: []ManifestEvent{
		{Time: at(30), Type: "stage", ParticipantID: "c1", Participant: "Hill School"},
		{Time: at(10), Type: "screenStart", Participant: "Ms. Okafor"},
		{Time: at(20), Type: "screenStop"},
		{Time: at(25), Type: "chat", Text: "hello"},
		{Time: at(40), Type: "stage"},
		{Time: at(99), Type: "screenStart"}, // past the end
	}}
	got := lessonChapters(m, nil, t0, 60)
	want := []Chapter{{10, "screenStart", "Screen share: Ms. Okafor"}, {20, "screenStop", "Screen share ended"},
		{30, "stage", "On stage: Hill School"}, {40, "stage", "Back to the teacher"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("from events:\n got %v\nwant %v", got, want)
	}
	composed := []Chapter{{10.5, "screenStart", "Screen share: Ms. Okafor"}, {15, "screenStop", "Screen share ended"}}
	if got := lessonChapters(m, &Assets{Chapters: composed}, t0, 60); !reflect.DeepEqual(got, composed) {
		t.Errorf("from assets: %v", got)
	}
	if got := lessonChapters(m, &Assets{}, t0, 60); !reflect.DeepEqual(got, want) {
		t.Errorf("assets without chapters: %v", got)
	}
}
