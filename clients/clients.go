// Package clients owns Podium's web pages — the join page, the teacher
// console, the classroom big screen (and the replay page the vod part writes)
// — embedded in the binary so a school with no wider internet still has
// them. Handler serves them; it knows nothing of the signaling server behind
// the pages beyond the URL paths the pages use (/ws, docs/PROTOCOL.md).
package clients

import (
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed all:web
var webFS embed.FS

// pages maps a clean URL to the page file that answers it.
var pages = map[string]string{
	"/":          "index.html",
	"/join":      "index.html",
	"/teacher":   "teacher.html",
	"/classroom": "classroom.html",
	"/replay":    "replay.html",
}

// Handler serves the embedded pages and their assets. Pages are never
// cached (a new binary must show its new pages at once); assets are cached
// briefly and revalidated, since their names carry no content hash.
func Handler() http.Handler {
	root, err := fs.Sub(webFS, "web")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	files := http.FileServerFS(root)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		setSecurityHeaders(w.Header())
		p := path.Clean("/" + r.URL.Path)
		if page, ok := pages[strings.TrimSuffix(p, ".html")]; ok {
			servePage(w, r, root, page)
			return
		}
		name := strings.TrimPrefix(p, "/")
		if st, err := fs.Stat(root, name); err != nil || st.IsDir() {
			http.NotFound(w, r)
			return
		}
		if ct := contentType(name); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		w.Header().Set("Cache-Control", "public, max-age=300, must-revalidate")
		files.ServeHTTP(w, r)
	})
}

func servePage(w http.ResponseWriter, r *http.Request, root fs.FS, name string) {
	b, err := fs.ReadFile(root, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(b)
}

// contentType pins the types browsers are strict about: an ES module must
// come with a JavaScript type, whatever the host's mime tables say.
func contentType(name string) string {
	switch path.Ext(name) {
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".html":
		return "text/html; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".json", ".map":
		return "application/json"
	case ".m3u8":
		return "application/vnd.apple.mpegurl"
	case ".wasm":
		return "application/wasm"
	}
	return mime.TypeByExtension(path.Ext(name))
}

func setSecurityHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer") // tokens travel in URLs
}
