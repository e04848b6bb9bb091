//go:build !amd64

package sfu

import "unsafe"

func prefetchLines(unsafe.Pointer, uintptr) {}
