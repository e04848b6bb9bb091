package loadtest

import (
	"encoding/binary"
	"net"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// enableRxTimestamps asks the kernel to stamp each datagram with the time
// it reached the socket (SO_TIMESTAMPNS): the arrival times a lean
// classroom reports in its TWCC feedback.
func enableRxTimestamps(sock *net.UDPConn) {
	raw, err := sock.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	})
}

// rxTimestamp reads the SCM_TIMESTAMPNS control message; zero if there is
// none.
func rxTimestamp(oob []byte) time.Time {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		n := int(h.Len)
		if n < unix.SizeofCmsghdr || n > len(oob) {
			return time.Time{}
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && n >= unix.SizeofCmsghdr+16 {
			b := oob[unix.SizeofCmsghdr:]
			sec := int64(binary.NativeEndian.Uint64(b))
			nsec := int64(binary.NativeEndian.Uint64(b[8:]))
			return time.Unix(sec, nsec)
		}
		oob = oob[cmsgAlign(n):]
	}
	return time.Time{}
}

func cmsgAlign(n int) int {
	const a = 8 // the kernel aligns control messages to its long
	return (n + a - 1) &^ (a - 1)
}
