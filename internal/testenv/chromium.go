package testenv

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
)

// ChromiumFlags are the command-line switches every test browser runs with:
// headless, no first-run noise, fake camera and microphone that need no
// permission prompt, audio/video allowed to autoplay, and screen capture
// that picks the whole (virtual) screen without a picker.
func ChromiumFlags() []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// Several pages share one browser in a test; none may be throttled
		// as a hidden background tab.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("auto-select-desktop-capture-source", "Entire screen"),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(1280, 800),
	}
}

// StartChromium starts a real headless Chromium with a fresh profile and
// returns a chromedp browser context for it. Open a tab with
// chromedp.NewContext(ctx); each call gives a new tab in the same browser.
// The browser is stopped (and waited for) when the test ends. Extra options
// are applied after the defaults, so they can override them.
//
// The test is skipped outside CI (failed in CI) when chromium is missing.
func StartChromium(t testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	bin := RequireBinary(t, "chromium")
	dir := t.TempDir()
	logf, err := os.Create(filepath.Join(dir, "chromium.log"))
	if err != nil {
		t.Fatalf("chromium log: %v", err)
	}
	opts := append(ChromiumFlags(),
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.CombinedOutput(logf),
	)
	opts = append(opts, extra...)

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx,
		chromedp.WithLogf(func(string, ...any) {}),
		chromedp.WithErrorf(func(string, ...any) {}),
	)
	// Registered after TempDir, so the browser is gone before its profile
	// directory is removed.
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc() // waits for the browser process to exit
		logf.Close()
	})

	// Running with no actions starts the browser and opens the first tab.
	// No timeout on this first run: its context would own the browser.
	if err := chromedp.Do(browserCtx); err != nil {
		b, _ := os.ReadFile(logf.Name())
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		t.Fatalf("start chromium: %v\n%s", err, b)
	}
	return browserCtx
}
