//go:build !linux

package sfu

import "net"

// socketBufferSizes is not read outside Linux.
func socketBufferSizes(*net.UDPConn) (rcv, snd int) { return 0, 0 }
