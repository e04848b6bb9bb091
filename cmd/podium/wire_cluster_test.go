package main

import (
	"flag"
	"io"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"podium/sfu"
	"podium/signaling/auth"
)

// TestClusterRoutingReadsRealTokens checks the cluster relay's view of a
// request against tokens made by the real issuer: which lesson a websocket
// is for, and who may be served by an edge node.
func TestClusterRoutingReadsRealTokens(t *testing.T) {
	iss, err := auth.NewIssuer("a-secret-long-enough-for-the-issuer-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	token := func(room string, role sfu.Role) string {
		tok, _, err := iss.Issue(auth.Request{Room: room, Role: role, Name: "n", TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, tc := range []struct {
		name, target string
		lesson       string
		ok, edge     bool
	}{
		{"classroom websocket", "/ws?token=" + token("math-1", sfu.RoleClassroom), "math-1", true, true},
		{"viewer websocket", "/ws?token=" + token("math-1", sfu.RoleViewer), "math-1", true, true},
		{"teacher websocket", "/ws?token=" + token("math-1", sfu.RoleTeacher), "math-1", true, false},
		{"admin any-room token", "/ws?token=" + token(auth.AnyRoom, sfu.RoleAdmin), "", false, false},
		{"no token", "/ws", "", false, false},
		{"garbage token", "/ws?token=" + url.QueryEscape("not.a.jwt"), "", false, false},
		{"token on another path", "/api/x?token=" + token("math-1", sfu.RoleClassroom), "", false, false},
		{"whep", "/whep/math-1", "", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tc.target, nil)
			lesson, ok := websocketLesson(r)
			if lesson != tc.lesson || ok != tc.ok {
				t.Errorf("websocketLesson = %q, %v; want %q, %v", lesson, ok, tc.lesson, tc.ok)
			}
			if got := edgeAllowed(r); got != tc.edge {
				t.Errorf("edgeAllowed = %v, want %v", got, tc.edge)
			}
		})
	}
	// The bearer header works like the query parameter.
	r := httptest.NewRequest("GET", "/ws", nil)
	r.Header.Set("Authorization", "Bearer "+token("bio-2", sfu.RoleClassroom))
	if l, ok := websocketLesson(r); !ok || l != "bio-2" {
		t.Errorf("bearer header: %q %v", l, ok)
	}
}

func FuzzWebsocketLesson(f *testing.F) {
	for _, s := range []string{"", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.eyJyb29tIjoibWF0aCJ9.x", "%%%", "....."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		r := httptest.NewRequest("GET", "/ws", nil)
		r.URL.RawQuery = url.Values{"token": {tok}}.Encode()
		lesson, ok := websocketLesson(r)
		if ok && !sfu.ValidRoomID(lesson) {
			t.Fatalf("routed to invalid lesson %q", lesson)
		}
		_ = edgeAllowed(r)
	})
}

// TestDeployFilesNameRealFlags reads every PODIUM_* variable the
// deployment files and docs/DEPLOY.md set and checks that `podium serve`
// has the flag it stands for, so a renamed flag cannot leave a setting
// silently ignored in production.
func TestDeployFilesNameRealFlags(t *testing.T) {
	fs, _ := serveFlags(io.Discard)
	known := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { known[envName(f.Name)] = true })
	var files []string
	for _, pattern := range []string{"../../deploy/*", "../../deploy/k8s/*.yaml", "../../deploy/systemd/*", "../../docs/DEPLOY.md"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	files = append(files, "../../deploy/.env.example")
	envVar := regexp.MustCompile(`PODIUM_[A-Z0-9_]*[A-Z0-9]`)
	checked := 0
	for _, f := range files {
		if st, err := os.Stat(f); err != nil || st.IsDir() || strings.HasSuffix(f, ".go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range envVar.FindAllString(string(data), -1) {
			checked++
			if !known[name] {
				t.Errorf("%s sets %s, but podium serve has no flag --%s", f, name,
					strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, "PODIUM_")), "_", "-"))
			}
		}
	}
	if checked < 20 {
		t.Fatalf("found only %d PODIUM_ variables in the deploy files; the globs are wrong", checked)
	}
}

// TestClusterLoadCountsOwnParticipants: a node's load is its own
// participants; those it mirrors from another node count there, and the
// lessons it mirrors are not claimed.
func TestClusterLoadCountsOwnParticipants(t *testing.T) {
	rooms := sfu.NewRooms(nil)
	own, err := rooms.CreateRoom(sfu.LessonInfo{ID: "own-lesson"})
	if err != nil {
		t.Fatal(err)
	}
	defer own.End("test over")
	mirrored, err := rooms.CreateRoom(sfu.LessonInfo{ID: "mirrored-lesson"})
	if err != nil {
		t.Fatal(err)
	}
	defer mirrored.End("test over")
	for _, p := range []struct {
		room *sfu.Room
		info sfu.ParticipantInfo
	}{
		{own, sfu.ParticipantInfo{ID: "teacher", Role: sfu.RoleTeacher}},
		{own, sfu.ParticipantInfo{ID: "edge-classroom", Role: sfu.RoleClassroom}},
		{mirrored, sfu.ParticipantInfo{ID: "their-teacher", Role: sfu.RoleTeacher}},
		{mirrored, sfu.ParticipantInfo{ID: "our-classroom", Role: sfu.RoleClassroom}},
	} {
		if err := p.room.AddParticipant(p.info); err != nil {
			t.Fatal(err)
		}
	}
	mirrors := &mirrorRooms{ids: map[string]bool{"mirrored-lesson": true}}
	load := roomsLoad{rooms, mirrors}
	if n := load.Load(); n != 4 {
		t.Fatalf("load without cascading = %d, want every participant (4)", n)
	}
	mirrors.setParticipants(func(room, p string) bool { return p == "edge-classroom" || p == "their-teacher" })
	if n := load.Load(); n != 2 {
		t.Fatalf("load = %d, want the 2 participants of this node's own", n)
	}
	if got := load.Lessons(); len(got) != 1 || got[0] != "own-lesson" {
		t.Fatalf("claimed lessons %q, want only own-lesson", got)
	}
}
