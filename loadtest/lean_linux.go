package loadtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// How lean classrooms read (lean.go): their sockets are not in Go's
// netpoller. A few pollers, one per core of the tool, each wait on an
// epoll instance of their own for the sockets of many classrooms, and read
// every ready socket with one recvmmsg of up to leanBatch datagrams into
// buffers they own. A classroom's packets are handled in its poller's
// goroutine, with no goroutine woken per socket and no allocation; the
// pollers also run each classroom's feedback timer.

// leanPollers are the pollers of one run.
type leanPollers struct {
	all  []*leanPoller
	next atomic.Uint32
}

func newLeanPollers() (*leanPollers, error) {
	ps := &leanPollers{}
	for range runtime.GOMAXPROCS(0) {
		p, err := newLeanPoller()
		if err != nil {
			ps.stop()
			return nil, err
		}
		ps.all = append(ps.all, p)
	}
	return ps, nil
}

// pick spreads classrooms over the pollers.
func (ps *leanPollers) pick() *leanPoller {
	return ps.all[int(ps.next.Add(1))%len(ps.all)]
}

// stop ends every poller's goroutine; their classrooms must be closed.
func (ps *leanPollers) stop() {
	for _, p := range ps.all {
		p.stop()
	}
}

type leanPoller struct {
	epfd    int
	stopped atomic.Bool
	done    chan struct{}

	mu    sync.Mutex // held while the goroutine handles events
	conns map[int32]*leanConn
	rx    *rxBatch
}

const (
	// leanPollEvery is how often a poller looks for due feedback.
	leanPollEvery = 10 * time.Millisecond
	// leanPollPause is a poller's pause after each round, so that the
	// next finds more sockets ready with more datagrams each: fewer
	// system calls a packet. fanout200, the tool's CPU per received
	// packet: 6.2 µs with 1 ms, 5.6 with 3 ms, 6.2 with 5 ms; with no
	// pause its profile had a quarter more samples than with 1 ms.
	// Arrival times come from the kernel, so the pause delays no
	// measurement.
	leanPollPause = 3 * time.Millisecond
)

func newLeanPoller() (*leanPoller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("lean poller: %w", err)
	}
	p := &leanPoller{epfd: epfd, done: make(chan struct{}), conns: map[int32]*leanConn{}, rx: newRxBatch()}
	go p.run()
	return p, nil
}

func (p *leanPoller) add(c *leanConn) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(c.fd)}); err != nil {
		return fmt.Errorf("lean poller: %w", err)
	}
	p.conns[int32(c.fd)] = c
	return nil
}

// remove takes c out; the poller does not touch it afterwards.
func (p *leanPoller) remove(c *leanConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns[int32(c.fd)] == c {
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
		delete(p.conns, int32(c.fd))
	}
}

func (p *leanPoller) stop() {
	p.stopped.Store(true)
	<-p.done
	_ = unix.Close(p.epfd)
}

func (p *leanPoller) run() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 256)
	nextTick := time.Now()
	for !p.stopped.Load() {
		n, err := unix.EpollWait(p.epfd, events, int(leanPollEvery/time.Millisecond))
		if err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		now := time.Now()
		p.mu.Lock()
		for i := 0; i < n; i++ {
			if c := p.conns[events[i].Fd]; c != nil {
				c.readReady(p.rx, now)
			}
		}
		if !now.Before(nextTick) {
			for _, c := range p.conns {
				c.tick(now)
			}
			nextTick = now.Add(leanPollEvery)
		}
		p.mu.Unlock()
		time.Sleep(leanPollPause)
	}
}

// rxBatch is one poller's receive buffers and the recvmmsg headers that
// point into them. A buffer holds a whole UDP GRO message (openLeanSocket).
type rxBatch struct {
	hdrs  [leanBatch]unix.Mmsghdr
	iovs  [leanBatch]unix.Iovec
	names [leanBatch]unix.RawSockaddrInet4
	bufs  [leanBatch][maxGROMessage]byte
	oobs  [leanBatch][64]byte
}

// maxGROMessage is the largest message a UDP GRO socket hands over: one
// UDP datagram's worth of segments.
const maxGROMessage = 65535

func newRxBatch() *rxBatch {
	b := &rxBatch{}
	for i := range b.hdrs {
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(len(b.bufs[i]))
		b.hdrs[i].Hdr.Iov = &b.iovs[i]
		b.hdrs[i].Hdr.SetIovlen(1)
	}
	return b
}

// read takes what fd holds, up to leanBatch datagrams, without waiting.
func (b *rxBatch) read(fd int) (int, error) {
	for i := range b.hdrs {
		b.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		b.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet4
		b.hdrs[i].Hdr.Control = &b.oobs[i][0]
		b.hdrs[i].Hdr.SetControllen(len(b.oobs[i]))
	}
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.hdrs[0])), leanBatch, unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// message i of the last read: its bytes, the size of the datagrams they
// are (all but the last of a GRO message are that size), sender and
// kernel receive time (zero if none).
func (b *rxBatch) message(i int) (msg []byte, segment int, from netip.AddrPort, at time.Time) {
	h := &b.hdrs[i]
	name := &b.names[i]
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&name.Port))[:])
	from = netip.AddrPortFrom(netip.AddrFrom4(name.Addr), port)
	msg = b.bufs[i][:h.Len]
	at, segment = rxControl(b.oobs[i][:h.Hdr.Controllen])
	if segment <= 0 || segment > len(msg) {
		segment = len(msg)
	}
	return msg, segment, from, at
}

// openLeanSocket opens a non-blocking UDP socket on ip, outside Go's
// netpoller, with kernel receive timestamps (SO_TIMESTAMPNS): the arrival
// times a lean classroom reports in its TWCC feedback.
//
// Where the kernel has it, the socket takes UDP GRO: a node's GSO message
// (a picture's packets to this classroom) is queued and read whole, and
// the classroom cuts it into its datagrams. Without it the kernel cuts the
// message up on arrival, which on loopback runs on the sending node's core
// and was a fifth of what fanout200 measured as the node's CPU
// (docs/BENCHMARKS.md): work a classroom's own machine does on a real
// network.
func openLeanSocket(ip netip.Addr) (int, netip.AddrPort, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, netip.AddrPort{}, fmt.Errorf("lean socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: ip.As4()}); err != nil {
		_ = unix.Close(fd)
		return -1, netip.AddrPort{}, fmt.Errorf("lean socket: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 1)
	sa, err := unix.Getsockname(fd)
	in4, ok := sa.(*unix.SockaddrInet4)
	if err != nil || !ok {
		_ = unix.Close(fd)
		return -1, netip.AddrPort{}, fmt.Errorf("lean socket: no local address: %v", err)
	}
	return fd, netip.AddrPortFrom(ip, uint16(in4.Port)), nil
}

func sendLean(fd int, b []byte, to netip.AddrPort) error {
	return unix.Sendto(fd, b, 0, &unix.SockaddrInet4{Addr: to.Addr().As4(), Port: int(to.Port())})
}

func closeLeanSocket(fd int) { _ = unix.Close(fd) }

// rxControl reads the control messages of a received message: the
// SCM_TIMESTAMPNS receive time (zero if none) and the UDP_GRO segment size
// (0 if none: the message is one datagram).
func rxControl(oob []byte) (at time.Time, segment int) {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		n := int(h.Len)
		if n < unix.SizeofCmsghdr || n > len(oob) {
			break
		}
		data := oob[unix.SizeofCmsghdr:n]
		switch {
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && len(data) >= 16:
			at = time.Unix(int64(binary.NativeEndian.Uint64(data)), int64(binary.NativeEndian.Uint64(data[8:])))
		case h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && len(data) >= 4:
			segment = int(binary.NativeEndian.Uint32(data))
		}
		oob = oob[min(cmsgAlign(n), len(oob)):]
	}
	return at, segment
}

func cmsgAlign(n int) int {
	const a = 8 // the kernel aligns control messages to its long
	return (n + a - 1) &^ (a - 1)
}
