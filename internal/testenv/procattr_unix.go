//go:build unix && !linux

package testenv

import "syscall"

// childAttr runs a test server as cred (nil: as this process). Only Linux
// has the parent-death signal: elsewhere a test binary that dies may leave
// its server running. The tests run on Linux; this keeps the packages that
// use testenv (the load tool, and so the podium binary) building on the
// other systems a developer may use.
func childAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}
