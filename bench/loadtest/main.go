// Command loadtest is `podium loadtest` as a binary of its own, so the
// bench script can pin the tool and the server to different cores and run
// before (or without) the subcommand being wired into cmd/podium.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"podium/loadtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := loadtest.Main(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}
