package main

import (
	"os"
	"testing"
)

// TEMPORARY: deps.go (not ours to edit) declares an empty main. Until it is
// removed, the program runs from init; test binaries of this package skip
// it. When deps.go goes, replace this file with:
//
//	func main() { os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr)) }
func init() {
	if testing.Testing() {
		return
	}
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}
