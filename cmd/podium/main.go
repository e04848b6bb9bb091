// Command podium is the one Podium binary: `podium serve` runs a node,
// `podium token` mints access tokens, `podium loadtest` measures a server. This package only wires: it parses
// configuration, builds the parts (each wire_*.go belongs to its part) and
// starts and stops them.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"podium/loadtest"
)

func main() { os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `podium — live-classroom media server

usage:
  podium serve [flags]     run a node (podium serve -h for flags)
  podium worker [flags]    run transcode jobs only, no live media (podium worker -h)
  podium token [flags]     print an access token (podium token -h)
  podium loadtest [flags]  synthetic teachers and classrooms against a server (podium loadtest -h)
`

// realMain runs a subcommand and returns the process exit code.
func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		return runServe(ctx, args[1:], os.Getenv, stdout, stderr)
	case "worker":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		return runWorker(ctx, args[1:], os.Getenv, stdout, stderr)
	case "token":
		return runToken(args[1:], os.Getenv, stdout, stderr)
	case "loadtest":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		if err := loadtest.Main(ctx, args[1:], stdout); err != nil {
			fmt.Fprintf(stderr, "podium loadtest: %v\n", err)
			return 1
		}
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "podium: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
