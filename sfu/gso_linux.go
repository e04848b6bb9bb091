package sfu

import (
	"errors"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// gsoSupported reports whether the kernel takes UDP_SEGMENT (UDP generic
// segmentation offload, Linux 4.18 on) on conn's socket.
func gsoSupported(conn *net.UDPConn) bool {
	raw, err := conn.SyscallConn()
	if err != nil {
		return false
	}
	supported := false
	_ = raw.Control(func(fd uintptr) {
		_, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		supported = err == nil
	})
	return supported
}

// gsoControlLen is the size of the control message that carries a GSO
// segment size.
var gsoControlLen = unix.CmsgSpace(2)

// putGSOControl writes into oob (gsoControlLen bytes) the control message
// that has the kernel cut a sendmsg's payload into datagrams of size bytes.
func putGSOControl(oob []byte, size int) {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level = unix.IPPROTO_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = uint16(size)
}

// isGSOError reports whether a send failed because the route's device
// cannot segment (EIO: no checksum offload), so GSO must be turned off.
func isGSOError(err error) bool {
	return errors.Is(err, unix.EIO)
}
