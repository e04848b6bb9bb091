// Package auth owns who may do what: issuing and verifying the HS256 JWTs
// that name a lesson (room) or a replay grant, a role and a display name;
// the per-role lifetime limits and revocation of tokens; and the Router, the
// one place every HTTP route is registered with its declared Scope and
// checked before its handler runs.
//
// It knows nothing of WebRTC, websockets or storage, and of lessons only
// their ids: whether a token reaches a lesson is a pure function of the
// claims (and, for course grants, of the lesson's course, asked of a
// CourseOf function).
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"podium/internal/httpx"
	"podium/sfu"
)

// AnyRoom is the room of an admin token valid for every lesson.
const AnyRoom = "*"

// MinSecretLen is the shortest HMAC secret accepted: a short secret makes
// tokens guessable.
const MinSecretLen = 16

// Errors returned by Verify, wrapped with detail.
var (
	ErrNoToken      = errors.New("no token")
	ErrExpired      = errors.New("token has expired")
	ErrNotYetValid  = errors.New("token is not valid yet")
	ErrBadSignature = errors.New("token signature is invalid")
	ErrMalformed    = errors.New("token is malformed")
	ErrWrongAlg     = errors.New("token uses an unexpected signing algorithm")
	ErrBadClaims    = errors.New("token claims are invalid")
	ErrTooLong      = errors.New("token lives longer than its role allows")
	ErrRevoked      = errors.New("token has been revoked")
)

// RoleStudent replays recorded lessons (Claims.Replay says which) and joins
// nothing live. It is a token role only: students never enter a room.
const RoleStudent sfu.Role = "student"

// Leeway is the clock skew tolerated on exp, nbf and iat.
const Leeway = 2 * time.Second

// Claims are what a Podium token says.
type Claims struct {
	// Room is the lesson of a live token ("*": every lesson, admins only);
	// empty for a student token.
	Room string   `json:"room,omitempty"`
	Role sfu.Role `json:"role"`
	Name string   `json:"name"`
	// Replay is what a student token may replay.
	Replay *Grant `json:"replay,omitempty"`
	jwt.RegisteredClaims
}

// Identity is the stable identity of the token holder (the JWT subject): a
// client that reconnects with the same identity replaces its old session.
func (c *Claims) Identity() string { return c.Subject }

// ServerAdmin reports whether the token is an admin token for every lesson.
func (c *Claims) ServerAdmin() bool { return c.Role == sfu.RoleAdmin && c.Room == AnyRoom }

// AllowsRoom reports whether the token is a live token valid for the lesson.
func (c *Claims) AllowsRoom(room string) bool {
	return c.Role != RoleStudent && (c.Room == room || c.ServerAdmin())
}

// MayReplay reports whether the token may watch the lesson's recording;
// course is the lesson's course ("" when it has none or is unknown).
func (c *Claims) MayReplay(lesson, course string) bool {
	if c.Role == RoleStudent {
		return c.Replay.covers(lesson, course)
	}
	return c.AllowsRoom(lesson)
}

// SeesAll reports whether every lesson's replay is visible to the token.
func (c *Claims) SeesAll() bool {
	return c.ServerAdmin() || (c.Role == RoleStudent && c.Replay != nil && c.Replay.All)
}

// Actor and RoleName describe the holder for audit lines.
func (c *Claims) Actor() string    { return c.Subject }
func (c *Claims) RoleName() string { return string(c.Role) }

// Request is what a token is issued for.
type Request struct {
	Room string
	Role sfu.Role
	Name string
	// Replay is the grant of a student token (nil for live roles).
	Replay *Grant
	// Subject is the stable identity; empty derives one from role, room and name.
	Subject string
	TTL     time.Duration
}

// DefaultSubject derives a stable identity from role, room and name, so that
// the same classroom reconnecting with a freshly minted token is still
// recognised as itself.
func DefaultSubject(role sfu.Role, room, name string) string {
	h := sha256.Sum256([]byte(string(role) + "\x00" + room + "\x00" + name))
	return string(role) + "-" + hex.EncodeToString(h[:6])
}

// Issuer signs and verifies tokens with one shared secret.
type Issuer struct {
	secret  []byte
	now     func() time.Time
	maxTTL  MaxTTL
	revoked Revoked
}

// Revoked reports whether a token id has been revoked (see Revocations).
type Revoked interface {
	Revoked(jti string) bool
}

// NewIssuer makes an issuer; the secret must be at least MinSecretLen bytes.
// Tokens live at most DefaultMaxTTL for their role until SetMaxTTL.
func NewIssuer(secret string) (*Issuer, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("secret must be at least %d characters, got %d", MinSecretLen, len(secret))
	}
	return &Issuer{secret: []byte(secret), now: time.Now, maxTTL: DefaultMaxTTL()}, nil
}

// SetMaxTTL sets the longest lifetime accepted (and issued) per role.
// Call it before the issuer is shared.
func (i *Issuer) SetMaxTTL(m MaxTTL) { i.maxTTL = m }

// SetRevoked makes Verify refuse the token ids r reports. Call it before
// the issuer is shared.
func (i *Issuer) SetRevoked(r Revoked) { i.revoked = r }

// validRole reports whether a token may carry the role.
func validRole(r sfu.Role) bool {
	return r == RoleStudent || (r.Valid() && r != sfu.RoleSource)
}

// ValidateRequest checks a token request without issuing anything.
func ValidateRequest(r Request) error {
	if !validRole(r.Role) {
		return fmt.Errorf("role must be teacher, classroom, viewer, admin or student, got %q", r.Role)
	}
	switch {
	case r.Role == RoleStudent:
		if r.Room != "" {
			return errors.New("a student token names lessons or courses to replay, not a room")
		}
		if err := r.Replay.validate(); err != nil {
			return err
		}
	case r.Replay != nil:
		return fmt.Errorf("only student tokens carry replay grants")
	case r.Room == AnyRoom:
		if r.Role != sfu.RoleAdmin {
			return fmt.Errorf("room %q is only allowed for admin tokens", AnyRoom)
		}
	case !sfu.ValidRoomID(r.Room):
		return fmt.Errorf("invalid room %q: 1 to 64 letters, digits, '-', '_' or '.'", r.Room)
	}
	if strings.TrimSpace(r.Name) == "" || len(r.Name) > 128 {
		return fmt.Errorf("name must be 1 to 128 characters")
	}
	if r.TTL <= 0 {
		return fmt.Errorf("ttl must be positive, got %s", r.TTL)
	}
	return nil
}

// Issue signs a token for the request; it refuses a TTL longer than the
// role's maximum.
func (i *Issuer) Issue(r Request) (token string, c *Claims, err error) {
	if err := ValidateRequest(r); err != nil {
		return "", nil, err
	}
	if max := i.maxTTL.For(r.Role); r.TTL > max {
		return "", nil, fmt.Errorf("ttl %s is longer than the %s allowed for %s tokens", r.TTL, max, r.Role)
	}
	sub := r.Subject
	if sub == "" {
		room := r.Room
		if r.Role == RoleStudent {
			room = r.Replay.String()
		}
		sub = DefaultSubject(r.Role, room, r.Name)
	}
	now := i.now().Truncate(time.Second)
	c = &Claims{
		Room: r.Room, Role: r.Role, Name: r.Name, Replay: r.Replay,
		RegisteredClaims: jwt.RegisteredClaims{
			ID:        newTokenID(),
			Subject:   sub,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(r.TTL)),
		},
	}
	token, err = jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(i.secret)
	if err != nil {
		return "", nil, fmt.Errorf("sign token: %w", err)
	}
	return token, c, nil
}

func newTokenID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Verify checks a token's signature, algorithm, times, lifetime, claims and
// revocation.
func (i *Issuer) Verify(token string) (*Claims, error) {
	c, err := i.parse(token, true)
	if err != nil {
		return nil, err
	}
	if i.revoked != nil && i.revoked.Revoked(c.ID) {
		return nil, ErrRevoked
	}
	return c, nil
}

// ParseForRevocation checks a token's signature and claims but not its
// times, so that an operator can revoke any token this server signed.
func (i *Issuer) ParseForRevocation(token string) (*Claims, error) {
	return i.parse(token, false)
}

func (i *Issuer) parse(token string, checkTimes bool) (*Claims, error) {
	if token == "" {
		return nil, ErrNoToken
	}
	var c Claims
	opts := []jwt.ParserOption{jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(), jwt.WithTimeFunc(i.now), jwt.WithLeeway(Leeway)}
	if !checkTimes {
		opts = append(opts, jwt.WithoutClaimsValidation())
	}
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		if t.Method != jwt.SigningMethodHS256 {
			return nil, fmt.Errorf("%w: %v", ErrWrongAlg, t.Header["alg"])
		}
		return i.secret, nil
	}, opts...)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, ErrExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return nil, ErrNotYetValid
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if strings.Contains(err.Error(), "signing method") {
			return nil, ErrWrongAlg
		}
		return nil, ErrBadSignature
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return nil, ErrWrongAlg
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, ErrMalformed
	default:
		return nil, fmt.Errorf("%w: %v", ErrBadClaims, err)
	}
	if c.Subject == "" || c.ID == "" || c.IssuedAt == nil || c.ExpiresAt == nil || !validRole(c.Role) {
		return nil, fmt.Errorf("%w: subject, token id, iat, exp and a known role are required", ErrBadClaims)
	}
	switch {
	case c.Role == RoleStudent:
		if c.Room != "" || c.Replay.validate() != nil {
			return nil, fmt.Errorf("%w: a student token needs a replay grant and no room", ErrBadClaims)
		}
	case c.Replay != nil || c.Room == "" || (c.Room == AnyRoom && c.Role != sfu.RoleAdmin):
		return nil, fmt.Errorf("%w: a live token needs a room and no replay grant", ErrBadClaims)
	}
	if life := c.ExpiresAt.Sub(c.IssuedAt.Time); life > i.maxTTL.For(c.Role)+Leeway {
		return nil, fmt.Errorf("%w: %s for a %s token (at most %s)", ErrTooLong, life, c.Role, i.maxTTL.For(c.Role))
	}
	return &c, nil
}

// TokenFromRequest returns the bearer token of an HTTP request's
// Authorization header; when allowQuery is set and there is no header, the
// token query parameter (browsers cannot set headers on a websocket or an
// <img>/<video> request). Tokens in URLs end up in logs and histories, so
// only routes that need it allow them (Scope.QueryToken).
func TokenFromRequest(r *http.Request, allowQuery bool) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			return strings.TrimSpace(h[7:])
		}
		return ""
	}
	if allowQuery {
		return r.URL.Query().Get("token")
	}
	return ""
}

type claimsKey struct{}

// WithClaims returns ctx carrying the verified claims.
func WithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// FromContext returns the claims the router put in the request context.
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok
}

// FailureFunc is told about every refused request (for metrics).
type FailureFunc func(reason string)

// Authenticate verifies the request's token and writes a 401 JSON error when
// it is missing or bad. reason is a short machine label of the failure.
func (i *Issuer) Authenticate(w http.ResponseWriter, r *http.Request, allowQuery bool) (c *Claims, reason string) {
	c, err := i.Verify(TokenFromRequest(r, allowQuery))
	if err == nil {
		return c, ""
	}
	reason = FailureReason(err)
	w.Header().Set("WWW-Authenticate", `Bearer realm="podium"`)
	httpx.WriteError(w, http.StatusUnauthorized, "unauthorized", err.Error())
	return nil, reason
}

// FailureReason is a short label for a Verify error.
func FailureReason(err error) string {
	switch {
	case errors.Is(err, ErrNoToken):
		return "no_token"
	case errors.Is(err, ErrExpired):
		return "expired"
	case errors.Is(err, ErrNotYetValid):
		return "not_yet_valid"
	case errors.Is(err, ErrBadSignature):
		return "bad_signature"
	case errors.Is(err, ErrWrongAlg):
		return "wrong_alg"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrTooLong):
		return "too_long"
	case errors.Is(err, ErrRevoked):
		return "revoked"
	default:
		return "bad_claims"
	}
}

// HasRole reports whether the claims carry one of the roles (any role when
// none is given).
func HasRole(c *Claims, roles ...sfu.Role) bool {
	if len(roles) == 0 {
		return true
	}
	for _, r := range roles {
		if c.Role == r {
			return true
		}
	}
	return false
}
