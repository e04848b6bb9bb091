package testenv

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The launcher's browser must give pages a fake camera and microphone
// without a permission prompt; every browser test depends on it.
func TestStartChromiumFakeMedia(t *testing.T) {
	browser := StartChromium(t)
	tab, cancel := chromedp.NewContext(browser)
	defer cancel()
	// Media devices exist only in a secure context; http://127.0.0.1 is one.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<!doctype html><title>media</title>"))
	}))
	defer srv.Close()
	if err := chromedp.Do(tab, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatalf("open tab: %v", err)
	}
	ctx, cancelTimeout := context.WithTimeout(tab, 30*time.Second)
	defer cancelTimeout()

	kinds, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`navigator.mediaDevices.getUserMedia({video: true, audio: true})
			.then(s => s.getTracks().map(t => t.kind).sort())`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("getUserMedia: %v", err)
	}
	if len(kinds) != 2 || kinds[0] != "audio" || kinds[1] != "video" {
		t.Fatalf("track kinds = %v, want [audio video]", kinds)
	}
}
