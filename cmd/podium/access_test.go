package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"podium/internal/testenv"
	"podium/sfu"
	"podium/signaling/auth"
)

// tokenKind is one column of the access matrix.
type tokenKind string

const (
	kNone        tokenKind = "no token"
	kViewerA     tokenKind = "viewer of A"
	kClassroomA  tokenKind = "classroom of A"
	kTeacherA    tokenKind = "teacher of A"
	kAdminA      tokenKind = "admin of A"
	kAdminAll    tokenKind = "admin *"
	kTeacherB    tokenKind = "teacher of B"
	kStudentA    tokenKind = "student of A"
	kStudentB    tokenKind = "student of B"
	kExpired     tokenKind = "expired"
	kWrongSecret tokenKind = "wrong secret"
	kAlgNone     tokenKind = "alg none"
	kTampered    tokenKind = "tampered payload"
)

var allKinds = []tokenKind{kNone, kViewerA, kClassroomA, kTeacherA, kAdminA, kAdminAll, kTeacherB, kStudentA, kStudentB,
	kExpired, kWrongSecret, kAlgNone, kTampered}

// badKinds never pass: the answer is 401.
var badKinds = map[tokenKind]bool{kNone: true, kExpired: true, kWrongSecret: true, kAlgNone: true, kTampered: true}

// accessRow is what the matrix expects of one route: the token kinds it
// admits (the handler answers, whatever it answers); every other kind is
// refused, 401 for a bad token and 403 for a good one of the wrong scope.
type accessRow struct {
	admit []tokenKind
	// query is appended to the request path (pprof's seconds=1).
	query string
	// body is the JSON sent ("{}" when empty).
	body string
	// public routes answer without a token; guarded says such a route
	// still refuses every token kind (it checks a key of its own).
	public, guarded bool
}

var (
	live     = []tokenKind{kViewerA, kClassroomA, kTeacherA, kAdminAll}
	replayA  = []tokenKind{kViewerA, kClassroomA, kTeacherA, kAdminA, kAdminAll, kStudentA}
	anyGood  = []tokenKind{kViewerA, kClassroomA, kTeacherA, kAdminA, kAdminAll, kTeacherB, kStudentA, kStudentB}
	manageA  = []tokenKind{kTeacherA, kAdminA, kAdminAll}
	adminA   = []tokenKind{kAdminA, kAdminAll}
	anyAdmin = []tokenKind{kAdminA, kAdminAll}
	server   = []tokenKind{kAdminAll}
)

// accessTable has one row per route the server registers. A new route
// fails TestEveryRouteHasAScopeAndARow until it has one here.
var accessTable = map[string]accessRow{
	"GET /ws":                                       {admit: []tokenKind{kViewerA, kClassroomA, kTeacherA, kTeacherB}},
	"POST /api/lessons":                             {admit: anyAdmin},
	"GET /api/lessons":                              {admit: anyAdmin},
	"GET /api/lessons/{id}":                         {admit: adminA},
	"DELETE /api/lessons/{id}":                      {admit: adminA},
	"POST /api/tokens":                              {admit: anyAdmin, body: `{"room":"lesson-a","role":"viewer","name":"v"}`},
	"POST /api/tokens/revoke":                       {admit: anyAdmin},
	"GET /debug/pprof/":                             {admit: server},
	"GET /debug/pprof/profile":                      {admit: server, query: "?seconds=1"},
	"GET /debug/pprof/trace":                        {admit: server, query: "?seconds=1"},
	"POST /whip/{room}":                             {admit: []tokenKind{kTeacherA}},
	"DELETE /whip/{room}/{id}":                      {admit: []tokenKind{kTeacherA}},
	"PATCH /whip/{room}/{id}":                       {admit: []tokenKind{kTeacherA}},
	"OPTIONS /whip/{room}":                          {public: true},
	"OPTIONS /whip/{room}/{id}":                     {public: true},
	"POST /whep/{room}":                             {admit: live[:0:0]},
	"DELETE /whep/{room}/{id}":                      {},
	"PATCH /whep/{room}/{id}":                       {},
	"OPTIONS /whep/{room}":                          {public: true},
	"OPTIONS /whep/{room}/{id}":                     {public: true},
	"GET /metrics":                                  {public: true},
	"GET /healthz":                                  {public: true},
	"GET /readyz":                                   {public: true},
	"/":                                             {public: true},
	"GET /api/audit":                                {admit: anyAdmin, query: "?lesson=lesson-a"},
	"GET /api/recordings":                           {admit: server},
	"GET /api/lessons/{id}/recording":               {admit: adminA},
	"POST /api/lessons/{id}/recording/start":        {admit: adminA},
	"POST /api/lessons/{id}/recording/stop":         {admit: adminA},
	"POST /api/lessons/{id}/sources":                {admit: adminA},
	"GET /api/lessons/{id}/sources":                 {admit: adminA},
	"GET /api/lessons/{id}/sources/{sid}":           {admit: adminA},
	"DELETE /api/lessons/{id}/sources/{sid}":        {admit: adminA},
	"GET /api/vod/courses":                          {admit: anyGood},
	"PUT /api/vod/courses/{course}":                 {admit: server},
	"DELETE /api/vod/courses/{course}":              {admit: server},
	"GET /api/vod/courses/{course}/lessons":         {admit: anyGood},
	"GET /api/vod/lessons":                          {admit: anyGood},
	"GET /api/vod/lessons/{lesson}":                 {admit: replayA},
	"PATCH /api/vod/lessons/{lesson}":               {admit: manageA},
	"DELETE /api/vod/lessons/{lesson}":              {admit: manageA},
	"POST /api/vod/lessons/{lesson}/clips":          {admit: manageA},
	"DELETE /api/vod/lessons/{lesson}/clips/{clip}": {admit: manageA},
	"GET /api/vod/media/{lesson}/{path...}":         {admit: replayA},
	"GET /api/vod/raw/{lesson}/{path...}":           {admit: replayA},
	"GET /api/vod/jobs":                             {admit: server},
	"GET /api/vod/jobs/{job}":                       {admit: server},
	"POST /api/vod/jobs/{job}/cancel":               {admit: server},
	"POST /api/vod/lessons/{lesson}/transcode":      {admit: adminA},
	"/cluster/cascade/":                             {public: true, guarded: true},
	"GET /api/lessons/{id}/dashboard":               {admit: adminA},
}

func init() {
	// WHEP: any live role of the lesson, and its admins.
	whep := []tokenKind{kViewerA, kClassroomA, kTeacherA, kAdminA, kAdminAll}
	for _, p := range []string{"POST /whep/{room}", "DELETE /whep/{room}/{id}", "PATCH /whep/{room}/{id}"} {
		accessTable[p] = accessRow{admit: whep}
	}
}

// buildNode wires a whole node as podium serve does (with cluster and
// cascade, so that their routes are registered too) without listening.
func buildNode(t *testing.T, extra ...string) *built {
	t.Helper()
	redis := testenv.StartRedis(t)
	args := append([]string{"--data-dir", t.TempDir(), "--secret", accessSecret, "--ice-udp-port", "0", "--ice-tcp-port", "-1",
		"--bind-ip", "127.0.0.1", "--cluster-redis", redis, "--cluster-advertise-url", "http://127.0.0.1:1",
		"--cluster-key", "cluster-key-0123456789abcdef", "--cluster-node-id", "n1"}, extra...)
	c, err := parseServe(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b, err := build(c, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		b.close(ctx)
	})
	return b
}

const accessSecret = "access-test-secret-0123456789"

// TestEveryRouteHasAScopeAndARow walks every route a node registers: each
// has a declared scope (the router refuses one without) and a row in the
// access table, and every row names a route that exists.
func TestEveryRouteHasAScopeAndARow(t *testing.T) {
	b := buildNode(t)
	seen := map[string]bool{}
	for _, r := range b.app.routes.Routes() {
		seen[r.Pattern] = true
		if r.Scope.Access == 0 {
			t.Errorf("route %q has no scope", r.Pattern)
		}
		if _, ok := accessTable[r.Pattern]; !ok {
			t.Errorf("route %q (scope %s) has no row in accessTable", r.Pattern, r.Scope)
		}
	}
	for p := range accessTable {
		if !seen[p] {
			t.Errorf("accessTable row %q names no registered route", p)
		}
	}
	if len(seen) < 40 {
		t.Errorf("only %d routes registered", len(seen))
	}
}

// TestAccessMatrix sends every route every kind of token and checks the
// answer: admitted kinds reach the handler (no 401/403 from the router),
// bad tokens get 401, good tokens of the wrong scope 403.
func TestAccessMatrix(t *testing.T) {
	b := buildNode(t)
	srv := httptest.NewServer(b.handler())
	defer srv.Close()
	// Lesson A is live, so that the live routes get past "not started".
	if _, _, err := b.app.sfu.Rooms.GetOrCreateRoom("lesson-a"); err != nil {
		t.Fatal(err)
	}
	runMatrix(t, srv.URL, matrixTokens(t, b.app.issuer))
}

// TestAccessMatrixAgainstTheBinary runs the same matrix against a real
// `podium serve` (with cluster and cascade on, so every route exists), as
// an attacker would meet it.
func TestAccessMatrixAgainstTheBinary(t *testing.T) {
	redis := testenv.StartRedis(t)
	addr := testenv.FreeAddr(t)
	p := testenv.StartPodiumWith(t, testenv.PodiumOptions{Addr: addr, Secret: accessSecret, Args: []string{
		"--cluster-redis", redis, "--cluster-advertise-url", "http://" + addr,
		"--cluster-key", "cluster-key-0123456789abcdef", "--cluster-node-id", "n1"}})
	iss, err := auth.NewIssuer(accessSecret)
	if err != nil {
		t.Fatal(err)
	}
	tokens := matrixTokens(t, iss)
	req, _ := http.NewRequest("POST", p.URL+"/api/lessons", strings.NewReader(`{"id":"lesson-a"}`))
	req.Header.Set("Authorization", "Bearer "+tokens[kAdminAll])
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create lesson A: %v %v", resp, err)
	}
	resp.Body.Close()
	runMatrix(t, p.URL, tokens)
}

// runMatrix sends every row of the access table, with every kind of token,
// to the node at base.
func runMatrix(t *testing.T, base string, tokens map[tokenKind]string) {
	t.Helper()
	patterns := make([]string, 0, len(accessTable))
	for p := range accessTable {
		patterns = append(patterns, p)
	}
	sort.Strings(patterns)
	client := &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, pattern := range patterns {
		row := accessTable[pattern]
		method, path := requestFor(pattern)
		admitted := map[tokenKind]bool{}
		for _, k := range row.admit {
			admitted[k] = true
		}
		for _, kind := range allKinds {
			body := row.body
			if body == "" {
				body = "{}"
			}
			req, _ := http.NewRequest(method, base+path+row.query, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if tok := tokens[kind]; tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s %s as %s: %v", method, path, kind, err)
			}
			answer, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			code := resp.StatusCode
			refusedByAuth := code == 401 || code == 403
			switch {
			case row.guarded:
				if !refusedByAuth {
					t.Errorf("%s as %s: %d, want 401/403 (the route has a key of its own): %s", pattern, kind, code, answer)
				}
			case row.public:
				if refusedByAuth {
					t.Errorf("%s as %s: %d, want it public: %s", pattern, kind, code, answer)
				}
			case admitted[kind]:
				if refusedByAuth || code >= 500 && code != 503 {
					t.Errorf("%s as %s: %d, want admitted and a non-5xx answer: %s", pattern, kind, code, answer)
				}
			case badKinds[kind]:
				if code != 401 {
					t.Errorf("%s as %s: %d, want 401: %s", pattern, kind, code, answer)
				}
			default:
				if code != 403 {
					t.Errorf("%s as %s: %d, want 403: %s", pattern, kind, code, answer)
				}
			}
		}
	}
}

// requestFor turns a pattern into a request on lesson A.
func requestFor(pattern string) (method, path string) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "GET", pattern
	}
	if strings.HasSuffix(path, "/") && path != "/" {
		path += "lesson-a/x"
	}
	path = regexp.MustCompile(`\{(lesson|room|id)\}`).ReplaceAllString(path, "lesson-a")
	path = strings.ReplaceAll(path, "{path...}", "hls/master.m3u8")
	path = regexp.MustCompile(`\{[a-z]+\}`).ReplaceAllString(path, "x")
	return method, path
}

// matrixTokens mints one token of each kind.
func matrixTokens(t *testing.T, iss *auth.Issuer) map[tokenKind]string {
	t.Helper()
	mint := func(i *auth.Issuer, r auth.Request) string {
		r.Name, r.TTL = "matrix", time.Hour
		tok, _, err := i.Issue(r)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	other, err := auth.NewIssuer("another-secret-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	good := mint(iss, auth.Request{Room: "lesson-a", Role: sfu.RoleViewer})
	parts := strings.Split(good, ".")
	// The payload of a viewer token, turned into a server admin's, keeping
	// the viewer's signature.
	tamperedClaims := auth.Claims{Room: auth.AnyRoom, Role: sfu.RoleAdmin, Name: "x", RegisteredClaims: jwt.RegisteredClaims{
		ID: "j", Subject: "s", IssuedAt: jwt.NewNumericDate(time.Now()), ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}
	forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, tamperedClaims).SignedString([]byte("whatever-secret"))
	tampered := parts[0] + "." + strings.Split(forged, ".")[1] + "." + parts[2]
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, tamperedClaims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	expiredClaims := tamperedClaims
	expiredClaims.Role, expiredClaims.Room = sfu.RoleTeacher, "lesson-a"
	expiredClaims.IssuedAt = jwt.NewNumericDate(time.Now().Add(-2 * time.Hour))
	expiredClaims.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-3 * time.Second))
	expired, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, expiredClaims).SignedString([]byte(accessSecret))
	return map[tokenKind]string{
		kNone:        "",
		kViewerA:     good,
		kClassroomA:  mint(iss, auth.Request{Room: "lesson-a", Role: sfu.RoleClassroom}),
		kTeacherA:    mint(iss, auth.Request{Room: "lesson-a", Role: sfu.RoleTeacher}),
		kAdminA:      mint(iss, auth.Request{Room: "lesson-a", Role: sfu.RoleAdmin}),
		kAdminAll:    mint(iss, auth.Request{Room: auth.AnyRoom, Role: sfu.RoleAdmin}),
		kTeacherB:    mint(iss, auth.Request{Room: "lesson-b", Role: sfu.RoleTeacher}),
		kStudentA:    mint(iss, auth.Request{Role: auth.RoleStudent, Replay: &auth.Grant{Lessons: []string{"lesson-a"}}}),
		kStudentB:    mint(iss, auth.Request{Role: auth.RoleStudent, Replay: &auth.Grant{Lessons: []string{"lesson-b"}}}),
		kExpired:     expired,
		kWrongSecret: mint(other, auth.Request{Room: auth.AnyRoom, Role: sfu.RoleAdmin}),
		kAlgNone:     none,
		kTampered:    tampered,
	}
}
