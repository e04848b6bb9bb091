package clients

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"podium/internal/testenv"
)

// unsignedToken builds a token whose payload the pages can read; the
// signature is junk, which only the server would notice.
func unsignedToken(t *testing.T, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(payload) + "." + enc.EncodeToString([]byte("sig"))
}

// openTab opens a new tab in the browser and returns it with a deadline.
func openTab(t *testing.T, browser context.Context, timeout time.Duration) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("open tab: %v", err)
	}
	ctx, cancelTimeout := context.WithTimeout(tab, timeout)
	t.Cleanup(cancelTimeout)
	return ctx
}

// TestJoinPageInBrowser drives the join page with only the embedded pages
// behind it (no signaling server): what a person sees for a broken or
// expired link, and where a good link takes them.
func TestJoinPageInBrowser(t *testing.T) {
	browser := testenv.StartChromium(t)
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	future := time.Now().Add(time.Hour).Unix()

	errorText := func(ctx context.Context) string {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#error .banner"))); err != nil {
			t.Fatalf("no error shown: %v", err)
		}
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#error .banner")))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	t.Run("malformed link", func(t *testing.T) {
		ctx := openTab(t, browser, 20*time.Second)
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/join#token=not-a-token")); err != nil {
			t.Fatal(err)
		}
		if got := errorText(ctx); !strings.Contains(got, "does not look like a Podium link") {
			t.Fatalf("error = %q", got)
		}
	})

	t.Run("expired link", func(t *testing.T) {
		ctx := openTab(t, browser, 20*time.Second)
		tok := unsignedToken(t, map[string]any{"room": "math-7", "role": "classroom", "name": "Hill School", "exp": time.Now().Add(-time.Hour).Unix()})
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/?token="+tok)); err != nil {
			t.Fatal(err)
		}
		if got := errorText(ctx); !strings.Contains(got, "expired") {
			t.Fatalf("error = %q", got)
		}
		lesson, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("d-lesson")))
		if err != nil || lesson != "math-7" {
			t.Fatalf("lesson shown = %q (%v), want math-7", lesson, err)
		}
	})

	t.Run("pasted classroom link goes to the big screen", func(t *testing.T) {
		ctx := openTab(t, browser, 20*time.Second)
		tok := unsignedToken(t, map[string]any{"room": "math-7", "role": "classroom", "name": "Hill School", "exp": future})
		err := chromedp.Do(ctx,
			chromedp.Navigate(srv.URL+"/"),
			chromedp.SetValue(chromedp.ID("token"), "https://podium.example/join#token="+tok),
			chromedp.Click(chromedp.ID("go")),
			chromedp.WaitVisible(chromedp.ID("board")),
		)
		if err != nil {
			t.Fatal(err)
		}
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil || !strings.Contains(loc, "/classroom#token=") {
			t.Fatalf("location = %q (%v)", loc, err)
		}
	})

	t.Run("teacher link on the classroom page opens the console", func(t *testing.T) {
		ctx := openTab(t, browser, 20*time.Second)
		tok := unsignedToken(t, map[string]any{"room": "math-7", "role": "teacher", "name": "Ms Rivera", "exp": future})
		err := chromedp.Do(ctx,
			chromedp.Navigate(srv.URL+"/classroom#token="+tok),
			chromedp.WaitVisible(chromedp.ID("grid-title")),
		)
		if err != nil {
			t.Fatal(err)
		}
		// With no signaling server behind the pages, the console keeps
		// trying: it must say so rather than pretend to be live.
		state, err := chromedp.Run(ctx, chromedp.Poll[string](`(() => { const s = window.podium && window.podium.state; return s === 'reconnecting' ? s : null })()`, chromedp.WithPollingTimeout(15*time.Second)))
		if err != nil {
			t.Fatalf("state never became reconnecting: %v (%q)", err, state)
		}
	})
}
