package vod

import (
	"podium/sfu"
	"podium/signaling/auth"
)

// Mount registers the catalog and playback API on rt, each route with its
// scope:
//
//	GET    /api/vod/courses                          any token (courses of the lessons it sees)
//	PUT    /api/vod/courses/{course}                 server admin
//	DELETE /api/vod/courses/{course}                 server admin
//	GET    /api/vod/courses/{course}/lessons         any token (the lessons it sees)
//	GET    /api/vod/lessons?q=&course=               any token (the lessons it sees)
//	GET    /api/vod/lessons/{lesson}                 replay of the lesson
//	PATCH  /api/vod/lessons/{lesson}                 teacher or admin of the lesson
//	DELETE /api/vod/lessons/{lesson}                 teacher or admin of the lesson
//	POST   /api/vod/lessons/{lesson}/clips           teacher or admin of the lesson
//	DELETE /api/vod/lessons/{lesson}/clips/{clip}    teacher or admin of the lesson
//	GET    /api/vod/media/{lesson}/{path...}         a signature of that object, or replay of the lesson
//	GET    /api/vod/raw/{lesson}/{path...}           a signature of that object, or replay of the lesson
//	                                                 (the recording as HLS, live or just ended; rawhls.go)
//
// It also tells the router each lesson's course, for course-wide student
// tokens.
func (s *Service) Mount(rt *auth.Router) {
	rt.SetCourseOf(s.CourseOf)
	anyToken := auth.AnyToken(sfu.RoleViewer, sfu.RoleClassroom, sfu.RoleTeacher, sfu.RoleAdmin, auth.RoleStudent)
	manage := auth.OfLesson("lesson", sfu.RoleTeacher, sfu.RoleAdmin)
	rt.HandleFunc("GET /api/vod/courses", anyToken, s.ListCourses)
	rt.HandleFunc("PUT /api/vod/courses/{course}", auth.ServerAdminScope(), s.PutCourse)
	rt.HandleFunc("DELETE /api/vod/courses/{course}", auth.ServerAdminScope(), s.DeleteCourse)
	rt.HandleFunc("GET /api/vod/courses/{course}/lessons", anyToken, s.CourseLessons)
	rt.HandleFunc("GET /api/vod/lessons", anyToken, s.ListLessons)
	rt.HandleFunc("GET /api/vod/lessons/{lesson}", auth.ReplayOf("lesson"), s.GetLesson)
	rt.HandleFunc("PATCH /api/vod/lessons/{lesson}", manage, s.PatchLesson)
	rt.HandleFunc("DELETE /api/vod/lessons/{lesson}", manage, s.DeleteLesson)
	rt.HandleFunc("POST /api/vod/lessons/{lesson}/clips", manage, s.CreateClip)
	rt.HandleFunc("DELETE /api/vod/lessons/{lesson}/clips/{clip}", manage, s.DeleteClip)
	rt.Handle("GET /api/vod/media/{lesson}/{path...}", auth.SignedOrReplayOf("lesson"), s.Media())
	rt.Handle("GET /api/vod/raw/{lesson}/{path...}", auth.SignedOrReplayOf("lesson"), s.Raw())
}
