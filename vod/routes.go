package vod

import "net/http"

// Role names as carried in tokens (strings, so vod need not import the sfu).
const (
	RoleViewer    = "viewer"
	RoleClassroom = "classroom"
	RoleTeacher   = "teacher"
	RoleAdmin     = "admin"
)

// Everyone may read the catalog and watch; Staff may edit it.
var (
	Everyone = []string{RoleViewer, RoleClassroom, RoleTeacher, RoleAdmin}
	Staff    = []string{RoleTeacher, RoleAdmin}
)

// AuthFunc wraps a handler so only a valid token with one of the roles
// reaches it (401/403 otherwise).
type AuthFunc func(h http.Handler, roles ...string) http.Handler

// Register mounts the catalog and playback API on mux:
//
//	GET    /api/vod/courses                          everyone
//	PUT    /api/vod/courses/{course}                 teacher, admin
//	DELETE /api/vod/courses/{course}                 admin
//	GET    /api/vod/courses/{course}/lessons         everyone
//	GET    /api/vod/lessons?q=&course=               everyone (search by title/teacher)
//	GET    /api/vod/lessons/{lesson}                 everyone
//	PATCH  /api/vod/lessons/{lesson}                 teacher, admin
//	DELETE /api/vod/lessons/{lesson}                 teacher, admin
//	POST   /api/vod/lessons/{lesson}/clips           teacher, admin
//	DELETE /api/vod/lessons/{lesson}/clips/{clip}    teacher, admin
//	GET    /api/vod/media/{lesson}/{path...}         signed URL, or everyone's token
func (s *Service) Register(mux *http.ServeMux, auth AuthFunc) {
	h := func(f http.HandlerFunc, roles ...string) http.Handler { return auth(f, roles...) }
	mux.Handle("GET /api/vod/courses", h(s.ListCourses, Everyone...))
	mux.Handle("PUT /api/vod/courses/{course}", h(s.PutCourse, Staff...))
	mux.Handle("DELETE /api/vod/courses/{course}", h(s.DeleteCourse, RoleAdmin))
	mux.Handle("GET /api/vod/courses/{course}/lessons", h(s.CourseLessons, Everyone...))
	mux.Handle("GET /api/vod/lessons", h(s.ListLessons, Everyone...))
	mux.Handle("GET /api/vod/lessons/{lesson}", h(s.GetLesson, Everyone...))
	mux.Handle("PATCH /api/vod/lessons/{lesson}", h(s.PatchLesson, Staff...))
	mux.Handle("DELETE /api/vod/lessons/{lesson}", h(s.DeleteLesson, Staff...))
	mux.Handle("POST /api/vod/lessons/{lesson}/clips", h(s.CreateClip, Staff...))
	mux.Handle("DELETE /api/vod/lessons/{lesson}/clips/{clip}", h(s.DeleteClip, Staff...))
	mux.Handle("GET /api/vod/media/{lesson}/{path...}", s.Media(func(next http.Handler) http.Handler { return auth(next, Everyone...) }))
}
