package replaydb

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"podium/internal/testenv"
)

// benchLessons is the catalog size of the benchmarks: a county's lessons
// over a few years.
const benchLessons = 100_000

// BenchmarkCatalog lists and searches a catalog of 100,000 lessons in 500
// courses in each backend, reporting p50 and p99 per query in milliseconds:
//
//	go test -run '^$' -bench Catalog -benchtime 2s ./replaydb/
func BenchmarkCatalog(b *testing.B) {
	backends := []struct {
		name string
		dsn  func(b *testing.B) string
	}{
		{SQLite, func(b *testing.B) string { return "sqlite:" + filepath.Join(b.TempDir(), "podium.db") }},
		{Postgres, func(b *testing.B) string { return createDatabase(b, testenv.StartPostgres(b), "bench") }},
	}
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			ctx := context.Background()
			db, err := Open(ctx, be.dsn(b))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			t0 := time.Now()
			data := fillCatalog(b, db)
			b.Logf("%s: %d lessons in %d courses written in %v", be.name, benchLessons, len(data.courses), time.Since(t0).Round(time.Millisecond))
			benchCatalogQueries(b, db, data)
		})
	}
}

type benchData struct {
	courses []string
	lessons []string
}

var (
	benchSubjects = []string{"Mathematics", "Physics", "Chemistry", "Biology", "Geography", "History",
		"Literature", "English", "French", "Music", "Art", "Informatics", "Economics", "Civics",
		"Astronomy", "Geology", "Philosophy", "Statistics", "Algebra", "Geometry"}
	benchTopics = []string{"introduction", "review", "exercises", "exam preparation", "lab work", "project",
		"fractions", "equations", "energy", "motion", "cells", "genetics", "rivers", "climate", "revolution",
		"poetry", "grammar", "vocabulary", "rhythm", "colour", "algorithms", "markets", "rights", "planets",
		"rocks", "ethics", "probability", "vectors", "triangles", "waves"}
	benchFamily = []string{"Nguyen", "Tran", "Le", "Pham", "Hoang", "Huynh", "Phan", "Vu", "Vo", "Dang",
		"Bui", "Do", "Ho", "Ngo", "Duong", "Ly", "Smith", "Garcia", "Müller", "Rossi", "Dubois", "Kowalski",
		"Novak", "Silva", "Costa", "Jensen", "Hansen", "Ivanova", "Petrov", "Yilmaz"}
	benchGiven = []string{"An", "Binh", "Chi", "Dung", "Giang", "Ha", "Hung", "Khanh", "Lan", "Linh",
		"Mai", "Minh", "Nam", "Phuong", "Quang", "Son", "Thao", "Trang", "Tuan", "Van"}
)

// fillCatalog writes the benchmark catalog (deterministic) in large
// multi-row inserts, the same rows UpsertLesson would write.
func fillCatalog(b testing.TB, db *DB) benchData {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	var data benchData
	for i := range 500 {
		id := fmt.Sprintf("course-%03d", i)
		title := fmt.Sprintf("%s %d%c", benchSubjects[i%len(benchSubjects)], 6+i%7, 'A'+rune(i/140))
		if err := db.PutCourse(ctx, Course{ID: id, Title: title}); err != nil {
			b.Fatal(err)
		}
		data.courses = append(data.courses, id)
	}
	start := time.Date(2024, 9, 1, 7, 0, 0, 0, time.UTC)
	const batch = 100
	now := ms(time.Now())
	err := db.withTx(ctx, func(tx *sql.Tx) error {
		var q strings.Builder
		var args []any
		flush := func() error {
			if len(args) == 0 {
				return nil
			}
			_, err := tx.ExecContext(ctx, q.String(), args...)
			q.Reset()
			args = args[:0]
			return err
		}
		for i := range benchLessons {
			if len(args) == 0 {
				q.WriteString(`INSERT INTO lessons (id, title, course_id, teacher, started_at, ended_at, duration, status, search, updated_at) VALUES `)
			} else {
				q.WriteString(", ")
			}
			n := len(args)
			fmt.Fprintf(&q, "($%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6, n+7, n+8, n+9, n+10)
			id := fmt.Sprintf("lesson-%06d", i)
			course := sql.NullString{}
			if rng.IntN(10) > 0 { // 10 % unsorted
				course = sql.NullString{String: data.courses[rng.IntN(len(data.courses))], Valid: true}
			}
			title := fmt.Sprintf("%s: %s, part %d", benchSubjects[rng.IntN(len(benchSubjects))],
				benchTopics[rng.IntN(len(benchTopics))], 1+rng.IntN(12))
			teacher := benchGiven[rng.IntN(len(benchGiven))] + " " + benchFamily[rng.IntN(len(benchFamily))]
			// Two years of school days, several lessons an hour.
			started := start.Add(time.Duration(rng.Int64N(int64(2 * 365 * 24 * time.Hour)))).Truncate(time.Second)
			dur := 1800 + rng.Float64()*1800
			args = append(args, id, title, course, teacher, ms(started), ms(started.Add(time.Duration(dur*float64(time.Second)))),
				dur, StatusReady, searchText(title, teacher), now)
			data.lessons = append(data.lessons, id)
			if (i+1)%batch == 0 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return flush()
	})
	if err != nil {
		b.Fatalf("fill catalog: %v", err)
	}
	if db.backend == Postgres {
		// What autovacuum does soon after a bulk load (PostgreSQL 13 and
		// later vacuum tables after many inserts too).
		if _, err := db.db.ExecContext(ctx, "VACUUM ANALYZE lessons"); err != nil {
			b.Fatal(err)
		}
	}
	return data
}

func benchCatalogQueries(b *testing.B, db *DB, data benchData) {
	ctx := context.Background()
	pick := func(rng *rand.Rand, from []string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = from[rng.IntN(len(from))]
		}
		return out
	}
	words := []string{"mathematics", "physics", "rivers", "nguyen", "lan", "exam", "müller", "part 7"}
	cases := []struct {
		name   string
		filter func(rng *rand.Rand) LessonFilter
	}{
		{"list/first-page", func(*rand.Rand) LessonFilter { return LessonFilter{Limit: 50} }},
		{"list/page-100", func(*rand.Rand) LessonFilter { return LessonFilter{Limit: 50, Offset: 4950} }},
		{"list/course", func(r *rand.Rand) LessonFilter {
			return LessonFilter{Course: data.courses[r.IntN(len(data.courses))], Limit: 50}
		}},
		{"list/grant-3-courses", func(r *rand.Rand) LessonFilter {
			return LessonFilter{Courses: pick(r, data.courses, 3), Limit: 50}
		}},
		{"list/grant-200-lessons", func(r *rand.Rand) LessonFilter {
			return LessonFilter{Lessons: pick(r, data.lessons, 200), Limit: 50}
		}},
		{"list/grant-10000-lessons", func(r *rand.Rand) LessonFilter {
			return LessonFilter{Lessons: pick(r, data.lessons, 10000), Limit: 50}
		}},
		{"search/common-word", func(r *rand.Rand) LessonFilter {
			return LessonFilter{Query: words[r.IntN(len(words))], Limit: 50}
		}},
		{"search/two-words", func(r *rand.Rand) LessonFilter {
			return LessonFilter{Query: benchSubjects[r.IntN(len(benchSubjects))] + " " + benchFamily[r.IntN(len(benchFamily))], Limit: 50}
		}},
		{"search/no-match", func(r *rand.Rand) LessonFilter {
			return LessonFilter{Query: fmt.Sprintf("zq%d", r.IntN(1000)), Limit: 50}
		}},
		{"search/in-course", func(r *rand.Rand) LessonFilter {
			return LessonFilter{Course: data.courses[r.IntN(len(data.courses))], Query: "part", Limit: 50}
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(3, 4))
			lat := make([]time.Duration, 0, 1024)
			for b.Loop() {
				f := c.filter(rng)
				t := time.Now()
				if _, err := db.ListLessons(ctx, f); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t))
			}
			reportPercentiles(b, lat)
		})
	}
	b.Run("count/search", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(5, 6))
		lat := make([]time.Duration, 0, 1024)
		for b.Loop() {
			t := time.Now()
			if _, err := db.CountLessons(ctx, LessonFilter{Query: words[rng.IntN(len(words))]}); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t))
		}
		reportPercentiles(b, lat)
	})
	b.Run("courses/with-counts", func(b *testing.B) {
		lat := make([]time.Duration, 0, 1024)
		for b.Loop() {
			t := time.Now()
			if _, err := db.ListCourses(ctx); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t))
		}
		reportPercentiles(b, lat)
	})
}

// reportPercentiles reports p50 and p99 of the measured calls in ms.
func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(p float64) float64 {
		i := int(p * float64(len(lat)-1))
		return float64(lat[i]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}
