package clients

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandlerRoutes(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()

	tests := []struct {
		path, wantType, wantBody, wantCache string
		wantStatus                          int
	}{
		{"/", "text/html; charset=utf-8", "Join a lesson", "no-cache", 200},
		{"/join", "text/html; charset=utf-8", "Join a lesson", "no-cache", 200},
		{"/teacher", "text/html; charset=utf-8", "Teacher console", "no-cache", 200},
		{"/teacher.html", "text/html; charset=utf-8", "Teacher console", "no-cache", 200},
		{"/classroom", "text/html; charset=utf-8", "id=\"board\"", "no-cache", 200},
		{"/podium.js", "text/javascript; charset=utf-8", "export class Session", "public, max-age=300, must-revalidate", 200},
		{"/teacher.js", "text/javascript; charset=utf-8", "import {", "public, max-age=300, must-revalidate", 200},
		{"/style.css", "text/css; charset=utf-8", ":root", "public, max-age=300, must-revalidate", 200},
		{"/nope.js", "", "", "", 404},
		{"/../clients.go", "", "", "", 404},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			resp, err := http.Get(srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if tc.wantStatus != 200 {
				return
			}
			if got := resp.Header.Get("Content-Type"); got != tc.wantType {
				t.Errorf("Content-Type = %q, want %q", got, tc.wantType)
			}
			if got := resp.Header.Get("Cache-Control"); got != tc.wantCache {
				t.Errorf("Cache-Control = %q, want %q", got, tc.wantCache)
			}
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q", got)
			}
			if !strings.Contains(string(body), tc.wantBody) {
				t.Errorf("body does not contain %q", tc.wantBody)
			}
		})
	}
}

func TestHandlerRejectsWrites(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/teacher", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST status = %d, want 405", resp.StatusCode)
	}
}

// The pages must not reach outside the server: schools are often offline.
func TestPagesLoadNothingFromOutside(t *testing.T) {
	entries, err := webFS.ReadDir("web")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), "replay") {
			continue // the vod part's files are its own
		}
		b, err := webFS.ReadFile("web/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"src=\"http", "href=\"http", "from 'http", "from \"http", "@import url(http"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s loads from outside the server (%s)", e.Name(), bad)
			}
		}
	}
}
