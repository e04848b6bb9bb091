package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"podium/sfu"
	"podium/signaling/auth"
)

// runToken implements `podium token`: it prints a JWT signed with the
// server's secret (--secret, PODIUM_SECRET, or the one kept in --data-dir).
func runToken(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("podium token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	room := fs.String("room", "", "lesson id (\"*\" for an admin token valid for every lesson)")
	role := fs.String("role", "", "teacher, classroom, viewer or admin")
	name := fs.String("name", "", "display name")
	subject := fs.String("sub", "", "stable identity (default: derived from role, room and name)")
	ttl := fs.Duration("ttl", 2*time.Hour, "how long the token is valid")
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
	s := *secret
	if s == "" {
		v, created, err := readSecret(*dataDir)
		if err != nil || created {
			fmt.Fprintf(stderr, "podium token: no --secret or PODIUM_SECRET, and no secret in %s (start podium serve once, or pass --secret)\n", secretFile(*dataDir))
			return 2
		}
		s = v
	}
	iss, err := auth.NewIssuer(s)
	if err != nil {
		fmt.Fprintf(stderr, "podium token: %v\n", err)
		return 2
	}
	tok, _, err := iss.Issue(auth.Request{Room: *room, Role: sfu.Role(strings.ToLower(*role)), Name: *name, Subject: *subject, TTL: *ttl})
	if err != nil {
		fmt.Fprintf(stderr, "podium token: %v\n", err)
		return 2
	}
	fmt.Fprintln(stdout, tok)
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
