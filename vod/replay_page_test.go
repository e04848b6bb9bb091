package vod_test

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"podium/internal/testenv"
	"podium/sfu"
	"podium/signaling/auth"
	"podium/transcode/transcodetest"
	"podium/vod"
)

// pageState is what the replay page shows, read from the real DOM.
type pageState struct {
	CurrentTime   float64 `json:"currentTime"`
	DecodedFrames int     `json:"decodedFrames"`
	Width         int     `json:"width"`
	Levels        int     `json:"levels"`
	Chapters      int     `json:"chapters"`
	Qualities     int     `json:"qualities"`
	Error         string  `json:"error"`
}

const readPage = `(() => {
  const v = document.getElementById('video');
  const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : {totalVideoFrames: 0};
  return {
    currentTime: v.currentTime,
    decodedFrames: q.totalVideoFrames - q.droppedVideoFrames,
    width: v.videoWidth,
    levels: (window.replay && window.replay.hls) ? window.replay.hls.levels.length : 0,
    chapters: document.querySelectorAll('#chapters button').length,
    qualities: document.querySelectorAll('#quality option').length,
    error: document.getElementById('error').hidden ? '' : document.getElementById('error').textContent,
  };
})()`

// TestReplayPagePlaysLesson: a real headless Chromium opens the replay page
// with a student token for one course, finds that course's lesson (and no
// other lesson) in the list, plays it through hls.js with media served by
// Podium, and decodes video frames; switching to the 360p rendition and to
// 2x speed keeps it playing.
func TestReplayPagePlaysLesson(t *testing.T) {
	store := localStore(t)
	s := startServer(t, store, vod.PlaybackPodium)
	transcodetest.WriteRecording(t, store, "math-101", 8, true)
	transcodetest.WriteRecording(t, store, "bio-202", 4, true)
	admin := s.token(t, sfu.RoleAdmin)
	s.waitReady(t, "math-101", admin)
	s.waitReady(t, "bio-202", admin)
	if code := s.do(t, "PUT", "/api/vod/courses/maths-7", admin, vod.CourseRecord{Title: "Maths, year 7"}, nil); code != 200 {
		t.Fatalf("put course: %d", code)
	}
	if code := s.do(t, "PATCH", "/api/vod/lessons/math-101", admin, map[string]string{"course": "maths-7"}, nil); code != 200 {
		t.Fatalf("put the lesson in the course: %d", code)
	}
	student := s.tokenFor(t, auth.Request{Role: auth.RoleStudent, Replay: &auth.Grant{Courses: []string{"maths-7"}}})

	browser := testenv.StartChromium(t)
	ctx, cancel := chromedp.NewContext(browser)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 180*time.Second)
	defer cancelT()

	// The course list shows the lesson as a playable card.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.URL+"/replay#token="+student),
		chromedp.WaitVisible(chromedp.CSS(`li.card[data-lesson="math-101"] a`)),
	); err != nil {
		t.Fatalf("course list: %v", err)
	}
	cards, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('li.card[data-lesson="math-101"] a img').length`))
	if err != nil {
		t.Fatal(err)
	}
	if cards != 1 {
		t.Errorf("lesson card has no poster image")
	}
	others, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('li.card')].map(c => c.dataset.lesson)`))
	if err != nil || len(others) != 1 {
		t.Errorf("the course student's page lists %v (%v), want only math-101", others, err)
	}

	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`li.card[data-lesson="math-101"] a`)),
		chromedp.WaitVisible(chromedp.ID("video")),
	); err != nil {
		t.Fatalf("open lesson: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](`document.getElementById('video').muted = true; document.getElementById('video').play(); true`)); err != nil {
		t.Fatalf("play: %v", err)
	}
	waitPlaying := func(what string, after float64) pageState {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			st, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](readPage))
			if err != nil {
				t.Fatalf("%s: read page: %v", what, err)
			}
			if st.Error != "" {
				t.Fatalf("%s: page shows error %q", what, st.Error)
			}
			if st.CurrentTime > after && st.DecodedFrames > 10 && st.Width > 0 {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not playing: %+v", what, st)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	st := waitPlaying("lesson", 1)
	// hls.js leaves out the audio-only variant when video variants exist
	// (Safari's native player offers it); the page lists Auto + 2.
	if st.Levels != 2 || st.Qualities != 3 || st.Chapters != 2 {
		t.Errorf("player: %d levels, %d quality options, %d chapters; want 2 levels (720p, 360p), 3 options, 2 chapters (the share and its end)", st.Levels, st.Qualities, st.Chapters)
	}

	// Pick 360p: the picture becomes 360 lines high (replaying from the
	// start whenever the short lesson ends before that shows). The loop
	// seeks only once the video has ended and starts it only when paused
	// and not seeking: seeking back to the start every 200 ms, while hls.js
	// was still loading the new level, kept a loaded machine's player at
	// 0 s with the last 720p picture.
	low, err := chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('#quality option')].find(o => o.textContent.startsWith('360p')).value`))
	if err != nil {
		t.Fatalf("no 360p choice: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.ID("quality"), low)); err != nil {
		t.Fatalf("choose 360p: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](`document.getElementById('quality').dispatchEvent(new Event('change')); true`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		height, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`(() => { const v = document.getElementById('video');
		  if (v.ended) { v.currentTime = 0; }
		  if ((v.ended || v.paused) && !v.seeking) { v.play().catch(() => {}); }
		  return v.videoHeight; })()`))
		if height == 360 {
			break
		}
		if time.Now().After(deadline) {
			dbg, _ := chromedp.Run(ctx, chromedp.Evaluate[any](`({cur: window.replay.hls.currentLevel, q: document.getElementById('quality').value, levels: window.replay.hls.levels.map(l => l.height), t: window.replay.video.currentTime, ended: window.replay.video.ended})`))
			t.Fatalf("video height %d after choosing 360p: %v", height, dbg)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// 2x speed from the start: it plays on, twice as fast.
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.ID("speed"), "2")); err != nil {
		t.Fatalf("speed: %v", err)
	}
	rate, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`(() => {
	  document.getElementById('speed').dispatchEvent(new Event('change'));
	  const v = document.getElementById('video'); v.currentTime = 0; v.play(); return v.playbackRate; })()`))
	if err != nil || rate != 2 {
		t.Fatalf("playback rate %v (%v), want 2", rate, err)
	}
	waitPlaying("at 2x speed", 0.5)
}
