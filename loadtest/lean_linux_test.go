package loadtest

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A node sends a picture's packets to a classroom as one UDP GSO message;
// a lean classroom reads it whole (UDP GRO, where the kernel has it) and
// gets back each datagram as it was sent, in order, with its sender.
func TestLeanSocketGetsEachDatagramOfAGSOMessage(t *testing.T) {
	fd, addr, err := openLeanSocket(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer closeLeanSocket(fd)
	send, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	raw, err := send.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	var msg []byte
	for i, n := range []int{1000, 1000, 1000, 420} {
		d := bytes.Repeat([]byte{byte(0x80 + i)}, n)
		want = append(want, d)
		msg = append(msg, d...)
	}
	oob := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.IPPROTO_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = 1000
	var sendErr error
	if err := raw.Write(func(s uintptr) bool {
		sendErr = unix.Sendmsg(int(s), msg, oob, &unix.SockaddrInet4{Addr: addr.Addr().As4(), Port: int(addr.Port())}, 0)
		return true
	}); err != nil || sendErr != nil {
		t.Skipf("this kernel does not send UDP GSO: %v %v", err, sendErr)
	}

	rx := newRxBatch()
	var got [][]byte
	messages := 0
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < len(want) && time.Now().Before(deadline) {
		n, _ := rx.read(fd)
		if n == 0 {
			time.Sleep(time.Millisecond)
		}
		messages += n
		for i := range n {
			m, segment, from, at := rx.message(i)
			if from != send.LocalAddr().(*net.UDPAddr).AddrPort() || at.IsZero() {
				t.Fatalf("a message from %v at %v, want from %v with a receive time", from, at, send.LocalAddr())
			}
			for len(m) > 0 {
				var d []byte
				d, m = nextDatagram(m, segment)
				got = append(got, bytes.Clone(d))
			}
		}
	}
	if len(got) != len(want) {
		t.Fatalf("read %d datagrams, want %d", len(got), len(want))
	}
	if gro, err := unix.GetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO); err == nil && gro == 1 && messages != 1 {
		t.Errorf("the socket takes UDP GRO, yet the picture came as %d messages, want 1", messages)
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("datagram %d: %d bytes of %#x, want %d of %#x", i, len(got[i]), got[i][0], len(want[i]), want[i][0])
		}
	}
}

// A lean socket hands over a datagram with its sender and the kernel's
// receive time.
func TestLeanSocketReadsWithTheKernelsReceiveTime(t *testing.T) {
	fd, addr, err := openLeanSocket(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer closeLeanSocket(fd)
	send, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	before := time.Now()
	if _, err := send.Write([]byte{0x80, 0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	rx := newRxBatch()
	deadline := time.Now().Add(5 * time.Second)
	n := 0
	for n == 0 && time.Now().Before(deadline) {
		if n, _ = rx.read(fd); n == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if n != 1 {
		t.Fatalf("read %d datagrams, want 1", n)
	}
	b, _, from, at := rx.message(0)
	if len(b) != 4 || b[3] != 2 || from != send.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Fatalf("datagram %v from %v, want 4 bytes from %v", b, from, send.LocalAddr())
	}
	if at.IsZero() {
		t.Fatal("no receive timestamp read")
	}
	if at.Before(before.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
		t.Fatalf("receive time %v, sent at %v", at, before)
	}
	if n, err := rx.read(fd); n != 0 || err == nil {
		t.Fatalf("an empty socket read %d datagrams (err %v), want none and EAGAIN", n, err)
	}
}
