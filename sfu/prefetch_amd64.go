package sfu

import "unsafe"

// prefetchLines asks the CPU to bring the n bytes at p into its caches.
//
//go:noescape
func prefetchLines(p unsafe.Pointer, n uintptr)
