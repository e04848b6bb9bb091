package auth

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"podium/sfu"
)

// Grant is what a student token may replay: listed lessons, every lesson of
// listed courses, or (explicitly) every lesson. It grants nothing live.
type Grant struct {
	Lessons []string `json:"lessons,omitempty"`
	Courses []string `json:"courses,omitempty"`
	All     bool     `json:"all,omitempty"`
}

// maxGrantItems bounds a grant, which travels in every request's token.
const maxGrantItems = 100

func (g *Grant) validate() error {
	if g == nil || (!g.All && len(g.Lessons) == 0 && len(g.Courses) == 0) {
		return errors.New("a student token needs lessons, courses or all lessons to replay")
	}
	if g.All && (len(g.Lessons) > 0 || len(g.Courses) > 0) {
		return errors.New("a grant of all lessons lists no lessons or courses")
	}
	if len(g.Lessons)+len(g.Courses) > maxGrantItems {
		return fmt.Errorf("a grant lists at most %d lessons and courses", maxGrantItems)
	}
	for _, id := range append(slices.Clone(g.Lessons), g.Courses...) {
		if !sfu.ValidRoomID(id) {
			return fmt.Errorf("invalid lesson or course id %q", id)
		}
	}
	return nil
}

// covers reports whether the grant reaches the lesson (in course).
func (g *Grant) covers(lesson, course string) bool {
	if g == nil {
		return false
	}
	return g.All || slices.Contains(g.Lessons, lesson) || (course != "" && slices.Contains(g.Courses, course))
}

// String is a stable description of the grant ("courses=a,b lessons=c").
func (g *Grant) String() string {
	if g == nil {
		return ""
	}
	if g.All {
		return "all"
	}
	var parts []string
	if len(g.Courses) > 0 {
		c := slices.Clone(g.Courses)
		sort.Strings(c)
		parts = append(parts, "courses="+strings.Join(c, ","))
	}
	if len(g.Lessons) > 0 {
		l := slices.Clone(g.Lessons)
		sort.Strings(l)
		parts = append(parts, "lessons="+strings.Join(l, ","))
	}
	return strings.Join(parts, " ")
}

// MaxTTL is the longest lifetime of a token per role.
type MaxTTL map[sfu.Role]time.Duration

// DefaultMaxTTL is a school's default: live tokens for a school day and
// some, admin tokens for a month of scripts, student tokens for a term.
func DefaultMaxTTL() MaxTTL {
	return MaxTTL{
		sfu.RoleTeacher:   24 * time.Hour,
		sfu.RoleClassroom: 24 * time.Hour,
		sfu.RoleViewer:    24 * time.Hour,
		sfu.RoleAdmin:     30 * 24 * time.Hour,
		RoleStudent:       180 * 24 * time.Hour,
	}
}

// For is the role's maximum (0 for a role that gets no tokens).
func (m MaxTTL) For(role sfu.Role) time.Duration { return m[role] }

// String lists the maxima as "role=duration,..." (the flag syntax).
func (m MaxTTL) String() string {
	roles := make([]string, 0, len(m))
	for r := range m {
		roles = append(roles, string(r))
	}
	sort.Strings(roles)
	for i, r := range roles {
		roles[i] = r + "=" + m[sfu.Role(r)].String()
	}
	return strings.Join(roles, ",")
}

// Set overrides maxima from "role=duration,..." (flag.Value), starting
// from the defaults.
func (m *MaxTTL) Set(s string) error {
	if *m == nil {
		*m = DefaultMaxTTL()
	}
	for _, part := range strings.Split(s, ",") {
		role, d, ok := strings.Cut(strings.TrimSpace(part), "=")
		dur, err := time.ParseDuration(d)
		if !ok || err != nil || dur <= 0 || !validRole(sfu.Role(role)) {
			return fmt.Errorf("bad token lifetime %q: want role=duration, e.g. teacher=12h (roles: teacher, classroom, viewer, admin, student)", part)
		}
		(*m)[sfu.Role(role)] = dur
	}
	return nil
}
