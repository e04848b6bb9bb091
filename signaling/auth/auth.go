// Package auth owns Podium's access tokens: issuing and verifying the
// HS256 JWTs that name a lesson (room), a role and a display name, and the
// HTTP middleware that lets only the right roles through.
//
// It knows nothing of WebRTC, websockets or lessons beyond their ids: the
// room check ("is this token for this lesson?") is a pure function of the
// claims.
package auth

import (
	"context"
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
)

// Claims are what a Podium token says.
type Claims struct {
	Room string   `json:"room"`
	Role sfu.Role `json:"role"`
	Name string   `json:"name"`
	jwt.RegisteredClaims
}

// Identity is the stable identity of the token holder (the JWT subject): a
// client that reconnects with the same identity replaces its old session.
func (c *Claims) Identity() string { return c.Subject }

// AllowsRoom reports whether the token is valid for the lesson.
func (c *Claims) AllowsRoom(room string) bool {
	return c.Room == room || (c.Role == sfu.RoleAdmin && c.Room == AnyRoom)
}

// Request is what a token is issued for.
type Request struct {
	Room string
	Role sfu.Role
	Name string
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
	secret []byte
	now    func() time.Time
}

// NewIssuer makes an issuer; the secret must be at least MinSecretLen bytes.
func NewIssuer(secret string) (*Issuer, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("secret must be at least %d characters, got %d", MinSecretLen, len(secret))
	}
	return &Issuer{secret: []byte(secret), now: time.Now}, nil
}

// ValidateRequest checks a token request without issuing anything.
func ValidateRequest(r Request) error {
	if !r.Role.Valid() || r.Role == sfu.RoleSource {
		return fmt.Errorf("role must be teacher, classroom, viewer or admin, got %q", r.Role)
	}
	if r.Room == AnyRoom {
		if r.Role != sfu.RoleAdmin {
			return fmt.Errorf("room %q is only allowed for admin tokens", AnyRoom)
		}
	} else if !sfu.ValidRoomID(r.Room) {
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

// Issue signs a token for the request.
func (i *Issuer) Issue(r Request) (token string, expires time.Time, err error) {
	if err := ValidateRequest(r); err != nil {
		return "", time.Time{}, err
	}
	sub := r.Subject
	if sub == "" {
		sub = DefaultSubject(r.Role, r.Room, r.Name)
	}
	now := i.now().Truncate(time.Second)
	expires = now.Add(r.TTL)
	c := Claims{
		Room: r.Room, Role: r.Role, Name: r.Name,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   sub,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(expires),
		},
	}
	token, err = jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(i.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return token, expires, nil
}

// Verify checks a token's signature, algorithm, times and claims.
func (i *Issuer) Verify(token string) (*Claims, error) {
	if token == "" {
		return nil, ErrNoToken
	}
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		if t.Method != jwt.SigningMethodHS256 {
			return nil, fmt.Errorf("%w: %v", ErrWrongAlg, t.Header["alg"])
		}
		return i.secret, nil
	}, jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithTimeFunc(i.now), jwt.WithLeeway(5*time.Second))
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, ErrExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
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
	if c.Subject == "" || !c.Role.Valid() || c.Room == "" || (c.Room == AnyRoom && c.Role != sfu.RoleAdmin) {
		return nil, fmt.Errorf("%w: subject, a known role and a room are required", ErrBadClaims)
	}
	return &c, nil
}

// TokenFromRequest returns the bearer token of an HTTP request: the
// Authorization header, or the token query parameter (browsers cannot set
// headers on a websocket).
func TokenFromRequest(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			return strings.TrimSpace(h[7:])
		}
		return ""
	}
	return r.URL.Query().Get("token")
}

type claimsKey struct{}

// WithClaims returns ctx carrying the verified claims.
func WithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// FromContext returns the claims Require put in the request context.
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok
}

// FailureFunc is told about every refused request (for metrics).
type FailureFunc func(reason string)

// Authenticate verifies the request's token and writes a 401 JSON error when
// it is missing or bad. reason is a short machine label of the failure.
func (i *Issuer) Authenticate(w http.ResponseWriter, r *http.Request) (c *Claims, reason string) {
	c, err := i.Verify(TokenFromRequest(r))
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
	default:
		return "bad_claims"
	}
}

// Require returns middleware letting through only requests with a valid
// token of one of the roles (401 for a missing or bad token, 403 for another
// role). The claims are in the request context (FromContext). When the route
// has a {room} path value, the token must also be for that room (403).
func (i *Issuer) Require(onFail FailureFunc, roles ...sfu.Role) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, reason := i.Authenticate(w, r)
			if c == nil {
				if onFail != nil {
					onFail(reason)
				}
				return
			}
			if !HasRole(c, roles...) {
				if onFail != nil {
					onFail("wrong_role")
				}
				httpx.WriteError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("role %q may not do this", c.Role))
				return
			}
			if room := r.PathValue("room"); room != "" && !c.AllowsRoom(room) {
				if onFail != nil {
					onFail("wrong_room")
				}
				httpx.WriteError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("token is not for lesson %q", room))
				return
			}
			next.ServeHTTP(w, r.WithContext(WithClaims(r.Context(), c)))
		})
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
