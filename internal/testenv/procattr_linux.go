package testenv

import "syscall"

// childAttr runs a test server as cred (nil: as this process), killed with
// this process: a test binary that dies leaves no server behind.
func childAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
}
