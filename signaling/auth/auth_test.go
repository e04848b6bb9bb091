package auth

import (
	"errors"
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
	tok, issued, err := i.Issue(Request{Room: "math-1", Role: sfu.RoleClassroom, Name: "Village school", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if time.Until(issued.ExpiresAt.Time) < 59*time.Minute {
		t.Fatalf("expiry %v too early", issued.ExpiresAt)
	}
	if len(issued.ID) != 32 {
		t.Fatalf("token id %q: want 128 random bits in hex", issued.ID)
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
		ID: "jti-1", Subject: "x", IssuedAt: jwt.NewNumericDate(time.Now()), ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}
	sign := func(c Claims) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(testSecret))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	// Hand-made with the right secret: the server's own rules still apply.
	if _, err := i.Verify(sign(claims)); err != nil {
		t.Fatalf("the hand-made base token must be good: %v", err)
	}
	noID := claims
	noID.ID = ""
	noIat := claims
	noIat.IssuedAt = nil
	century := claims
	century.ExpiresAt = jwt.NewNumericDate(time.Now().Add(876000 * time.Hour))
	// Exact seconds against a verifier whose clock stands still: JWT times
	// are whole seconds, so "1 s ago" must not drift to 2.
	frozen := time.Now().Truncate(time.Second)
	atFrozen := mustIssuer(t, testSecret)
	atFrozen.now = func() time.Time { return frozen }
	justExpired := claims
	justExpired.IssuedAt = jwt.NewNumericDate(frozen.Add(-time.Hour))
	justExpired.ExpiresAt = jwt.NewNumericDate(frozen.Add(-3 * time.Second))
	inLeeway := claims
	inLeeway.IssuedAt = jwt.NewNumericDate(frozen.Add(-time.Hour))
	inLeeway.ExpiresAt = jwt.NewNumericDate(frozen.Add(-1 * time.Second))
	studentWithRoom := claims
	studentWithRoom.Role, studentWithRoom.Replay = RoleStudent, &Grant{All: true}
	studentNoGrant := claims
	studentNoGrant.Role, studentNoGrant.Room = RoleStudent, ""
	teacherWithGrant := claims
	teacherWithGrant.Replay = &Grant{All: true}
	revokedC := claims
	revokedC.ID = "revoked-id"
	i.SetRevoked(revokedSet{"revoked-id": true})
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
		{"no token id", sign(noID), ErrBadClaims},
		{"no iat", sign(noIat), ErrBadClaims},
		{"100 years", sign(century), ErrTooLong},
		{"expired 3 s ago", sign(justExpired), ErrExpired},
		{"student with a room", sign(studentWithRoom), ErrBadClaims},
		{"student without a grant", sign(studentNoGrant), ErrBadClaims},
		{"teacher with a replay grant", sign(teacherWithGrant), ErrBadClaims},
		{"revoked", sign(revokedC), ErrRevoked},
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
	if _, err := atFrozen.Verify(sign(justExpired)); !errors.Is(err, ErrExpired) {
		t.Fatalf("a token expired 3 s ago: %v, want ErrExpired", err)
	}
	if _, err := atFrozen.Verify(sign(inLeeway)); err != nil {
		t.Fatalf("a token expired 1 s ago is within the 2 s leeway: %v", err)
	}
}

type revokedSet map[string]bool

func (r revokedSet) Revoked(jti string) bool { return r[jti] }

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
		{Room: "r", Role: sfu.RoleTeacher, Name: "n", TTL: 876000 * time.Hour},
		{Room: "r", Role: sfu.RoleTeacher, Name: "n", TTL: 25 * time.Hour},
		{Role: RoleStudent, Name: "n", TTL: time.Hour},
		{Room: "r", Role: RoleStudent, Name: "n", Replay: &Grant{Lessons: []string{"r"}}, TTL: time.Hour},
		{Role: RoleStudent, Name: "n", Replay: &Grant{All: true, Courses: []string{"c"}}, TTL: time.Hour},
		{Role: RoleStudent, Name: "n", Replay: &Grant{Courses: []string{"a/b"}}, TTL: time.Hour},
		{Room: "r", Role: sfu.RoleViewer, Name: "n", Replay: &Grant{Lessons: []string{"r"}}, TTL: time.Hour},
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
