package clients

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"podium/internal/testenv"
	"podium/storage/local"
	"podium/transcode/transcodetest"
)

// replayPage is what the replay page shows, read from the DOM and the
// video element (getVideoPlaybackQuality).
type replayPage struct {
	Title        string  `json:"title"`
	CurrentTime  float64 `json:"currentTime"`
	Duration     float64 `json:"duration"`
	Frames       int     `json:"frames"`
	Width        int     `json:"width"`
	Error        string  `json:"error"`
	EditShown    bool    `json:"editShown"`
	ClipToolShow bool    `json:"clipToolShown"`
}

const readReplay = `(() => {
  const v = document.getElementById('video');
  const q = v.getVideoPlaybackQuality();
  const shown = (id) => { const e = document.getElementById(id); return !!e && e.getClientRects().length > 0; };
  return {
    title: document.getElementById('lesson-title').textContent,
    currentTime: v.currentTime, duration: v.duration || 0,
    frames: q.totalVideoFrames - q.droppedVideoFrames, width: v.videoWidth,
    error: document.getElementById('error').hidden ? '' : document.getElementById('error').textContent,
    editShown: shown('edit-title'), clipToolShown: shown('cliptool'),
  };
})()`

func (p *page) replay(t *testing.T) replayPage {
	t.Helper()
	var r replayPage
	if err := p.eval(readReplay, &r); err != nil {
		t.Logf("%s: read replay page: %v", p.name, err)
	}
	return r
}

// waitReplayPlaying starts the player (muted, as autoplay allows) and
// waits until it decodes frames past a second in.
func (p *page) waitReplayPlaying(t *testing.T, what string) replayPage {
	t.Helper()
	var r replayPage
	p.waitUntil(t, what+" playing", func() (bool, string) {
		_ = p.eval(`(() => { const v = document.getElementById('video'); v.muted = true;
			if (v.paused && v.readyState >= 1) { if (v.ended) v.currentTime = 0; v.play().catch(() => {}); } return true; })()`, nil)
		r = p.replay(t)
		return r.Error == "" && r.CurrentTime > 1 && r.Frames > 10 && r.Width > 0, fmt.Sprintf("%+v", r)
	})
	return r
}

// clear empties an input or text area (select all, delete).
func (p *page) clear(t *testing.T, id string) {
	t.Helper()
	p.do(t, fmt.Sprintf(`(() => { const e = document.getElementById(%q); e.focus(); e.select(); return document.execCommand('delete'); })()`, id))
}

// vodLesson asks the VOD API about a lesson.
func vodLesson(t *testing.T, node *testenv.Podium, token, id string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", node.URL+"/api/vod/lessons/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET lesson: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var l map[string]any
	_ = json.Unmarshal(b, &l)
	return resp.StatusCode, l
}

// TestReplayPageSignInTitleAndClips drives the replay page in Chromium
// against `podium serve` with a recorded (then transcoded) lesson: the
// sign-in box says which token it takes, refuses a bad one in place, and
// lets a student in with a pasted replay link; the student can watch but
// not edit; the lesson's teacher renames the lesson and cuts a
// micro-lecture by dragging across the timeline, which is published, shows
// in the list and plays.
//
// With PODIUM_SCREENSHOTS=docs it also saves docs/screenshot-replay.png.
func TestReplayPageSignInTitleAndClips(t *testing.T) {
	testenv.RequireBinary(t, "ffmpeg")
	node := testenv.StartPodium(t, "--vod-poll", "200ms", "--vod-ladder", "360:500")
	store, err := local.New(filepath.Join(node.DataDir, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	const lesson = "fractions-1"
	transcodetest.WriteRecording(t, store, lesson, 12, true)
	student := node.Token(lesson, "viewer", "Amina")
	teacherToken := node.Token(lesson, "teacher", "Ms Okafor")
	testenv.WaitFor(t, 180*time.Second, "the lesson's replay to be ready", func() bool {
		code, l := vodLesson(t, node, student, lesson)
		return code == http.StatusOK && l["status"] == "ready"
	})

	browser := testenv.StartChromium(t)
	tab, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	if err := chromedp.Do(tab, chromedp.EmulateViewport(1440, 900), chromedp.Navigate(node.URL+"/replay")); err != nil {
		t.Fatal(err)
	}
	p := &page{name: "replay", ctx: tab}

	t.Run("sign-in box says which token and refuses a bad one", func(t *testing.T) {
		b := p.waitShown(t, "#login", true)
		if !strings.Contains(b.Text, "a replay link or a student token from your school") {
			t.Errorf("sign-in box says %q", b.Text)
		}
		// Styled like the other pages (style.css), not browser defaults.
		var look struct{ Body, Button, Input string }
		_ = p.eval(`({ body: getComputedStyle(document.body).backgroundColor,
			button: getComputedStyle(document.getElementById('login-submit')).backgroundColor,
			input: getComputedStyle(document.getElementById('token')).backgroundColor })`, &look)
		if look.Body != "rgb(15, 23, 32)" || look.Button != "rgb(63, 167, 255)" || look.Input != "rgb(30, 42, 55)" {
			t.Errorf("page colours %+v, want style.css's (body #0f1720, primary button #3fa7ff, input #1e2a37)", look)
		}
		p.typeAndSend(t, "#token", "#login-submit", "not-a-token")
		b = p.waitShown(t, "#login-error", true)
		t.Logf("a bad token: %q", b.Text)
		p.clear(t, "token")
		forged := student[:strings.LastIndex(student, ".")+1] + "AAAA"
		p.typeAndSend(t, "#token", "#login-submit", forged)
		p.waitUntil(t, "the forged token refused in the box", func() (bool, string) {
			b := p.box(t, "#login-error")
			return b.Shown && strings.Contains(b.Text, "refused"), b.Text
		})
		if b := p.box(t, "#login"); !b.Shown {
			t.Error("the sign-in box went away for a refused token")
		}
	})

	t.Run("a student signs in with a replay link and watches", func(t *testing.T) {
		p.clear(t, "token")
		p.typeAndSend(t, "#token", "#login-submit", node.URL+"/replay#token="+student)
		p.waitVisible(t, fmt.Sprintf(`li.card[data-lesson=%q] a`, lesson))
		if b := p.box(t, "#whoami"); !strings.Contains(b.Text, "Amina") {
			t.Errorf("signed in as %q", b.Text)
		}
		p.click(t, fmt.Sprintf(`li.card[data-lesson=%q] a`, lesson))
		r := p.waitReplayPlaying(t, "the lesson")
		if r.EditShown || r.ClipToolShow {
			t.Errorf("a student is offered editing (title %v, clips %v)", r.EditShown, r.ClipToolShow)
		}
		p.click(t, "#signout")
		p.waitShown(t, "#login", true)
	})

	newTitle := "Adding fractions with unlike denominators"
	t.Run("the teacher renames the lesson", func(t *testing.T) {
		p.typeAndSend(t, "#token", "#login-submit", teacherToken)
		p.waitShown(t, "#catalog", true)
		if err := chromedp.Do(p.ctx, chromedp.Navigate(node.URL+"/replay?lesson="+lesson)); err != nil {
			t.Fatal(err)
		}
		p.waitReplayPlaying(t, "the lesson for its teacher")
		p.click(t, "#edit-title")
		p.waitShown(t, "#title-input", true)
		p.clear(t, "title-input")
		p.typeAndSend(t, "#title-input", "#title-save", newTitle)
		p.waitUntil(t, "the new title on the page", func() (bool, string) {
			r := p.replay(t)
			return r.Title == newTitle, r.Title
		})
		// The catalog has it: what students see from now on.
		if _, l := vodLesson(t, node, student, lesson); l["title"] != newTitle {
			t.Errorf("the VOD API says the title is %v", l["title"])
		}
	})

	t.Run("the teacher publishes a micro-lecture", func(t *testing.T) {
		p.waitShown(t, "#cliptool", true)
		var rect struct{ X, Y, W, H float64 }
		if err := p.eval(`(() => { const e = document.getElementById('timeline'); e.scrollIntoView({block: 'center'});
			const r = e.getBoundingClientRect(); return { x: r.left, y: r.top, w: r.width, h: r.height }; })()`, &rect); err != nil {
			t.Fatal(err)
		}
		// Drag from a quarter to three quarters of the 12 s lesson, as a
		// person would with the mouse.
		y := rect.Y + rect.H/2
		x0, x1 := rect.X+rect.W*0.25, rect.X+rect.W*0.75
		steps := []chromedp.Action[chromedp.Void]{chromedp.MouseEvent(chromedp.MousePressed, x0, y, chromedp.ButtonLeft, chromedp.ClickCount(1))}
		for i := 1; i <= 10; i++ {
			steps = append(steps, chromedp.MouseEvent(chromedp.MouseMoved, x0+(x1-x0)*float64(i)/10, y, chromedp.ButtonLeft))
		}
		steps = append(steps, chromedp.MouseEvent(chromedp.MouseReleased, x1, y, chromedp.ButtonLeft, chromedp.ClickCount(1)))
		if err := chromedp.Do(p.ctx, steps...); err != nil {
			t.Fatalf("drag on the timeline: %v", err)
		}
		var sel struct{ Start, End float64 }
		_ = p.eval(`window.replay.clipRange`, &sel)
		if math.Abs(sel.Start-3) > 0.5 || math.Abs(sel.End-9) > 0.5 {
			t.Fatalf("selected %.1f-%.1f s, want about 3-9 s", sel.Start, sel.End)
		}
		p.typeAndSend(t, "#clip-title", "#clip-publish", "Unlike denominators in one minute")
		p.waitUntil(t, "the micro-lecture in the list", func() (bool, string) {
			var titles string
			_ = p.eval(`[...document.querySelectorAll('#clips li[data-clip]')].map(e => e.textContent).join(' | ')`, &titles)
			return strings.Contains(titles, "Unlike denominators in one minute"), titles + " / " + p.box(t, "#clip-status").Text
		})
		if dir := os.Getenv("PODIUM_SCREENSHOTS"); dir != "" {
			if !filepath.IsAbs(dir) {
				dir = filepath.Join("..", dir)
			}
			_ = p.eval(`(() => { const v = document.getElementById('video'); v.pause(); v.currentTime = 4; window.scrollTo(0, 0); return true; })()`, nil)
			time.Sleep(time.Second)
			// The whole page: player, micro-lecture tool and list.
			png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatalf("screenshot: %v", err)
			}
			if err := os.WriteFile(filepath.Join(dir, "screenshot-replay.png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		p.click(t, "#clips li[data-clip] a")
		r := p.waitReplayPlaying(t, "the micro-lecture")
		if !strings.HasPrefix(r.Title, "Unlike denominators in one minute") {
			t.Errorf("clip page title %q", r.Title)
		}
		if math.Abs(r.Duration-(sel.End-sel.Start)) > 1.5 {
			t.Errorf("the micro-lecture lasts %.1f s, want about %.1f s", r.Duration, sel.End-sel.Start)
		}
		t.Logf("micro-lecture %.1f-%.1f s plays: %.1f s long, %d frames decoded, %d px wide", sel.Start, sel.End, r.Duration, r.Frames, r.Width)
	})
}

// TestReplayPageStudentSeesOnlyTheirCourse: a school gives class 7B a
// student token for its maths course. On the replay page the class sees
// that course and its lesson, plays it, and sees nothing of the history
// course; a link to a history lesson is refused on the page.
func TestReplayPageStudentSeesOnlyTheirCourse(t *testing.T) {
	testenv.RequireBinary(t, "ffmpeg")
	node := testenv.StartPodium(t, "--vod-poll", "200ms", "--vod-ladder", "360:500")
	store, err := local.New(filepath.Join(node.DataDir, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	admin := node.Token("*", "admin", "IT office")
	api := func(method, path, body string) int {
		t.Helper()
		req, _ := http.NewRequest(method, node.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	courses := map[string]struct{ lesson, title string }{
		"maths-7":   {"fractions-7b", "Maths, year 7"},
		"history-7": {"romans-7b", "History, year 7"},
	}
	for course, c := range courses {
		transcodetest.WriteRecording(t, store, c.lesson, 6, true)
		if code := api("PUT", "/api/vod/courses/"+course, fmt.Sprintf(`{"title": %q}`, c.title)); code != http.StatusOK {
			t.Fatalf("PUT course %s: %d", course, code)
		}
	}
	for course, c := range courses {
		testenv.WaitFor(t, 180*time.Second, c.lesson+" in the catalog", func() bool {
			code, l := vodLesson(t, node, admin, c.lesson)
			return code == http.StatusOK && l["status"] == "ready"
		})
		if code := api("PATCH", "/api/vod/lessons/"+c.lesson, fmt.Sprintf(`{"course": %q}`, course)); code != http.StatusOK {
			t.Fatalf("PATCH %s into %s: %d", c.lesson, course, code)
		}
	}
	student := node.StudentToken("Class 7B", "--course", "maths-7")

	browser := testenv.StartChromium(t)
	tab, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	if err := chromedp.Do(tab, chromedp.EmulateViewport(1440, 900), chromedp.Navigate(node.URL+"/replay#token="+student)); err != nil {
		t.Fatal(err)
	}
	p := &page{name: "replay", ctx: tab}
	p.waitVisible(t, `section.course[data-course="maths-7"] li.card[data-lesson="fractions-7b"] a`)
	var shown struct{ Courses, Lessons []string }
	_ = p.eval(`({ courses: [...document.querySelectorAll('section.course')].map(e => e.dataset.course),
		lessons: [...document.querySelectorAll('li.card')].map(e => e.dataset.lesson) })`, &shown)
	if strings.Join(shown.Courses, ",") != "maths-7" || strings.Join(shown.Lessons, ",") != "fractions-7b" {
		t.Fatalf("the student's page shows courses %v and lessons %v, want only maths-7 with fractions-7b", shown.Courses, shown.Lessons)
	}
	if b := p.box(t, "#whoami"); !strings.Contains(b.Text, "Class 7B") {
		t.Errorf("signed in as %q", b.Text)
	}
	p.click(t, `li.card[data-lesson="fractions-7b"] a`)
	r := p.waitReplayPlaying(t, "the maths lesson")
	if r.EditShown || r.ClipToolShow {
		t.Errorf("a student is offered editing (title %v, clips %v)", r.EditShown, r.ClipToolShow)
	}

	// A link to the other course's lesson, shared in the class chat.
	if err := chromedp.Do(p.ctx, chromedp.Navigate(node.URL+"/replay?lesson=romans-7b")); err != nil {
		t.Fatal(err)
	}
	p.waitUntil(t, "the history lesson refused on the page", func() (bool, string) {
		r := p.replay(t)
		return r.Error != "" && r.Frames == 0, fmt.Sprintf("%+v", r)
	})
	if code, _ := vodLesson(t, node, student, "romans-7b"); code != http.StatusForbidden && code != http.StatusNotFound {
		t.Errorf("the VOD API answers the student %d for the history lesson", code)
	}
	t.Logf("the student sees %v / %v and is refused the history lesson: %q", shown.Courses, shown.Lessons, p.replay(t).Error)
}
