package auth

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"podium/sfu"
)

const testSecret = "0123456789abcdef0123456789abcdef"

func mustIssuer(t *testing.T, secret string) *Issuer {
	t.Helper()
	i, err := NewIssuer(secret)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	i := mustIssuer(t, testSecret)
	tok, exp, err := i.Issue(Request{Room: "math-1", Role: sfu.RoleClassroom, Name: "Village school", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if time.Until(exp) < 59*time.Minute {
		t.Fatalf("expiry %v too early", exp)
	}
	c, err := i.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Room != "math-1" || c.Role != sfu.RoleClassroom || c.Name != "Village school" {
		t.Fatalf("claims = %+v", c)
	}
	if c.Subject != DefaultSubject(sfu.RoleClassroom, "math-1", "Village school") {
		t.Fatalf("subject %q is not the derived default", c.Subject)
	}
	if c.IssuedAt == nil || c.NotBefore == nil {
		t.Fatal("iat and nbf must be set")
	}
	// The same classroom gets the same identity from a second token.
	tok2, _, _ := i.Issue(Request{Room: "math-1", Role: sfu.RoleClassroom, Name: "Village school", TTL: time.Minute})
	c2, _ := i.Verify(tok2)
	if c2.Identity() != c.Identity() {
		t.Fatal("identity must be stable across tokens")
	}
}

func TestVerifyRefusesBadTokens(t *testing.T) {
	i := mustIssuer(t, testSecret)
	other := mustIssuer(t, "another-secret-0123456789")
	good, _, _ := i.Issue(Request{Room: "r", Role: sfu.RoleTeacher, Name: "T", TTL: time.Hour})
	forged, _, _ := other.Issue(Request{Room: "r", Role: sfu.RoleTeacher, Name: "T", TTL: time.Hour})
	past := mustIssuer(t, testSecret)
	past.now = func() time.Time { return time.Now().Add(-3 * time.Hour) }
	expired, _, _ := past.Issue(Request{Room: "r", Role: sfu.RoleTeacher, Name: "T", TTL: time.Hour})
	future := mustIssuer(t, testSecret)
	future.now = func() time.Time { return time.Now().Add(time.Hour) }
	notYet, _, _ := future.Issue(Request{Room: "r", Role: sfu.RoleTeacher, Name: "T", TTL: time.Hour})

	claims := Claims{Room: "r", Role: sfu.RoleTeacher, Name: "T", RegisteredClaims: jwt.RegisteredClaims{
		Subject: "x", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, claims).SignedString([]byte(testSecret))
	noExp := claims
	noExp.ExpiresAt = nil
	withoutExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, noExp).SignedString([]byte(testSecret))
	badRole := claims
	badRole.Role = "janitor"
	badRoleTok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, badRole).SignedString([]byte(testSecret))
	starTeacher := claims
	starTeacher.Room = AnyRoom
	starTeacherTok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, starTeacher).SignedString([]byte(testSecret))

	tampered := good[:len(good)-4] + "AAAA"
	if tampered == good {
		tampered = good[:len(good)-4] + "BBBB"
	}

	for _, tc := range []struct {
		name  string
		token string
		want  error
	}{
		{"empty", "", ErrNoToken},
		{"garbage", "not.a.jwt", ErrMalformed},
		{"two parts", "abc.def", ErrMalformed},
		{"forged with another secret", forged, ErrBadSignature},
		{"tampered signature", tampered, ErrBadSignature},
		{"expired", expired, ErrExpired},
		{"not yet valid", notYet, ErrNotYetValid},
		{"alg none", none, ErrWrongAlg},
		{"alg HS512", hs512, ErrWrongAlg},
		{"no expiry", withoutExp, ErrBadClaims},
		{"unknown role", badRoleTok, ErrBadClaims},
		{"star room for a teacher", starTeacherTok, ErrBadClaims},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := i.Verify(tc.token)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, %v; want %v", c, err, tc.want)
			}
			if err.Error() == "" {
				t.Fatal("error must say what is wrong")
			}
		})
	}
}

func TestIssueRefusesBadRequests(t *testing.T) {
	i := mustIssuer(t, testSecret)
	for _, r := range []Request{
		{Room: "r", Role: "janitor", Name: "n", TTL: time.Hour},
		{Room: "r", Role: sfu.RoleSource, Name: "n", TTL: time.Hour},
		{Room: "", Role: sfu.RoleTeacher, Name: "n", TTL: time.Hour},
		{Room: "a/b", Role: sfu.RoleTeacher, Name: "n", TTL: time.Hour},
		{Room: "*", Role: sfu.RoleTeacher, Name: "n", TTL: time.Hour},
		{Room: "r", Role: sfu.RoleTeacher, Name: " ", TTL: time.Hour},
		{Room: "r", Role: sfu.RoleTeacher, Name: "n", TTL: 0},
	} {
		if _, _, err := i.Issue(r); err == nil {
			t.Errorf("Issue(%+v) succeeded", r)
		}
	}
	if _, _, err := i.Issue(Request{Room: "*", Role: sfu.RoleAdmin, Name: "ops", TTL: time.Hour}); err != nil {
		t.Errorf("admin token for every room: %v", err)
	}
	if _, err := NewIssuer("short"); err == nil {
		t.Error("a short secret must be refused")
	}
}

func TestRequireMiddleware(t *testing.T) {
	i := mustIssuer(t, testSecret)
	tok := func(room string, role sfu.Role) string {
		s, _, err := i.Issue(Request{Room: room, Role: role, Name: "n", TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	var failures []string
	reached := 0
	mux := http.NewServeMux()
	h := i.Require(func(r string) { failures = append(failures, r) }, sfu.RoleTeacher)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := FromContext(r.Context())
		if !ok || c.Role != sfu.RoleTeacher {
			t.Error("claims missing from context")
		}
		reached++
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.Handle("POST /whip/{room}", h)

	for _, tc := range []struct {
		name   string
		header string
		query  string
		status int
		code   string
	}{
		{"no token", "", "", 401, "unauthorized"},
		{"bad scheme", "Basic abc", "", 401, "unauthorized"},
		{"garbage", "Bearer xyz", "", 401, "unauthorized"},
		{"wrong role", "Bearer " + tok("math", sfu.RoleClassroom), "", 403, "forbidden"},
		{"wrong room", "Bearer " + tok("physics", sfu.RoleTeacher), "", 403, "forbidden"},
		{"ok header", "Bearer " + tok("math", sfu.RoleTeacher), "", 204, ""},
		{"ok query", "", "?token=" + tok("math", sfu.RoleTeacher), 204, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := reached
			req := httptest.NewRequest("POST", "/whip/math"+tc.query, nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tc.status, rec.Body)
			}
			if tc.code == "" {
				if reached != before+1 {
					t.Fatal("handler not reached")
				}
				return
			}
			if reached != before {
				t.Fatal("handler reached despite refusal")
			}
			var body struct{ Error, Code string }
			if err := json.NewDecoder(rec.Body).Decode(&body); err != nil || body.Code != tc.code || body.Error == "" {
				t.Fatalf("body = %+v, %v", body, err)
			}
			if !strings.Contains(rec.Header().Get("Content-Type"), "application/json") {
				t.Fatal("error must be JSON")
			}
		})
	}
	if len(failures) != 5 {
		t.Fatalf("failures reported: %v", failures)
	}
}
