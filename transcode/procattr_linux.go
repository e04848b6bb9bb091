package transcode

import "syscall"

// childProcAttr makes the kernel kill ffmpeg when its node dies: a node
// killed with SIGKILL (OOM, kill -9) cannot kill its children, and an
// orphaned ffmpeg would keep a core busy for a job another node now runs.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
