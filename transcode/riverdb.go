package transcode

import (
	"context"
	"database/sql"

	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"podium/replaydb"
)

// riverClient is what the queue uses of a River client; River's client is
// generic in its driver's transaction type (pgx.Tx on PostgreSQL, *sql.Tx
// on SQLite), these methods are not.
type riverClient interface {
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	JobGet(ctx context.Context, id int64) (*rivertype.JobRow, error)
	JobList(ctx context.Context, params *river.JobListParams) (*river.JobListResult, error)
	JobCancel(ctx context.Context, id int64) (*rivertype.JobRow, error)
	JobRetry(ctx context.Context, id int64) (*rivertype.JobRow, error)
	Start(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
}

// jobDB is River on the replay database: its client, a count of jobs by
// state, what the liveness of jobs needs (see liveness.go), and what closes
// its connection pool.
type jobDB struct {
	client riverClient
	exec   riverdriver.Executor
	// heartbeat writes a job's heartbeat if the job is still running that
	// attempt, and reports whether it was.
	heartbeat func(ctx context.Context, id int64, attempt int, beat []byte) (owned bool, err error)
	close     func()
}

func (j *jobDB) counts(ctx context.Context) (map[rivertype.JobState]int, error) {
	return j.exec.JobCountByAllStates(ctx, &riverdriver.JobCountByAllStatesParams{})
}

// runningSince returns the running jobs attempted before horizon (River's
// query for stuck jobs), the ones that may belong to a dead node.
func (j *jobDB) runningSince(ctx context.Context, horizon time.Time) ([]*rivertype.JobRow, error) {
	const batch = 1000 // more running at once than any province runs workers
	rows, err := j.exec.JobGetStuck(ctx, &riverdriver.JobGetStuckParams{Max: batch, StuckHorizon: horizon})
	if err != nil {
		return nil, fmt.Errorf("transcode: running jobs: %w", err)
	}
	return rows, nil
}

// rescue changes the jobs of p (River's rescue of stuck jobs: an error
// appended, the new state, only while still running and attempted before
// p.StuckHorizon).
func (j *jobDB) rescue(ctx context.Context, p *riverdriver.JobRescueManyParams) error {
	if _, err := j.exec.JobRescueMany(ctx, p); err != nil {
		return fmt.Errorf("transcode: rescue jobs: %w", err)
	}
	return nil
}

// The heartbeat, fenced by state and attempt: River has no statement for
// it. Metadata is jsonb on PostgreSQL and SQLite's JSONB on SQLite.
const (
	heartbeatPostgres = `UPDATE river_job SET metadata = jsonb_set(metadata, '{` + heartbeatKey + `}', $3::jsonb)
		WHERE id = $1 AND state = 'running' AND attempt = $2`
	heartbeatSQLite = `UPDATE river_job SET metadata = jsonb_set(metadata, '$.` + heartbeatKey + `', jsonb(?3))
		WHERE id = ?1 AND state = 'running' AND attempt = ?2`
)

// riverLockKey is the PostgreSQL advisory lock River's migrations run
// under, so nodes starting together apply each step once ("podriver").
const riverLockKey = 0x706f647269766572

// openJobDB opens River on db's backend with its own connection pool
// (pgx on PostgreSQL; one connection on SQLite, as River's SQLite driver
// asks) and brings River's schema up to date (rivermigrate).
func openJobDB(ctx context.Context, db *replaydb.DB, cfg *river.Config, log *slog.Logger) (*jobDB, error) {
	switch db.Backend() {
	case replaydb.Postgres:
		pool, err := pgxpool.New(ctx, db.PostgresURL())
		if err != nil {
			return nil, fmt.Errorf("transcode: job queue pool: %w", err)
		}
		driver := riverpgxv5.New(pool)
		if err := migratePostgres(ctx, pool, driver, log); err != nil {
			pool.Close()
			return nil, err
		}
		beat := func(ctx context.Context, id int64, attempt int, b []byte) (bool, error) {
			tag, err := pool.Exec(ctx, heartbeatPostgres, id, attempt, string(b))
			return tag.RowsAffected() == 1, err
		}
		return newJobDB(driver, cfg, beat, pool.Close)
	case replaydb.SQLite:
		pool, err := db.OpenSQLitePool(1)
		if err != nil {
			return nil, fmt.Errorf("transcode: %w", err)
		}
		driver := riversqlite.New(pool)
		// SQLite has no LISTEN: River's SQLite listener polls a table
		// every 50 ms, ~1 % of a core on an idle node (and 3.6 % of a
		// busy node's samples at fanout200). Polled for new jobs once a
		// second instead, a lesson's job starts at most a second later.
		cfg.PollOnly = true
		// The pool begins transactions IMMEDIATE: a second process
		// migrating at the same moment waits for this one.
		err = func() error {
			tx, err := pool.BeginTx(ctx, nil)
			if err != nil {
				return fmt.Errorf("transcode: begin migration: %w", err)
			}
			defer tx.Rollback() //nolint:errcheck // a no-op after Commit
			if err := migrateRiver(ctx, driver, tx, log); err != nil {
				return err
			}
			if err := tx.Commit(); err != nil {
				return fmt.Errorf("transcode: commit migration: %w", err)
			}
			return nil
		}()
		if err != nil {
			pool.Close()
			return nil, err
		}
		beat := func(ctx context.Context, id int64, attempt int, b []byte) (bool, error) {
			res, err := pool.ExecContext(ctx, heartbeatSQLite, id, attempt, string(b))
			if err != nil {
				return false, err
			}
			n, err := res.RowsAffected()
			return n == 1, err
		}
		return newJobDB(driver, cfg, beat, func() { _ = pool.Close() })
	}
	return nil, fmt.Errorf("transcode: no job queue for database backend %q", db.Backend())
}

// migratePostgres runs River's migrations under a session advisory lock,
// so nodes starting together apply each step once. Each step runs in its
// own transaction (a step uses an enum value an earlier one added, which
// PostgreSQL refuses inside the transaction that added it).
func migratePostgres(ctx context.Context, pool *pgxpool.Pool, driver *riverpgxv5.Driver, log *slog.Logger) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("transcode: job queue connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(riverLockKey)); err != nil {
		return fmt.Errorf("transcode: take migration lock: %w", err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", int64(riverLockKey)); err != nil {
			// Never hand back a connection that may hold the lock.
			_ = conn.Conn().Close(uctx)
		}
	}()
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: slog.New(quiet{log.Handler()})})
	if err != nil {
		return fmt.Errorf("transcode: job queue migrator: %w", err)
	}
	res, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("transcode: migrate job queue schema: %w", err)
	}
	logSteps(log, res)
	return nil
}

func logSteps(log *slog.Logger, res *rivermigrate.MigrateResult) {
	for _, v := range res.Versions {
		log.Info("transcode: job queue schema step applied", "version", v.Version, "name", v.Name)
	}
}

func migrateRiver[TTx any](ctx context.Context, driver riverdriver.Driver[TTx], tx TTx, log *slog.Logger) error {
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: slog.New(quiet{log.Handler()})})
	if err != nil {
		return fmt.Errorf("transcode: job queue migrator: %w", err)
	}
	res, err := m.MigrateTx(ctx, tx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("transcode: migrate job queue schema: %w", err)
	}
	logSteps(log, res)
	return nil
}

func newJobDB[TTx any](driver riverdriver.Driver[TTx], cfg *river.Config, beat func(context.Context, int64, int, []byte) (bool, error), closePool func()) (*jobDB, error) {
	c, err := river.NewClient(driver, cfg)
	if err != nil {
		closePool()
		return nil, fmt.Errorf("transcode: job queue client: %w", err)
	}
	return &jobDB{client: c, exec: driver.GetExecutor(), heartbeat: beat, close: closePool}, nil
}

// Make sure both clients fit riverClient.
var (
	_ riverClient = (*river.Client[pgx.Tx])(nil)
	_ riverClient = (*river.Client[*sql.Tx])(nil)
)

// quiet passes on River's warnings and errors only: its info lines (each
// producer's job counts every few seconds) would drown the node's log.
type quiet struct{ slog.Handler }

func (h quiet) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}
func (h quiet) WithAttrs(a []slog.Attr) slog.Handler { return quiet{h.Handler.WithAttrs(a)} }
func (h quiet) WithGroup(n string) slog.Handler      { return quiet{h.Handler.WithGroup(n)} }
