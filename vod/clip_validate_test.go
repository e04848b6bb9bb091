package vod

import (
	"math"
	"strings"
	"testing"
)

// ClipRequest.Validate: a clip must be a finite range 0 <= start < end of at
// least a second inside the lesson (half a second of slack at the end);
// with the duration unknown (0) the end is bounded by a week. Absurd ranges
// (end 1e308, which overflowed the derived clip id) are refused for the
// range, before the id is looked at.
func TestClipRequestValidateRanges(t *testing.T) {
	const lesson = 600.0 // a 10-minute lesson
	inf, nan := math.Inf(1), math.NaN()
	for _, tc := range []struct {
		name     string
		c        ClipRequest
		duration float64
		err      string // "" = valid; else part of the error
	}{
		{"ok", ClipRequest{ID: "fractions", Start: 10, End: 70}, lesson, ""},
		{"whole lesson", ClipRequest{ID: "all", Start: 0, End: lesson}, lesson, ""},
		{"end within slack", ClipRequest{ID: "all", Start: 0, End: lesson + 0.4}, lesson, ""},
		{"exactly 1 s", ClipRequest{ID: "one", Start: 5, End: 6}, lesson, ""},
		{"unknown duration", ClipRequest{ID: "later", Start: 3600, End: 7200}, 0, ""},

		{"end 1e308", ClipRequest{ID: "x", Start: 0, End: 1e308}, lesson, "after the lesson's end"},
		{"end 1e308 with the id it overflowed", ClipRequest{ID: "x-0--9223372036854775808", Start: 0, End: 1e308}, lesson, "after the lesson's end"},
		{"end 1e308, duration unknown", ClipRequest{ID: "x", Start: 0, End: 1e308}, 0, "past the longest lesson"},
		{"end past the lesson", ClipRequest{ID: "x", Start: 500, End: 601}, lesson, "after the lesson's end"},
		{"start past the lesson", ClipRequest{ID: "x", Start: 700, End: 710}, lesson, "after the lesson's end"},
		{"start at the end", ClipRequest{ID: "x", Start: lesson, End: lesson + 0.5}, lesson, "1 s"},
		{"start past a week", ClipRequest{ID: "x", Start: 7*24*3600 + 1, End: 7*24*3600 + 10}, 0, "past the longest lesson"},
		{"negative start", ClipRequest{ID: "x", Start: -5, End: 10}, lesson, "0 <= start < end"},
		{"negative end", ClipRequest{ID: "x", Start: 0, End: -1}, lesson, "0 <= start < end"},
		{"start == end", ClipRequest{ID: "x", Start: 30, End: 30}, lesson, "0 <= start < end"},
		{"start > end", ClipRequest{ID: "x", Start: 40, End: 30}, lesson, "0 <= start < end"},
		{"shorter than 1 s", ClipRequest{ID: "x", Start: 30, End: 30.5}, lesson, "at least 1 s"},
		{"NaN start", ClipRequest{ID: "x", Start: nan, End: 30}, lesson, "finite"},
		{"NaN end", ClipRequest{ID: "x", Start: 0, End: nan}, lesson, "finite"},
		{"+Inf end", ClipRequest{ID: "x", Start: 0, End: inf}, lesson, "finite"},
		{"+Inf end, duration unknown", ClipRequest{ID: "x", Start: 0, End: inf}, 0, "finite"},
		{"-Inf start", ClipRequest{ID: "x", Start: math.Inf(-1), End: 10}, lesson, "finite"},
		{"bad id", ClipRequest{ID: "../x", Start: 0, End: 10}, lesson, "invalid clip id"},
		{"empty id", ClipRequest{ID: "", Start: 0, End: 10}, lesson, "invalid clip id"},
		{"long title", ClipRequest{ID: "x", Title: strings.Repeat("t", 201), Start: 0, End: 10}, lesson, "200 characters"},
		{"NaN duration is unknown", ClipRequest{ID: "x", Start: 0, End: 10}, nan, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate(tc.duration)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.err != "" && err == nil:
				t.Fatalf("accepted, want an error about %q", tc.err)
			case tc.err != "" && !strings.Contains(err.Error(), tc.err):
				t.Fatalf("error %q, want it to say %q", err, tc.err)
			case err != nil && len(err.Error()) > 200:
				t.Fatalf("error of %d bytes: %.80s...", len(err.Error()), err)
			}
		})
	}
}
