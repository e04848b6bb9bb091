package auth

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"podium/internal/httpx"
	"podium/sfu"
)

// Access is the kind of caller a route admits.
type Access int

const (
	// Public routes need no token (pages, health, the WHIP/WHEP preflight).
	Public Access = iota + 1
	// Authenticated routes take any valid token of the listed roles; the
	// handler narrows what it answers to what the claims reach (lists).
	Authenticated
	// LessonMember routes take a live token of the lesson named by the
	// route's path variable, with one of the listed roles (a server admin
	// token passes when admin is listed).
	LessonMember
	// Replay routes take any live token of the lesson, or a student token
	// whose grant covers it.
	Replay
	// ServerAdmin routes take only an admin token for every lesson ("*").
	ServerAdmin
	// Signed routes are served to a request carrying a valid signature of
	// their own (checked by the handler); without one they are Replay.
	Signed
)

func (a Access) String() string {
	return map[Access]string{Public: "public", Authenticated: "authenticated", LessonMember: "lesson",
		Replay: "replay", ServerAdmin: "server-admin", Signed: "signed-or-replay"}[a]
}

// Scope is who may call a route: declared once, where the route is
// registered (Router.Handle).
type Scope struct {
	Access Access
	// Lesson is the path variable holding the lesson id (LessonMember,
	// Replay, Signed).
	Lesson string
	// Roles are the token roles admitted (Authenticated, LessonMember).
	Roles []sfu.Role
	// QueryToken lets the token come as ?token= (websocket, media GETs:
	// where a browser cannot send a header).
	QueryToken bool
}

// Scope constructors, for readable route tables.
func PublicScope() Scope { return Scope{Access: Public} }
func AnyToken(roles ...sfu.Role) Scope {
	return Scope{Access: Authenticated, Roles: roles}
}
func OfLesson(param string, roles ...sfu.Role) Scope {
	return Scope{Access: LessonMember, Lesson: param, Roles: roles}
}
func ReplayOf(param string) Scope { return Scope{Access: Replay, Lesson: param} }
func SignedOrReplayOf(param string) Scope {
	return Scope{Access: Signed, Lesson: param, QueryToken: true}
}
func ServerAdminScope() Scope { return Scope{Access: ServerAdmin} }

// WithQueryToken returns the scope accepting ?token=.
func (s Scope) WithQueryToken() Scope { s.QueryToken = true; return s }

func (s Scope) String() string {
	var b strings.Builder
	b.WriteString(s.Access.String())
	if s.Lesson != "" {
		b.WriteString("{" + s.Lesson + "}")
	}
	if len(s.Roles) > 0 {
		rs := make([]string, len(s.Roles))
		for i, r := range s.Roles {
			rs[i] = string(r)
		}
		b.WriteString(":" + strings.Join(rs, ","))
	}
	if s.QueryToken {
		b.WriteString("+query")
	}
	return b.String()
}

func (s Scope) validate(pattern string) error {
	switch s.Access {
	case Public, ServerAdmin:
	case Authenticated:
		if len(s.Roles) == 0 {
			return fmt.Errorf("route %q: an authenticated scope lists its roles", pattern)
		}
	case LessonMember, Replay, Signed:
		if s.Lesson == "" || !strings.Contains(pattern, "{"+s.Lesson+"}") && !strings.Contains(pattern, "{"+s.Lesson+"...}") {
			return fmt.Errorf("route %q: scope names lesson variable {%s}, which the pattern lacks", pattern, s.Lesson)
		}
		if s.Access == LessonMember && len(s.Roles) == 0 {
			return fmt.Errorf("route %q: a lesson scope lists its roles", pattern)
		}
	default:
		return fmt.Errorf("route %q: no scope declared", pattern)
	}
	return nil
}

// Route is one registered route and its scope.
type Route struct {
	Pattern string
	Scope   Scope
}

// CourseOf tells the course of a recorded lesson ("" when none), for
// student tokens granted whole courses.
type CourseOf func(ctx context.Context, lesson string) string

// Router registers every HTTP route of a node with its scope and checks
// the scope before the handler runs. It is the one place that decides who
// reaches what.
type Router struct {
	mux    *http.ServeMux
	issuer *Issuer
	onFail FailureFunc
	course CourseOf
	routes []Route
}

// NewRouter makes a router on mux; onFail (may be nil) hears every refusal.
func NewRouter(mux *http.ServeMux, issuer *Issuer, onFail FailureFunc) *Router {
	if onFail == nil {
		onFail = func(string) {}
	}
	return &Router{mux: mux, issuer: issuer, onFail: onFail}
}

// SetCourseOf sets how a lesson's course is found (the replay catalog).
// Call it before serving.
func (rt *Router) SetCourseOf(f CourseOf) { rt.course = f }

// Handle registers h for pattern behind scope. A route without a valid
// scope is a programming error and panics at start. outer middleware runs
// before the scope check (CORS headers that refusals need too).
func (rt *Router) Handle(pattern string, scope Scope, h http.Handler, outer ...func(http.Handler) http.Handler) {
	if err := scope.validate(pattern); err != nil {
		panic(err)
	}
	rt.routes = append(rt.routes, Route{Pattern: pattern, Scope: scope})
	g := rt.guard(scope, h)
	for _, o := range outer {
		g = o(g)
	}
	rt.mux.Handle(pattern, g)
}

// HandleFunc is Handle for a function.
func (rt *Router) HandleFunc(pattern string, scope Scope, h http.HandlerFunc) {
	rt.Handle(pattern, scope, h)
}

// Routes lists every registered route in registration order.
func (rt *Router) Routes() []Route { return slices.Clone(rt.routes) }

// SignatureChecker is a handler that can vouch for a request by itself (a
// signed media URL); Signed routes use it before asking for a token.
type SignatureChecker interface {
	ValidSignature(r *http.Request) bool
}

func (rt *Router) guard(s Scope, h http.Handler) http.Handler {
	if s.Access == Public {
		return h
	}
	signed, _ := h.(SignatureChecker)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Access == Signed && signed != nil && signed.ValidSignature(r) {
			h.ServeHTTP(w, r)
			return
		}
		c, reason := rt.issuer.Authenticate(w, r, s.QueryToken)
		if c == nil {
			rt.onFail(reason)
			return
		}
		if reason, msg := rt.decide(r, s, c); reason != "" {
			rt.onFail(reason)
			httpx.WriteError(w, http.StatusForbidden, "forbidden", msg)
			return
		}
		h.ServeHTTP(w, r.WithContext(WithClaims(r.Context(), c)))
	})
}

// decide returns a refusal reason and message, or "" to let c through.
func (rt *Router) decide(r *http.Request, s Scope, c *Claims) (reason, msg string) {
	lesson := ""
	if s.Lesson != "" {
		lesson = r.PathValue(s.Lesson)
	}
	switch s.Access {
	case ServerAdmin:
		if !c.ServerAdmin() {
			return "wrong_role", "this needs a server-wide admin token (room \"*\")"
		}
	case Authenticated:
		if !HasRole(c, s.Roles...) {
			return "wrong_role", fmt.Sprintf("role %q may not do this", c.Role)
		}
	case LessonMember:
		if !HasRole(c, s.Roles...) {
			return "wrong_role", fmt.Sprintf("role %q may not do this", c.Role)
		}
		if !c.AllowsRoom(lesson) {
			return "wrong_room", fmt.Sprintf("token is not for lesson %q", lesson)
		}
	case Replay, Signed:
		course := ""
		if c.Role == RoleStudent && c.Replay != nil && len(c.Replay.Courses) > 0 && rt.course != nil {
			course = rt.course(r.Context(), lesson)
		}
		if !c.MayReplay(lesson, course) {
			return "wrong_room", fmt.Sprintf("token does not reach lesson %q", lesson)
		}
	}
	return "", ""
}
