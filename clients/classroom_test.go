package clients

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"podium/internal/testenv"
)

// openBoard opens the classroom big screen in a 1920x1080 viewport (a 1080p
// smart board), the size it is designed and judged at.
func openBoard(t *testing.T, browser context.Context, name, url string) *page {
	t.Helper()
	tab, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	if err := chromedp.Do(tab, chromedp.EmulateViewport(1920, 1080), chromedp.Navigate(url)); err != nil {
		t.Fatalf("%s: open %s: %v", name, url, err)
	}
	return &page{name: name, ctx: tab}
}

// boxState is an element as the browser lays it out and styles it.
type boxState struct {
	Shown    bool    `json:"shown"`
	FontPx   float64 `json:"fontPx"`
	Text     string  `json:"text"`
	Disabled bool    `json:"disabled"`
	ViewH    float64 `json:"viewH"`
	ViewW    float64 `json:"viewW"`
}

func (p *page) box(t *testing.T, sel string) boxState {
	t.Helper()
	var b boxState
	err := p.eval(fmt.Sprintf(`(() => {
		const e = document.querySelector(%q);
		if (!e) return { viewH: innerHeight, viewW: innerWidth };
		const cs = getComputedStyle(e);
		return {
			shown: e.getClientRects().length > 0 && cs.visibility !== 'hidden' && cs.display !== 'none',
			fontPx: parseFloat(cs.fontSize), text: e.textContent.trim(), disabled: !!e.disabled,
			viewH: innerHeight, viewW: innerWidth,
		};
	})()`, sel), &b)
	if err != nil {
		t.Fatalf("%s: read %s: %v", p.name, sel, err)
	}
	return b
}

func (p *page) waitShown(t *testing.T, sel string, shown bool) boxState {
	t.Helper()
	var b boxState
	p.waitUntil(t, fmt.Sprintf("%s shown=%v", sel, shown), func() (bool, string) {
		b = p.box(t, sel)
		return b.Shown == shown, fmt.Sprintf("%+v", b)
	})
	return b
}

// videoFrames is what a video element presented, counted by the browser
// itself (requestVideoFrameCallback): a picture that really plays, not a
// frozen or black element.
type videoFrames struct {
	Frames float64 `json:"frames"` // presented since the counter started
	Width  float64 `json:"width"`  // of the last frame
	Height float64 `json:"height"`
	Src    bool    `json:"src"` // the element has a stream
}

// frames reads (and on first use starts) the page's frame counter of a
// video element; the counter keeps running across reads.
func (p *page) frames(t *testing.T, sel string) videoFrames {
	t.Helper()
	var f videoFrames
	// A callback chain is armed again whenever the element got a new
	// stream since (a pending callback may not survive the change); the
	// generation keeps an older chain from counting twice.
	err := p.eval(fmt.Sprintf(`(() => {
		const v = document.querySelector(%[1]q);
		window.__frames = window.__frames || {};
		const c = window.__frames[%[1]q] = window.__frames[%[1]q] || { frames: 0, width: 0, height: 0, gen: 0, src: null };
		if (v && v.srcObject && v.srcObject !== c.src) {
			c.src = v.srcObject;
			const gen = ++c.gen;
			const cb = (now, meta) => {
				if (gen !== c.gen) return;
				c.frames++; c.width = meta.width; c.height = meta.height;
				v.requestVideoFrameCallback(cb);
			};
			v.requestVideoFrameCallback(cb);
		}
		return { frames: c.frames, width: c.width, height: c.height, src: !!(v && v.srcObject) };
	})()`, sel), &f)
	if err != nil {
		t.Logf("%s: frames of %s: %v", p.name, sel, err)
	}
	return f
}

// waitPlaying waits until a video element presents ten more frames than
// when the wait began.
func (p *page) waitPlaying(t *testing.T, sel string) videoFrames {
	t.Helper()
	base := p.frames(t, sel).Frames
	var f videoFrames
	p.waitUntil(t, sel+" presenting frames", func() (bool, string) {
		f = p.frames(t, sel)
		return f.Frames >= base+10 && f.Width > 0, fmt.Sprintf("%+v (from %v)", f, base)
	})
	return f
}

func (p *page) click(t *testing.T, sel string) {
	t.Helper()
	if err := chromedp.Do(p.ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		t.Fatalf("%s: click %s: %v", p.name, sel, err)
	}
}

// typeAndSend types text into an input as a person would, and submits.
func (p *page) typeAndSend(t *testing.T, input, button, text string) {
	t.Helper()
	if err := chromedp.Do(p.ctx,
		chromedp.SendKeys(chromedp.CSS(input), text),
		chromedp.Click(chromedp.CSS(button))); err != nil {
		t.Fatalf("%s: send %q: %v", p.name, text, err)
	}
}

// TestClassroomBigScreen drives the classroom big screen at 1920x1080
// against a real `podium serve` (recording on, as by default) with the
// teacher console beside it: the waiting state, a header readable from
// 5 m, the recording indicator matching the recorder's own state, chat both
// ways and switched off by the teacher, the room's own mic state (on, muted
// by itself, muted by the teacher; asking to speak raises its hand), the
// teacher's microphone and camera turned off (words, not a black picture)
// and on again (frames presented again, by requestVideoFrameCallback).
//
// With PODIUM_SCREENSHOTS=docs it also saves docs/screenshot-classroom.png.
func TestClassroomBigScreen(t *testing.T) {
	browser := testenv.StartChromium(t)
	node := testenv.StartPodium(t)
	const lesson = "board-1"
	token := func(role, name string) string { return node.Token(lesson, role, name) }

	hill := openBoard(t, browser, "Hill School", node.URL+"/classroom#token="+token("classroom", "Hill School"))
	hill.waitState(t, "waiting")
	w := hill.waitShown(t, "#waiting-title", true)
	if !strings.Contains(w.Text, "Waiting for the teacher") || w.FontPx < 0.05*w.ViewH {
		t.Errorf("waiting state: %q at %.0f px in a %.0f px high viewport; want 'Waiting for the teacher' at >= 5%% of the height", w.Text, w.FontPx, w.ViewH)
	}

	teacher := openPage(t, browser, "teacher", node.URL+"/teacher#token="+token("teacher", "Ms Rivera"))
	teacher.waitState(t, "ready")
	hill.waitState(t, "live")
	hill.waitUntil(t, "waiting for the teacher to go live", func() (bool, string) {
		b := hill.box(t, "#waiting-title")
		return b.Shown && strings.Contains(b.Text, "teacher is here"), b.Text
	})
	// Not awaited: going live (camera, offer, answer) may take longer than
	// one evaluation on a loaded machine; the page's state says when.
	teacher.do(t, `(window.podium.goLive(), true)`)
	teacher.waitState(t, "live")
	hill.waitVideo(t, "teacher camera", fromTeacher("camera"))
	hill.waitShown(t, "#waiting", false)
	first := hill.waitPlaying(t, "#main-video")
	t.Logf("teacher's camera on the board: %vx%v", first.Width, first.Height)

	t.Run("header readable from the back of the room", func(t *testing.T) {
		for _, c := range []struct {
			sel string
			min float64 // share of the viewport height
		}{
			{".hud .title", 0.03}, {"#state", 0.022}, {"#netbadge", 0.022}, {"#nettext", 0.022},
		} {
			b := hill.box(t, c.sel)
			if b.ViewW != 1920 || b.ViewH != 1080 {
				t.Fatalf("viewport %vx%v, want 1920x1080", b.ViewW, b.ViewH)
			}
			if !b.Shown || b.FontPx < c.min*b.ViewH {
				t.Errorf("%s: %.1f px (shown %v), want >= %.1f px (%.1f %% of the height)", c.sel, b.FontPx, b.Shown, c.min*b.ViewH, c.min*100)
			}
			t.Logf("%s: %.1f px", c.sel, b.FontPx)
		}
	})

	t.Run("recording indicator shows the recorder's state", func(t *testing.T) {
		st := recordingState(t, node, lesson)
		if st != "recording" {
			t.Fatalf("the recorder says %q, want recording (podium serve records by default)", st)
		}
		b := hill.waitShown(t, "#rec", true)
		if !strings.Contains(b.Text, "REC") || b.FontPx < 0.022*b.ViewH {
			t.Errorf("recording indicator %q at %.1f px", b.Text, b.FontPx)
		}
		// Stopping the recording takes the indicator away; starting it
		// again brings it back.
		recordingAction(t, node, lesson, "stop")
		hill.waitShown(t, "#rec", false)
		recordingAction(t, node, lesson, "start")
		hill.waitShown(t, "#rec", true)
	})

	t.Run("chat both ways", func(t *testing.T) {
		hill.typeAndSend(t, "#chattext", "#chatsend", "We can see the slides clearly.")
		teacher.waitUntil(t, "the classroom's message in the teacher's chat", func() (bool, string) {
			var s string
			_ = teacher.eval(`document.getElementById('chatlog').textContent`, &s)
			return strings.Contains(s, "We can see the slides clearly.") && strings.Contains(s, "Hill School"), s
		})
		var left string
		_ = hill.eval(`document.getElementById('chattext').value`, &left)
		if left != "" {
			t.Errorf("the input keeps %q after sending", left)
		}
		teacher.typeAndSend(t, "#chattext", "#chatform button", "Open your books at page 42, please.")
		hill.waitUntil(t, "the teacher's message on the board", func() (bool, string) {
			var s string
			_ = hill.eval(`[...document.querySelectorAll('#chat .msg.teacher')].map(e => e.textContent).join(' | ')`, &s)
			return strings.Contains(s, "Open your books at page 42") && strings.Contains(s, "Ms Rivera"), s
		})
	})

	t.Run("chat switched off by the teacher", func(t *testing.T) {
		// The teacher's switch, in the console's chat panel.
		if b := teacher.box(t, "#chat-switch"); !b.Shown || b.Text != "Classroom chat: on" {
			t.Fatalf("the teacher's chat switch shows %+v", b)
		}
		teacher.click(t, "#chat-switch")
		hill.waitShown(t, "#chat-off", true)
		teacher.waitUntil(t, "the switch showing the chat off", func() (bool, string) {
			b := teacher.box(t, "#chat-switch")
			return b.Text == "Classroom chat: off", b.Text
		})
		if b := hill.box(t, "#chattext"); !b.Disabled {
			t.Errorf("the chat input is enabled while the chat is off")
		}
		if b := hill.box(t, "#chatsend"); !b.Disabled {
			t.Errorf("the send button is enabled while the chat is off")
		}
		// The server refuses it too, whatever a page does.
		var code string
		_ = hill.eval(`window.podium.session.request('chat', { text: 'sneaky' }).then(() => 'sent', (e) => e.code)`, &code)
		if code != "chat_disabled" {
			t.Errorf("chat while off: %q, want chat_disabled", code)
		}
		teacher.click(t, "#chat-switch")
		hill.waitShown(t, "#chat-off", false)
		if b := hill.box(t, "#chattext"); b.Disabled {
			t.Errorf("the chat input stays disabled after the chat is on again")
		}
	})

	t.Run("teacher's microphone off", func(t *testing.T) {
		teacher.click(t, "#mic")
		b := hill.waitShown(t, "#teacher-mic-off", true)
		if !strings.Contains(b.Text, "Teacher's microphone is off") {
			t.Errorf("notice says %q", b.Text)
		}
		teacher.click(t, "#mic")
		hill.waitShown(t, "#teacher-mic-off", false)
	})

	t.Run("mic state and asking to speak", func(t *testing.T) {
		var hillID string
		if err := hill.eval(`window.podium.session.self.id`, &hillID); err != nil {
			t.Fatal(err)
		}
		micState := func(want string) {
			t.Helper()
			hill.waitUntil(t, "mic button says "+want, func() (bool, string) {
				var v struct{ State, Text string }
				_ = hill.eval(`({ state: document.getElementById('mic').dataset.mic, text: document.querySelector('#mic span').textContent })`, &v)
				return v.State == want, fmt.Sprintf("%+v", v)
			})
		}
		micState("on")
		hill.click(t, "#mic")
		micState("self")
		hill.click(t, "#mic")
		micState("on")
		teacher.do(t, fmt.Sprintf(`window.podium.session.request('mute', { participantId: %q, muted: true })`, hillID))
		micState("teacher")
		hill.waitShown(t, "#mic-banner", true)
		hill.click(t, "#ask")
		teacher.waitUntil(t, "the classroom's raised hand", func() (bool, string) {
			var up bool
			_ = teacher.eval(fmt.Sprintf(`!!(window.podium.session.participants.get(%q) || {}).handRaised`, hillID), &up)
			return up, fmt.Sprint(up)
		})
		teacher.do(t, fmt.Sprintf(`window.podium.session.request('mute', { participantId: %q, muted: false })`, hillID))
		micState("on")
		hill.waitShown(t, "#mic-banner", false)
	})

	t.Run("teacher's camera off and on", func(t *testing.T) {
		cameraFrames := func() float64 {
			i, _ := find(hill.stats(t), func(i inbound) bool { return i.Kind == "video" && fromTeacher("camera")(i) })
			return i.FramesDecoded
		}
		teacher.click(t, "#cam")
		b := hill.waitShown(t, "#camera-off", true)
		if !strings.Contains(b.Text, "The teacher's camera is off") {
			t.Errorf("notice says %q", b.Text)
		}
		if b.FontPx < 0.022*b.ViewH {
			t.Errorf("the notice is %.1f px", b.FontPx)
		}
		// No picture under the words: the server stops forwarding the
		// camera and the page shows no video.
		hill.waitUntil(t, "no more camera frames", func() (bool, string) {
			before := cameraFrames()
			time.Sleep(time.Second)
			after := cameraFrames()
			return after == before, fmt.Sprintf("%v frames decoded in a second", after-before)
		})
		off := hill.frames(t, "#main-video")
		time.Sleep(time.Second)
		if f := hill.frames(t, "#main-video"); f.Frames != off.Frames || f.Src {
			t.Errorf("the main video presents frames while the camera is off: %+v, a second before %+v", f, off)
		}
		teacher.click(t, "#cam")
		hill.waitShown(t, "#camera-off", false)
		hill.waitVideo(t, "teacher camera on again", fromTeacher("camera"))
		f := hill.waitPlaying(t, "#main-video")
		t.Logf("camera back on the board: %vx%v", f.Width, f.Height)
	})

	if dir := os.Getenv("PODIUM_SCREENSHOTS"); dir != "" {
		if !filepath.IsAbs(dir) {
			dir = filepath.Join("..", dir)
		}
		teacher.do(t, `window.podium.shareScreen({canvasOnly: true})`)
		hill.waitUntil(t, "slide on the big screen", func() (bool, string) {
			var w float64
			_ = hill.eval(`document.getElementById('main-video').videoWidth`, &w)
			return w >= 1280, fmt.Sprint("main video width ", w)
		})
		hill.waitPlaying(t, "#pip-video")
		time.Sleep(2 * time.Second) // the network badge settles
		png, err := chromedp.Run(hill.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "screenshot-classroom.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// recordingState asks the recorder (the admin API) about a lesson.
func recordingState(t *testing.T, node *testenv.Podium, lesson string) string {
	t.Helper()
	var st struct {
		State string `json:"state"`
	}
	adminCall(t, node, lesson, "GET", "/api/lessons/"+lesson+"/recording", &st)
	return st.State
}

func recordingAction(t *testing.T, node *testenv.Podium, lesson, action string) {
	t.Helper()
	adminCall(t, node, lesson, "POST", "/api/lessons/"+lesson+"/recording/"+action, nil)
}

func adminCall(t *testing.T, node *testenv.Podium, lesson, method, path string, out any) {
	t.Helper()
	req, err := http.NewRequest(method, node.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+node.Token(lesson, "admin", "Operator"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, body)
		}
	}
}
