package replaydb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// backend gives a test fresh, empty databases of one kind.
type backend struct {
	name  string
	fresh func(t *testing.T) (dsn string)
}

// runSuite is the behaviour both backends must have. Each subtest gets its
// own empty database.
func runSuite(t *testing.T, b backend) {
	tests := []struct {
		name string
		f    func(t *testing.T, b backend)
	}{
		{"Migrate", testMigrate},
		{"UpgradeFromPrevious", testUpgradeFromPrevious},
		{"ConcurrentOpen", testConcurrentOpen},
		{"Revocations", testRevocations},
		{"Audit", testAudit},
		{"Courses", testCourses},
		{"Lessons", testLessons},
		{"ListAndSearch", testListAndSearch},
		{"Clips", testClips},
		{"TracksAndChapters", testTracksAndChapters},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, b) })
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustOpen(t *testing.T, dsn string) *DB {
	t.Helper()
	db, err := Open(ctxT(t), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// versions lists schema_migrations.
func versions(t *testing.T, db *DB) []int {
	t.Helper()
	rows, err := db.db.QueryContext(ctxT(t), "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	return vs
}

func allVersions() []int {
	var vs []int
	for i := range migrations {
		vs = append(vs, i+1)
	}
	return vs
}

func testMigrate(t *testing.T, b backend) {
	dsn := b.fresh(t)
	db := mustOpen(t, dsn)
	if db.Backend() != b.name {
		t.Fatalf("Backend() = %q, want %q", db.Backend(), b.name)
	}
	if db.applied != len(migrations) {
		t.Fatalf("first Open applied %d steps, want %d", db.applied, len(migrations))
	}
	if got := versions(t, db); !reflect.DeepEqual(got, allVersions()) {
		t.Fatalf("schema_migrations = %v, want %v", got, allVersions())
	}
	if err := db.RevokeToken(ctxT(t), Revocation{JTI: "j", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	again := mustOpen(t, dsn)
	if again.applied != 0 {
		t.Fatalf("re-Open applied %d steps, want 0", again.applied)
	}
	if got := versions(t, again); !reflect.DeepEqual(got, allVersions()) {
		t.Fatalf("schema_migrations after re-Open = %v", got)
	}
	if ok, err := again.IsRevoked(ctxT(t), "j"); err != nil || !ok {
		t.Fatalf("row written before re-Open: IsRevoked = %v, %v", ok, err)
	}
}

// A database at the previous schema version, with rows in it, is upgraded
// by Open and keeps its rows.
func testUpgradeFromPrevious(t *testing.T, b backend) {
	ctx := ctxT(t)
	dsn := b.fresh(t)
	prev := len(migrations) - 1
	old, err := open(ctx, dsn, migrations[:prev])
	if err != nil {
		t.Fatalf("open at version %d: %v", prev, err)
	}
	if got := versions(t, old); len(got) != prev {
		t.Fatalf("at version %d: schema_migrations = %v", prev, got)
	}
	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	if err := old.RevokeToken(ctx, Revocation{JTI: "old-token", ExpiresAt: exp, RevokedBy: "admin", Reason: "lost"}); err != nil {
		t.Fatal(err)
	}
	if err := old.AppendAudit(ctx, AuditEntry{Actor: "admin", Action: "token.revoke", Object: "old-token"}); err != nil {
		t.Fatal(err)
	}
	catalog := prev >= 2 // the catalog tables exist from version 2
	if catalog {
		seedCatalog(t, old)
	}
	old.Close()

	db := mustOpen(t, dsn)
	if db.applied != 1 {
		t.Fatalf("upgrade applied %d steps, want 1", db.applied)
	}
	if got := versions(t, db); !reflect.DeepEqual(got, allVersions()) {
		t.Fatalf("schema_migrations after upgrade = %v", got)
	}
	revs, err := db.ListRevocations(ctx)
	if err != nil || len(revs) != 1 || revs[0].JTI != "old-token" || !revs[0].ExpiresAt.Equal(exp) || revs[0].Reason != "lost" {
		t.Fatalf("revocations after upgrade = %+v, %v", revs, err)
	}
	audit, err := db.ListAudit(ctx, AuditFilter{})
	if err != nil || len(audit) != 1 || audit[0].Object != "old-token" {
		t.Fatalf("audit after upgrade = %+v, %v", audit, err)
	}
	if catalog {
		checkSeededCatalog(t, db)
	}
	// The new version's tables work.
	if err := db.PutCourse(ctx, Course{ID: "new", Title: "New"}); err != nil {
		t.Fatal(err)
	}
	if err := db.UpsertLesson(ctx, LessonRecord{ID: "new-lesson", Course: "new", StartedAt: time.Now(), Status: StatusReady}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutClip(ctx, Clip{Lesson: "new-lesson", ID: "c", Start: 1, End: 2}); err != nil {
		t.Fatal(err)
	}
}

func seedCatalog(t *testing.T, db *DB) {
	ctx := ctxT(t)
	if err := db.PutCourse(ctx, Course{ID: "seed-course", Title: "Seeded"}); err != nil {
		t.Fatal(err)
	}
	if err := db.UpsertLesson(ctx, LessonRecord{ID: "seed-lesson", Title: "Seeded lesson", Course: "seed-course",
		StartedAt: time.Now(), Status: StatusReady}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutClip(ctx, Clip{Lesson: "seed-lesson", ID: "seed-clip", Start: 1, End: 5}); err != nil {
		t.Fatal(err)
	}
}

func checkSeededCatalog(t *testing.T, db *DB) {
	ctx := ctxT(t)
	l, err := db.GetLesson(ctx, "seed-lesson")
	if err != nil || l.Course != "seed-course" || l.Title != "Seeded lesson" {
		t.Fatalf("seeded lesson after upgrade = %+v, %v", l, err)
	}
	if clips, err := db.ListClips(ctx, "seed-lesson"); err != nil || len(clips) != 1 {
		t.Fatalf("seeded clips after upgrade = %+v, %v", clips, err)
	}
	// The search index (version 4) holds the lessons from before it.
	if ls, err := db.ListLessons(ctx, LessonFilter{Query: "seeded"}); err != nil || ids(ls) != "seed-lesson" {
		t.Fatalf("search after upgrade = %q, %v", ids(ls), err)
	}
}

// Several nodes start at once on one empty database: every Open succeeds
// and each step is applied exactly once.
func testConcurrentOpen(t *testing.T, b backend) {
	dsn := b.fresh(t)
	const n = 4
	var wg sync.WaitGroup
	dbs := make([]*DB, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			dbs[i], errs[i] = Open(ctxT(t), dsn)
		})
	}
	close(start)
	wg.Wait()
	applied := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Open %d: %v", i, errs[i])
		}
		applied += dbs[i].applied
		defer dbs[i].Close()
	}
	if applied != len(migrations) {
		t.Fatalf("%d concurrent Opens applied %d steps in all, want %d", n, applied, len(migrations))
	}
	if got := versions(t, dbs[0]); !reflect.DeepEqual(got, allVersions()) {
		t.Fatalf("schema_migrations = %v, want %v", got, allVersions())
	}
	// All handles write to the same database.
	for i, db := range dbs {
		if err := db.AppendAudit(ctxT(t), AuditEntry{Actor: fmt.Sprint("node", i), Action: "token.issue"}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := dbs[0].ListAudit(ctxT(t), AuditFilter{}); err != nil || len(got) != n {
		t.Fatalf("audit lines from %d handles = %d, %v", n, len(got), err)
	}
}

func testRevocations(t *testing.T, b backend) {
	ctx := ctxT(t)
	dsn := b.fresh(t)
	db := mustOpen(t, dsn)
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	db.now = func() time.Time { return now }

	if err := db.RevokeToken(ctx, Revocation{JTI: "", ExpiresAt: now}); err == nil {
		t.Fatal("RevokeToken without a jti succeeded")
	}
	if err := db.RevokeToken(ctx, Revocation{JTI: "x"}); err == nil {
		t.Fatal("RevokeToken without an expiry succeeded")
	}
	a := Revocation{JTI: "a", ExpiresAt: now.Add(time.Hour), RevokedAt: now.Add(-time.Minute), RevokedBy: "admin", Reason: "stolen"}
	if err := db.RevokeToken(ctx, a); err != nil {
		t.Fatal(err)
	}
	// Again, differently: idempotent, the first one stays.
	if err := db.RevokeToken(ctx, Revocation{JTI: "a", ExpiresAt: now.Add(2 * time.Hour), RevokedBy: "other", Reason: "again"}); err != nil {
		t.Fatalf("revoking again: %v", err)
	}
	// RevokedAt defaults to now.
	bb := Revocation{JTI: "b", ExpiresAt: now.Add(-time.Second), RevokedBy: "cli"}
	if err := db.RevokeToken(ctx, bb); err != nil {
		t.Fatal(err)
	}
	bb.RevokedAt = now
	for jti, want := range map[string]bool{"a": true, "b": true, "c": false, "": false} {
		if got, err := db.IsRevoked(ctx, jti); err != nil || got != want {
			t.Fatalf("IsRevoked(%q) = %v, %v; want %v", jti, got, err, want)
		}
	}
	got, err := db.ListRevocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Revocation{bb, a}; !reflect.DeepEqual(got, want) {
		t.Fatalf("ListRevocations =\n%+v\nwant (newest first)\n%+v", got, want)
	}

	// Survives a restart.
	db.Close()
	db = mustOpen(t, dsn)
	if ok, err := db.IsRevoked(ctx, "a"); err != nil || !ok {
		t.Fatalf("after reopen IsRevoked(a) = %v, %v", ok, err)
	}

	// Prune drops b (its token expired), keeps a.
	n, err := db.PruneRevocations(ctx, now)
	if err != nil || n != 1 {
		t.Fatalf("PruneRevocations = %d, %v; want 1", n, err)
	}
	if ok, _ := db.IsRevoked(ctx, "b"); ok {
		t.Fatal("expired revocation b still there after prune")
	}
	if ok, _ := db.IsRevoked(ctx, "a"); !ok {
		t.Fatal("live revocation a pruned")
	}
	if n, err := db.PruneRevocations(ctx, now); err != nil || n != 0 {
		t.Fatalf("second prune = %d, %v", n, err)
	}
}

func testAudit(t *testing.T, b backend) {
	ctx := ctxT(t)
	db := mustOpen(t, b.fresh(t))
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	db.now = func() time.Time { return t0.Add(time.Hour) }

	if err := db.AppendAudit(ctx, AuditEntry{Actor: "t", Action: ""}); err == nil {
		t.Fatal("AppendAudit without an action succeeded")
	}
	entries := []AuditEntry{
		{At: t0, Actor: "teacher-1", Role: "teacher", Action: "lesson.rename", Lesson: "L1", Detail: `"a" -> "b"`, RemoteAddr: "10.0.0.1"},
		{At: t0.Add(time.Minute), Actor: "student-7", Role: "student", Action: "lesson.download", Lesson: "L2", Object: "download.mp4"},
		{At: t0.Add(time.Minute), Actor: "teacher-1", Role: "teacher", Action: "clip.create", Lesson: "L1", Object: "clip-1"},
		{Actor: "system", Action: "retention.delete", Lesson: "L3"}, // At = now
	}
	for _, e := range entries {
		if err := db.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	actions := func(es []AuditEntry) string {
		var s []string
		for _, e := range es {
			s = append(s, e.Action)
		}
		return strings.Join(s, " ")
	}
	all, err := db.ListAudit(ctx, AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	// Newest first; two lines at the same moment in the order written, newest first.
	if got, want := actions(all), "retention.delete clip.create lesson.download lesson.rename"; got != want {
		t.Fatalf("ListAudit = %s, want %s", got, want)
	}
	if !all[0].At.Equal(t0.Add(time.Hour)) || all[0].ID == 0 {
		t.Fatalf("entry written without At: %+v", all[0])
	}
	last := all[3]
	want := entries[0]
	want.ID = last.ID
	if !reflect.DeepEqual(last, want) {
		t.Fatalf("round trip:\n%+v\nwant\n%+v", last, want)
	}
	for _, tc := range []struct {
		f    AuditFilter
		want string
	}{
		{AuditFilter{Lesson: "L1"}, "clip.create lesson.rename"},
		{AuditFilter{Lesson: "none"}, ""},
		{AuditFilter{Since: t0.Add(time.Minute)}, "retention.delete clip.create lesson.download"},
		{AuditFilter{Limit: 2}, "retention.delete clip.create"},
		{AuditFilter{Lesson: "L1", Since: t0.Add(time.Second), Limit: 5}, "clip.create"},
	} {
		got, err := db.ListAudit(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		if actions(got) != tc.want {
			t.Errorf("ListAudit(%+v) = %q, want %q", tc.f, actions(got), tc.want)
		}
	}
}

func testCourses(t *testing.T, b backend) {
	ctx := ctxT(t)
	db := mustOpen(t, b.fresh(t))
	if err := db.PutCourse(ctx, Course{Title: "no id"}); err == nil {
		t.Fatal("PutCourse without an id succeeded")
	}
	for _, c := range []Course{
		{ID: "math", Title: "Mathematics", Description: "Grade 7"},
		{ID: "bio", Title: "Biology"},
		{ID: "chem", Title: "Chemistry"},
	} {
		if err := db.PutCourse(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	// Replace keeps the id, changes the rest.
	if err := db.PutCourse(ctx, Course{ID: "chem", Title: "Chemistry II", Description: "Grade 8"}); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)
	for i, course := range []string{"math", "math", "bio", ""} {
		if err := db.UpsertLesson(ctx, LessonRecord{ID: fmt.Sprint("l", i), Course: course,
			StartedAt: start.Add(time.Duration(i) * time.Hour), Status: StatusReady}); err != nil {
			t.Fatal(err)
		}
	}
	// A lesson filed in a course that does not exist.
	err := db.UpsertLesson(ctx, LessonRecord{ID: "lx", Course: "nope", StartedAt: start, Status: StatusReady})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("UpsertLesson into a missing course: %v, want ErrNotFound", err)
	}

	counts := func() string {
		cs, err := db.ListCourses(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, c := range cs {
			s = append(s, fmt.Sprintf("%s:%s:%d", c.ID, c.Title, c.LessonCount))
		}
		return strings.Join(s, " ")
	}
	if got, want := counts(), "bio:Biology:1 chem:Chemistry II:0 math:Mathematics:2"; got != want {
		t.Fatalf("ListCourses = %s, want %s", got, want)
	}
	c, err := db.GetCourse(ctx, "math")
	if err != nil || c.Title != "Mathematics" || c.Description != "Grade 7" || c.LessonCount != 2 || c.UpdatedAt.IsZero() {
		t.Fatalf("GetCourse(math) = %+v, %v", c, err)
	}
	if _, err := db.GetCourse(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetCourse(missing) = %v, want ErrNotFound", err)
	}

	// Deleting a course unsorts its lessons; they stay.
	if err := db.DeleteCourse(ctx, "math"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteCourse(ctx, "math"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeleteCourse again = %v, want ErrNotFound", err)
	}
	for _, id := range []string{"l0", "l1"} {
		l, err := db.GetLesson(ctx, id)
		if err != nil || l.Course != "" {
			t.Fatalf("lesson %s after its course was deleted: %+v, %v", id, l, err)
		}
	}
	if l, _ := db.GetLesson(ctx, "l2"); l.Course != "bio" {
		t.Fatalf("lesson of another course touched: %+v", l)
	}
	if got, want := counts(), "bio:Biology:1 chem:Chemistry II:0"; got != want {
		t.Fatalf("ListCourses after delete = %s, want %s", got, want)
	}
}

func testLessons(t *testing.T, b backend) {
	ctx := ctxT(t)
	db := mustOpen(t, b.fresh(t))
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	db.now = func() time.Time { return now }
	if err := db.PutCourse(ctx, Course{ID: "geo", Title: "Geography"}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutCourse(ctx, Course{ID: "hist", Title: "History"}); err != nil {
		t.Fatal(err)
	}

	started := time.Date(2026, 3, 1, 9, 0, 0, 123_456_789, time.UTC)
	rec := LessonRecord{ID: "L1", Title: "Rivers", Course: "geo", Teacher: "Ms. Lan", StartedAt: started, Status: StatusRecording}
	if err := db.UpsertLesson(ctx, rec); err != nil {
		t.Fatal(err)
	}
	got, err := db.GetLesson(ctx, "L1")
	if err != nil {
		t.Fatal(err)
	}
	want := rec
	want.StartedAt = started.Truncate(time.Millisecond)
	want.UpdatedAt = now
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("GetLesson =\n%+v\nwant\n%+v", got, want)
	}

	for _, bad := range []LessonRecord{
		{Title: "no id", Status: StatusReady},
		{ID: "x", Status: "done"},
		{ID: "x", Status: StatusReady, Duration: -1},
	} {
		if err := db.UpsertLesson(ctx, bad); err == nil {
			t.Fatalf("UpsertLesson(%+v) succeeded", bad)
		}
	}

	// A teacher renames it and files it elsewhere.
	title, course := "Rivers of Asia", "hist"
	if err := db.SetLessonMeta(ctx, "L1", &title, &course); err != nil {
		t.Fatal(err)
	}
	// The manifest is indexed again (recording ended, new recorded title,
	// another course): the rename and the course stay.
	ended := started.Add(45 * time.Minute)
	rec2 := LessonRecord{ID: "L1", Title: "Rivers (recorded)", Course: "geo", Teacher: "Ms. Lan Nguyen",
		StartedAt: started, EndedAt: ended, Duration: 2700.5, Status: StatusProcessing}
	if err := db.UpsertLesson(ctx, rec2); err != nil {
		t.Fatal(err)
	}
	got, _ = db.GetLesson(ctx, "L1")
	want = LessonRecord{ID: "L1", Title: "Rivers of Asia", Course: "hist", Teacher: "Ms. Lan Nguyen",
		StartedAt: started.Truncate(time.Millisecond), EndedAt: ended.Truncate(time.Millisecond),
		Duration: 2700.5, Status: StatusProcessing, UpdatedAt: now}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after rename and re-index =\n%+v\nwant\n%+v", got, want)
	}
	// Search follows the shown title and the new teacher name.
	searchIDs := func(q string) string {
		ls, err := db.ListLessons(ctx, LessonFilter{Query: q})
		if err != nil {
			t.Fatal(err)
		}
		return ids(ls)
	}
	for q, want := range map[string]string{"asia": "L1", "recorded": "", "nguyen": "L1"} {
		if got := searchIDs(q); got != want {
			t.Fatalf("search %q = %q, want %q", q, got, want)
		}
	}

	// Only the course: the title stays. Then drop the rename: the
	// recorded title is back, and searchable.
	unsorted := ""
	if err := db.SetLessonMeta(ctx, "L1", nil, &unsorted); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.GetLesson(ctx, "L1"); got.Title != "Rivers of Asia" || got.Course != "" {
		t.Fatalf("after unsorting: %+v", got)
	}
	none := ""
	if err := db.SetLessonMeta(ctx, "L1", &none, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.GetLesson(ctx, "L1"); got.Title != "Rivers (recorded)" || got.Course != "" {
		t.Fatalf("after dropping the rename: %+v", got)
	}
	if got := searchIDs("RECORDED"); got != "L1" {
		t.Fatalf("search after dropping the rename = %q", got)
	}

	missing := "nope"
	if err := db.SetLessonMeta(ctx, "L1", nil, &missing); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetLessonMeta into a missing course = %v, want ErrNotFound", err)
	}
	if err := db.SetLessonMeta(ctx, "L9", &title, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetLessonMeta of a missing lesson = %v, want ErrNotFound", err)
	}
	if _, err := db.GetLesson(ctx, "L9"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetLesson(missing) = %v, want ErrNotFound", err)
	}

	// Retention: lessons started before a time, oldest first.
	for i, id := range []string{"old2", "old1"} {
		if err := db.UpsertLesson(ctx, LessonRecord{ID: id, StartedAt: started.AddDate(0, 0, -10*(i+1)), Status: StatusReady}); err != nil {
			t.Fatal(err)
		}
	}
	old, err := db.LessonsStartedBefore(ctx, started.AddDate(0, 0, -5))
	if err != nil || ids(old) != "old1 old2" {
		t.Fatalf("LessonsStartedBefore = %q, %v; want old1 old2", ids(old), err)
	}
	if old, _ := db.LessonsStartedBefore(ctx, started.AddDate(0, 0, -30)); len(old) != 0 {
		t.Fatalf("LessonsStartedBefore 30 days = %q", ids(old))
	}

	if err := db.DeleteLesson(ctx, "L1"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteLesson(ctx, "L1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeleteLesson again = %v, want ErrNotFound", err)
	}
	if _, err := db.GetLesson(ctx, "L1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted lesson: GetLesson = %v", err)
	}
}

func ids(ls []LessonRecord) string {
	var s []string
	for _, l := range ls {
		s = append(s, l.ID)
	}
	return strings.Join(s, " ")
}

func testListAndSearch(t *testing.T, b backend) {
	ctx := ctxT(t)
	db := mustOpen(t, b.fresh(t))
	for _, c := range []string{"math", "bio", "art"} {
		if err := db.PutCourse(ctx, Course{ID: c, Title: c}); err != nil {
			t.Fatal(err)
		}
	}
	day := time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC)
	lessons := []LessonRecord{
		{ID: "a1", Title: "Algebra: linear equations", Course: "math", Teacher: "Mr. Hùng", StartedAt: day},
		{ID: "a2", Title: "Geometry basics", Course: "math", Teacher: "Mr. Hùng", StartedAt: day.Add(24 * time.Hour)},
		{ID: "b1", Title: "Cells and DNA", Course: "bio", Teacher: "Ms. Lan", StartedAt: day.Add(48 * time.Hour)},
		{ID: "b2", Title: "ÉCOLE des plantes", Course: "bio", Teacher: "Ms. Lan", StartedAt: day.Add(48 * time.Hour)}, // same start as b1
		{ID: "c1", Title: "Drawing 100% freehand", Course: "art", Teacher: "Mrs. Smith_Jones", StartedAt: day.Add(72 * time.Hour)},
		{ID: "u1", Title: "Assembly", Teacher: "Principal", StartedAt: day.Add(96 * time.Hour)}, // unsorted
	}
	for _, l := range lessons {
		l.Status = StatusReady
		if err := db.UpsertLesson(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		f    LessonFilter
		want string
	}{
		{"all, newest first, id breaks ties", LessonFilter{}, "u1 c1 b1 b2 a2 a1"},
		{"explicit all", LessonFilter{All: true, Lessons: []string{"a1"}}, "u1 c1 b1 b2 a2 a1"},
		{"limit", LessonFilter{Limit: 2}, "u1 c1"},
		{"page 2", LessonFilter{Limit: 2, Offset: 2}, "b1 b2"},
		{"offset alone", LessonFilter{Offset: 4}, "a2 a1"},
		{"course", LessonFilter{Course: "bio"}, "b1 b2"},
		{"lesson grant", LessonFilter{Lessons: []string{"a1", "c1", "zz"}}, "c1 a1"},
		{"course grant", LessonFilter{Courses: []string{"math"}}, "a2 a1"},
		{"lesson or course grant", LessonFilter{Lessons: []string{"u1"}, Courses: []string{"bio"}}, "u1 b1 b2"},
		{"empty grant is nothing", LessonFilter{Lessons: []string{}}, ""},
		{"empty grants are nothing", LessonFilter{Lessons: []string{}, Courses: []string{}}, ""},
		{"grant and course", LessonFilter{Courses: []string{"math", "bio"}, Course: "bio"}, "b1 b2"},
		{"grant excludes course", LessonFilter{Lessons: []string{"a1"}, Course: "bio"}, ""},
		{"one word", LessonFilter{Query: "geometry"}, "a2"},
		{"any case", LessonFilter{Query: "GEOMETRY"}, "a2"},
		{"part of a word", LessonFilter{Query: "lin"}, "a1"},
		{"teacher", LessonFilter{Query: "lan"}, "b1 b2"},
		{"every word, title or teacher", LessonFilter{Query: "  hùng   ALGEBRA "}, "a1"},
		{"every word must match", LessonFilter{Query: "hùng dna"}, ""},
		{"non-ASCII, every word", LessonFilter{Query: "école HÙNG"}, ""},
		{"non-ASCII upper in data", LessonFilter{Query: "école"}, "b2"},
		{"non-ASCII upper in query", LessonFilter{Query: "HÙNG"}, "a2 a1"},
		{"percent is literal", LessonFilter{Query: "100%"}, "c1"},
		{"lone percent", LessonFilter{Query: "%"}, "c1"},
		{"underscore is literal", LessonFilter{Query: "h_ng"}, ""},
		{"underscore in data", LessonFilter{Query: "smith_"}, "c1"},
		{"backslash", LessonFilter{Query: `\`}, ""},
		{"search within grant", LessonFilter{Courses: []string{"math"}, Query: "a"}, "a2 a1"},
		{"search and paging", LessonFilter{Query: "s", Limit: 2, Offset: 1}, "c1 b1"},
		{"no word spans title and teacher", LessonFilter{Query: "freehandmrs"}, ""},
	} {
		got, err := db.ListLessons(ctx, tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if ids(got) != tc.want {
			t.Errorf("%s: ListLessons(%+v) = %q, want %q", tc.name, tc.f, ids(got), tc.want)
		}
		count := tc.f
		count.Limit, count.Offset = 0, 0
		all, err := db.ListLessons(ctx, count)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := db.CountLessons(ctx, tc.f); err != nil || n != len(all) {
			t.Errorf("%s: CountLessons = %d, %v; want %d", tc.name, n, err, len(all))
		}
	}
	// A very long title is kept whole; its start is searchable.
	long := "Épique " + strings.Repeat("très long titre ", 1000)
	if err := db.UpsertLesson(ctx, LessonRecord{ID: "long", Title: long, Teacher: "Ms. Lan", StartedAt: day, Status: StatusReady}); err != nil {
		t.Fatalf("lesson with a %d-byte title: %v", len(long), err)
	}
	if l, err := db.GetLesson(ctx, "long"); err != nil || l.Title != long {
		t.Fatalf("long title not kept whole: %d bytes, %v", len(l.Title), err)
	}
	if got, err := db.ListLessons(ctx, LessonFilter{Query: "épique lan"}); err != nil || ids(got) != "long" {
		t.Fatalf("search in a long title = %q, %v", ids(got), err)
	}
	// A grant of as many lessons as a filter takes.
	big := make([]string, maxFilterIDs)
	for i := range big {
		big[i] = fmt.Sprint("missing-", i)
	}
	big[17], big[maxFilterIDs-1] = "a1", "b2"
	if got, err := db.ListLessons(ctx, LessonFilter{Lessons: big, Query: "l", Limit: 10}); err != nil || ids(got) != "b2 a1" {
		t.Fatalf("grant of %d lessons = %q, %v; want b2 a1", len(big), ids(got), err)
	}
	if _, err := db.ListLessons(ctx, LessonFilter{Lessons: make([]string, maxFilterIDs+1)}); err == nil {
		t.Fatal("a filter with too many lessons was accepted")
	}
}

func testClips(t *testing.T, b backend) {
	ctx := ctxT(t)
	db := mustOpen(t, b.fresh(t))
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	db.now = func() time.Time { return now }
	for _, id := range []string{"L1", "L2"} {
		if err := db.UpsertLesson(ctx, LessonRecord{ID: id, StartedAt: now, Status: StatusReady}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []Clip{
		{Lesson: "L1", ID: "late", Title: "Summary", Start: 600, End: 660.25},
		{Lesson: "L1", ID: "early", Title: "Intro", Start: 0, End: 30},
		{Lesson: "L2", ID: "other", Start: 1, End: 2},
	} {
		if err := db.PutClip(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []Clip{
		{Lesson: "L1", ID: "x", Start: 5, End: 5},
		{Lesson: "L1", ID: "x", Start: -1, End: 5},
		{Lesson: "L1", ID: "x", Start: 0, End: math.Inf(1)},
		{Lesson: "L1", ID: "x", Start: math.NaN(), End: 1},
		{Lesson: "L1", Start: 0, End: 1},
	} {
		if err := db.PutClip(ctx, bad); err == nil {
			t.Fatalf("PutClip(%+v) succeeded", bad)
		}
	}
	if err := db.PutClip(ctx, Clip{Lesson: "nope", ID: "c", Start: 0, End: 1}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("PutClip of a missing lesson = %v, want ErrNotFound", err)
	}
	// Replacing a clip keeps its creation time.
	later := now.Add(time.Hour)
	db.now = func() time.Time { return later }
	if err := db.PutClip(ctx, Clip{Lesson: "L1", ID: "late", Title: "Summary (short)", Start: 600, End: 630}); err != nil {
		t.Fatal(err)
	}
	clips, err := db.ListClips(ctx, "L1")
	if err != nil {
		t.Fatal(err)
	}
	want := []Clip{
		{Lesson: "L1", ID: "early", Title: "Intro", Start: 0, End: 30, CreatedAt: now},
		{Lesson: "L1", ID: "late", Title: "Summary (short)", Start: 600, End: 630, CreatedAt: now},
	}
	if !reflect.DeepEqual(clips, want) {
		t.Fatalf("ListClips =\n%+v\nwant\n%+v", clips, want)
	}
	if c, err := db.GetClip(ctx, "L1", "early"); err != nil || !reflect.DeepEqual(c, want[0]) {
		t.Fatalf("GetClip = %+v, %v", c, err)
	}
	if _, err := db.GetClip(ctx, "L2", "early"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetClip of another lesson's clip = %v, want ErrNotFound", err)
	}
	if err := db.DeleteClip(ctx, "L1", "early"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteClip(ctx, "L1", "early"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeleteClip again = %v, want ErrNotFound", err)
	}

	// Deleting the lesson deletes its clips, and only its clips.
	if err := db.DeleteLesson(ctx, "L1"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM clips WHERE lesson_id = 'L1'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("clips of a deleted lesson: %d, %v", n, err)
	}
	if err := db.UpsertLesson(ctx, LessonRecord{ID: "L1", StartedAt: now, Status: StatusReady}); err != nil {
		t.Fatal(err)
	}
	if clips, err := db.ListClips(ctx, "L1"); err != nil || len(clips) != 0 {
		t.Fatalf("re-created lesson has clips %+v, %v", clips, err)
	}
	if clips, err := db.ListClips(ctx, "L2"); err != nil || len(clips) != 1 {
		t.Fatalf("other lesson's clips = %+v, %v", clips, err)
	}
}

func testTracksAndChapters(t *testing.T, b backend) {
	ctx := ctxT(t)
	db := mustOpen(t, b.fresh(t))
	if err := db.SetLessonDetail(ctx, "nope", nil, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("detail of a missing lesson: %v, want ErrNotFound", err)
	}
	if err := db.UpsertLesson(ctx, LessonRecord{ID: "L1", StartedAt: time.Now(), Status: StatusRecording}); err != nil {
		t.Fatal(err)
	}
	set := func(n int) {
		t.Helper()
		tracks := []Track{{ID: "cam", Participant: "Ms. Li", Role: "teacher", Kind: "video", Source: "camera", Codec: "h264", Segments: n, Recorded: float64(4 * n)},
			{ID: "mic", Role: "teacher", Kind: "audio", Source: "microphone", Codec: "opus", Segments: n, Recorded: float64(4 * n)}}
		chs := []Chapter{{Time: 3, Type: "screenStart", Title: "Screen share"}, {Time: 9.5, Type: "stage", Title: "On stage: Hill School"}}
		if err := db.SetLessonDetail(ctx, "L1", tracks[:1+n%2], chs[:1+n%2]); err != nil {
			t.Fatal(err)
		}
	}
	set(3) // two tracks, two chapters
	set(4) // replaced: one track, one chapter, more segments
	tracks, err := db.LessonTracks(ctx, "L1")
	if err != nil || len(tracks) != 1 || tracks[0].Segments != 4 || tracks[0].Recorded != 16 || tracks[0].Participant != "Ms. Li" {
		t.Fatalf("tracks = %+v, %v", tracks, err)
	}
	chs, err := db.LessonChapters(ctx, "L1")
	if err != nil || len(chs) != 1 || chs[0].Type != "screenStart" || chs[0].Time != 3 {
		t.Fatalf("chapters = %+v, %v", chs, err)
	}
	if err := db.DeleteLesson(ctx, "L1"); err != nil {
		t.Fatal(err)
	}
	if tracks, _ := db.LessonTracks(ctx, "L1"); len(tracks) != 0 {
		t.Errorf("tracks outlived their lesson: %+v", tracks)
	}
}
