//go:build !linux

package transcode

import "syscall"

// childProcAttr: only Linux kills a dead node's ffmpeg (Pdeathsig).
func childProcAttr() *syscall.SysProcAttr { return nil }
