package sfu

import (
	"net"
	"syscall"
)

// socketBufferSizes reads the kernel's SO_RCVBUF and SO_SNDBUF of conn
// (0 when they cannot be read).
func socketBufferSizes(conn *net.UDPConn) (rcv, snd int) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0, 0
	}
	_ = raw.Control(func(fd uintptr) {
		rcv, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		snd, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	})
	return rcv, snd
}
