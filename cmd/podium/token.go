package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"podium/internal/audit"
	"podium/replaydb"
	"podium/sfu"
	"podium/signaling/auth"
)

// runToken implements `podium token`: it prints a JWT signed with the
// server's secret (--secret, PODIUM_SECRET, or the one kept in --data-dir),
// and `podium token revoke`, which revokes one in the replay database.
func runToken(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "revoke" {
		return runTokenRevoke(args[1:], getenv, stdout, stderr)
	}
	fs := flag.NewFlagSet("podium token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	room := fs.String("room", "", "lesson id (\"*\" for an admin token valid for every lesson; none for a student)")
	role := fs.String("role", "", "teacher, classroom, viewer, admin or student")
	name := fs.String("name", "", "display name")
	subject := fs.String("sub", "", "stable identity (default: derived from role, room and name)")
	ttl := fs.Duration("ttl", 2*time.Hour, "how long the token is valid (at most the role's --token-max-ttl)")
	var lessons, courses listFlag
	fs.Var(&lessons, "lesson", "student: a lesson to replay (repeat or comma-separate)")
	fs.Var(&courses, "course", "student: a course whose lessons to replay (repeat or comma-separate)")
	allLessons := fs.Bool("all-lessons", false, "student: replay every lesson on the server")
	maxTTL := auth.DefaultMaxTTL()
	fs.Var(&maxTTL, "token-max-ttl", "longest lifetime per role, as podium serve's flag of that name")
	secret := fs.String("secret", "", "signing secret (default: the one podium serve keeps in --data-dir)")
	dataDir := fs.String("data-dir", "./data", "podium serve's data directory, to read its generated secret")
	err := loadConfig(fs, args, "", getenv)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "podium token: %v\n", err)
		return 2
	}
	iss, ok := tokenIssuer(*secret, *dataDir, stderr)
	if !ok {
		return 2
	}
	iss.SetMaxTTL(maxTTL)
	req := auth.Request{Room: *room, Role: sfu.Role(strings.ToLower(*role)), Name: *name, Subject: *subject, TTL: *ttl}
	if req.Role == auth.RoleStudent || len(lessons) > 0 || len(courses) > 0 || *allLessons {
		req.Replay = &auth.Grant{Lessons: lessons, Courses: courses, All: *allLessons}
	}
	tok, c, err := iss.Issue(req)
	if err != nil {
		fmt.Fprintf(stderr, "podium token: %v\n", err)
		return 2
	}
	fmt.Fprintln(stdout, tok)
	fmt.Fprintf(stderr, "token id %s, expires %s (revoke: podium token revoke --id %s --expires %s)\n",
		c.ID, c.ExpiresAt.Time.UTC().Format(time.RFC3339), c.ID, c.ExpiresAt.Time.UTC().Format(time.RFC3339))
	return 0
}

// tokenIssuer builds an issuer from --secret or the data dir's secret.
func tokenIssuer(secret, dataDir string, stderr io.Writer) (*auth.Issuer, bool) {
	if secret == "" {
		v, created, err := readSecret(dataDir)
		if err != nil || created {
			fmt.Fprintf(stderr, "podium token: no --secret or PODIUM_SECRET, and no secret in %s (start podium serve once, or pass --secret)\n", secretFile(dataDir))
			return nil, false
		}
		secret = v
	}
	iss, err := auth.NewIssuer(secret)
	if err != nil {
		fmt.Fprintf(stderr, "podium token: %v\n", err)
		return nil, false
	}
	return iss, true
}

// runTokenRevoke implements `podium token revoke`: the token (or its id and
// expiry) goes into the replay database, where every node reads it within
// seconds and every restart keeps it.
func runTokenRevoke(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("podium token revoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	token := fs.String("token", "", "the token to revoke")
	id := fs.String("id", "", "or: the token id (as podium token printed it)")
	expires := fs.String("expires", "", "with --id: the token's expiry (RFC 3339)")
	reason := fs.String("reason", "", "why (kept in the audit log)")
	secret := fs.String("secret", "", "signing secret (default: the one podium serve keeps in --data-dir)")
	dataDir := fs.String("data-dir", "./data", "podium serve's data directory")
	dsn := fs.String("db", "", "replay database (default: SQLite in <data-dir>/podium.db)")
	err := loadConfig(fs, args, "", getenv)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "podium token revoke: %v\n", err)
		return 2
	}
	rev := auth.Revocation{ID: *id, By: "cli", Reason: *reason}
	switch {
	case *token != "":
		iss, ok := tokenIssuer(*secret, *dataDir, stderr)
		if !ok {
			return 2
		}
		c, err := iss.ParseForRevocation(*token)
		if err != nil {
			fmt.Fprintf(stderr, "podium token revoke: not a token of this server: %v\n", err)
			return 2
		}
		rev.ID, rev.ExpiresAt = c.ID, c.ExpiresAt.Time
	case *id != "" && *expires != "":
		t, err := time.Parse(time.RFC3339, *expires)
		if err != nil {
			fmt.Fprintf(stderr, "podium token revoke: --expires: %v\n", err)
			return 2
		}
		rev.ExpiresAt = t
	default:
		fmt.Fprintln(stderr, "podium token revoke: give --token, or --id with --expires")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := replaydb.Open(ctx, dbDSN(*dsn, *dataDir))
	if err != nil {
		fmt.Fprintf(stderr, "podium token revoke: %v\n", err)
		return 1
	}
	defer db.Close()
	if err := (revocationStore{db}).Revoke(ctx, rev); err != nil {
		fmt.Fprintf(stderr, "podium token revoke: %v\n", err)
		return 1
	}
	dbAudit{db: db, log: slog.New(slog.NewTextHandler(stderr, nil))}.Record(ctx, audit.Entry{At: time.Now(), Actor: "cli",
		Action: audit.TokenRevoke, Object: rev.ID, Detail: rev.Reason})
	fmt.Fprintf(stdout, "revoked %s (it would have expired %s)\n", rev.ID, rev.ExpiresAt.UTC().Format(time.RFC3339))
	return 0
}

// readSecret reads the persisted secret without creating one.
func readSecret(dataDir string) (string, bool, error) {
	b, err := readFileTrim(secretFile(dataDir))
	if err != nil {
		return "", false, err
	}
	return b, false, nil
}
