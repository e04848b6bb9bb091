package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"podium/sfu"
)

// signedHandler vouches for requests carrying ?sig=ok, as vod's media
// handler does for its signed URLs.
type signedHandler struct{ http.HandlerFunc }

func (signedHandler) ValidSignature(r *http.Request) bool { return r.URL.Query().Get("sig") == "ok" }

func TestRouterScopes(t *testing.T) {
	i := mustIssuer(t, testSecret)
	tok := func(r Request) string {
		t.Helper()
		if r.Name == "" {
			r.Name = "n"
		}
		r.TTL = time.Hour
		s, _, err := i.Issue(r)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	var failures []string
	rt := NewRouter(http.NewServeMux(), i, func(r string) { failures = append(failures, r) })
	rt.SetCourseOf(func(_ context.Context, lesson string) string {
		return map[string]string{"math": "algebra", "physics": "science"}[lesson]
	})
	ok := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }
	rt.HandleFunc("GET /open", PublicScope(), ok)
	rt.HandleFunc("GET /list", AnyToken(sfu.RoleTeacher, RoleStudent), ok)
	rt.HandleFunc("POST /manage/{lesson}", OfLesson("lesson", sfu.RoleTeacher, sfu.RoleAdmin), ok)
	rt.HandleFunc("GET /replay/{lesson}", ReplayOf("lesson"), ok)
	rt.Handle("GET /media/{lesson}/{path...}", SignedOrReplayOf("lesson"), signedHandler{ok})
	rt.HandleFunc("GET /ops", ServerAdminScope(), ok)

	teacherMath := tok(Request{Room: "math", Role: sfu.RoleTeacher})
	adminMath := tok(Request{Room: "math", Role: sfu.RoleAdmin})
	adminAll := tok(Request{Room: AnyRoom, Role: sfu.RoleAdmin})
	viewerMath := tok(Request{Room: "math", Role: sfu.RoleViewer})
	studentAlgebra := tok(Request{Role: RoleStudent, Replay: &Grant{Courses: []string{"algebra"}}})
	studentPhysics := tok(Request{Role: RoleStudent, Replay: &Grant{Lessons: []string{"physics"}}})
	studentAll := tok(Request{Role: RoleStudent, Replay: &Grant{All: true}})

	for _, tc := range []struct {
		method, path, token string
		query               bool // token as ?token=
		want                int
	}{
		{"GET", "/open", "", false, 204},
		{"GET", "/list", "", false, 401},
		{"GET", "/list", teacherMath, false, 204},
		{"GET", "/list", studentAll, false, 204},
		{"GET", "/list", viewerMath, false, 403},
		{"GET", "/list", teacherMath, true, 401}, // no query tokens here
		{"POST", "/manage/math", teacherMath, false, 204},
		{"POST", "/manage/math", adminMath, false, 204},
		{"POST", "/manage/math", adminAll, false, 204},
		{"POST", "/manage/physics", teacherMath, false, 403},
		{"POST", "/manage/physics", adminMath, false, 403},
		{"POST", "/manage/math", viewerMath, false, 403},
		{"POST", "/manage/math", studentAll, false, 403},
		{"GET", "/replay/math", viewerMath, false, 204},
		{"GET", "/replay/physics", viewerMath, false, 403},
		{"GET", "/replay/math", studentAlgebra, false, 204},
		{"GET", "/replay/physics", studentAlgebra, false, 403},
		{"GET", "/replay/physics", studentPhysics, false, 204},
		{"GET", "/replay/math", studentPhysics, false, 403},
		{"GET", "/replay/chemistry", studentAll, false, 204},
		{"GET", "/media/math/a.m4s?sig=ok", "", false, 204},
		{"GET", "/media/math/a.m4s?sig=bad", "", false, 401},
		{"GET", "/media/math/a.m4s", studentAlgebra, true, 204},
		{"GET", "/media/physics/a.m4s", studentAlgebra, true, 403},
		{"GET", "/ops", adminAll, false, 204},
		{"GET", "/ops", adminMath, false, 403},
		{"GET", "/ops", adminAll, true, 401}, // never from the URL
	} {
		path := tc.path
		req := httptest.NewRequest(tc.method, path, nil)
		if tc.token != "" && tc.query {
			q := req.URL.Query()
			q.Set("token", tc.token)
			req.URL.RawQuery = q.Encode()
		} else if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		rec := httptest.NewRecorder()
		rt.mux.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s %s (query token %v): %d, want %d: %s", tc.method, path, tc.query, rec.Code, tc.want, rec.Body)
			continue
		}
		if tc.want >= 400 {
			var body struct{ Error, Code string }
			if err := json.NewDecoder(rec.Body).Decode(&body); err != nil || body.Code == "" || body.Error == "" {
				t.Errorf("%s %s: refusal is not a JSON error: %v", tc.method, path, err)
			}
		}
	}
	if len(failures) == 0 {
		t.Error("refusals were not reported")
	}
	if got := len(rt.Routes()); got != 6 {
		t.Errorf("Routes() lists %d routes, want 6", got)
	}
}

func TestRouterRefusesUndeclaredScopes(t *testing.T) {
	rt := NewRouter(http.NewServeMux(), mustIssuer(t, testSecret), nil)
	for name, reg := range map[string]func(){
		"zero scope":             func() { rt.HandleFunc("GET /a", Scope{}, nil) },
		"lesson var not in path": func() { rt.HandleFunc("GET /b/{id}", OfLesson("lesson", sfu.RoleAdmin), nil) },
		"lesson scope, no roles": func() { rt.HandleFunc("GET /c/{id}", OfLesson("id"), nil) },
		"any token, no roles":    func() { rt.HandleFunc("GET /d", AnyToken(), nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: registered without complaint", name)
				}
			}()
			reg()
		}()
	}
}
