package sfu

import (
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/ipv4"
)

// registerBatchMetrics exposes how media leaves the UDP socket: datagrams
// per sendmmsg call is the batching's gain.
func registerBatchMetrics(reg prometheus.Registerer, b *batchConn) error {
	if reg == nil || b == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "podium_udp_send_batches_total", Help: "sendmmsg calls that sent media datagrams."},
			func() float64 { return float64(b.calls.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "podium_udp_batched_datagrams_total", Help: "Datagrams sent in sendmmsg batches."},
			func() float64 { return float64(b.datagrams.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "podium_udp_gso_datagrams_total", Help: "Batched datagrams that left as segments of one UDP GSO message (same classroom, back to back)."},
			func() float64 { return float64(b.segmented.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "podium_rtcp_direct_packets_total", Help: "Classrooms' SRTCP packets read off the UDP socket by the node itself, not through pion."},
			func() float64 { return float64(b.rtcp.taken.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "podium_rtcp_direct_failed_total", Help: "Of those, packets that did not decrypt (replays, garbage) and were dropped."},
			func() float64 { return float64(b.rtcp.failed.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "podium_udp_batch_refused_total", Help: "Datagrams of a batch the kernel refused (dropped, as a failed sendto)."},
			func() float64 { return float64(b.failed.Load()) }),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// batchConn is the ICE UDP socket under pion's UDP mux. While an egress
// drains a batch of media (begin ... end), every datagram written to the
// socket, already SRTP-protected (by the egress, or by pion), is copied into a batch that
// leaves in one sendmmsg(2) when it is full or when the last writer that
// began a batch ends it: one system call for up to maxDatagrams datagrams instead
// of one each. With no batch open (ICE checks, DTLS, a publisher's RTCP)
// a datagram is written at once, as before.
//
// Where the kernel has UDP GSO, datagrams that follow each other to the
// same classroom (a frame's packets, which the packetizer cuts to one
// size, the last smaller) go as one message that the kernel cuts into
// datagrams (UDP_SEGMENT): the stack below the socket runs once for the
// run instead of once per datagram. A batch is written back to back into
// one arena, so a run is one contiguous buffer.
//
// Nothing waits for a timer: a batched datagram leaves when the drains
// and fan-outs that were running beside it end, tens of microseconds later.
type batchConn struct {
	net.PacketConn
	udp *net.UDPConn
	pc  *ipv4.PacketConn
	log *slog.Logger

	open atomic.Int32 // batches begun and not ended
	gso  atomic.Bool  // runs go as one GSO message; off after the kernel refuses one

	mu      sync.Mutex
	arena   []byte         // the batch's datagrams, back to back
	used    int            // bytes of arena taken
	waiting int            // datagrams in the batch
	msgs    []ipv4.Message // len = messages waiting
	runs    []gsoRun       // one per message slot
	iovs    [][][]byte     // one per message slot: its one buffer, in arena
	oobs    [][]byte       // one per message slot: its UDP_SEGMENT control message
	dests   []udp4Dest     // one per message slot: where it goes
	addrs   []net.UDPAddr  // one per message slot: dests[i] as sendmmsg's packer takes it

	// rtcp takes routed classrooms' SRTCP off the socket (rtcpdirect.go).
	rtcp rtcpRoutes

	// Counters for /metrics and the benchmarks.
	calls     atomic.Uint64 // sendmmsg calls
	datagrams atomic.Uint64 // datagrams sent in them
	segmented atomic.Uint64 // of those, datagrams sent as segments of a GSO message
	failed    atomic.Uint64 // datagrams the kernel refused
	lastWarn  time.Time
}

// gsoRun is one message of a batch: count datagrams of size bytes, the
// last of which may be shorter (then the run is closed: GSO cuts every
// segment but the last to one size).
type gsoRun struct {
	size, count, bytes int
	closed             bool
}

const (
	maxDatagrams    = 64
	maxDatagramSize = 1500
	// maxGSOBytes keeps a GSO message within one UDP datagram's 64 KiB.
	maxGSOBytes = 60000
)

// newBatchConn wraps a UDP socket; any other PacketConn is returned as it
// is (nil batcher).
func newBatchConn(c net.PacketConn, log *slog.Logger) (net.PacketConn, *batchConn) {
	udp, ok := c.(*net.UDPConn)
	if !ok {
		return c, nil
	}
	b := &batchConn{PacketConn: udp, udp: udp, pc: ipv4.NewPacketConn(udp), log: log,
		arena: make([]byte, maxDatagrams*maxDatagramSize),
		msgs:  make([]ipv4.Message, 0, maxDatagrams), runs: make([]gsoRun, maxDatagrams),
		iovs: make([][][]byte, maxDatagrams), oobs: make([][]byte, maxDatagrams),
		dests: make([]udp4Dest, maxDatagrams), addrs: make([]net.UDPAddr, maxDatagrams)}
	for i := range b.iovs {
		b.iovs[i] = make([][]byte, 1)
		b.oobs[i] = make([]byte, gsoControlLen)
		b.addrs[i].IP = make(net.IP, net.IPv4len)
	}
	b.gso.Store(gsoSupported(udp))
	return b, b
}

// ReadFrom implements net.PacketConn for the socket's one reader, pion's
// UDP mux: routed classrooms' SRTCP is handled here and not returned.
func (b *batchConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := b.PacketConn.ReadFrom(p)
		if err != nil || !b.rtcp.take(p[:n], addr) {
			return n, addr, err
		}
	}
}

// begin opens a batch: datagrams written until end are sent together.
func (b *batchConn) begin() { b.open.Add(1) }

// end closes a batch; the last one open sends what waits. Batches nest:
// a publisher's fan-out holds one open while the classrooms it sends to
// inline open and close their own, so their datagrams share sendmmsg
// calls (egress.kick).
func (b *batchConn) end() {
	if b.open.Add(-1) == 0 {
		// A batch begun since only makes this flush early: what it
		// writes after waits for its own end.
		b.mu.Lock()
		b.flushLocked()
		b.mu.Unlock()
	}
}

// udp4Dest is an IPv4 address and port in one word (address<<16 | port,
// and bit 48 set; 0: none). An egress keeps its classroom's address in a
// field of its own, read with no pointer to follow (a *net.UDPAddr and its
// IP were two cold cache lines for each classroom's every packet), and
// the batch compares two in one instruction.
type udp4Dest uint64

// udp4DestOf packs ap; 0 when it is not IPv4 (or IPv4 mapped into IPv6).
func udp4DestOf(ap netip.AddrPort) udp4Dest {
	a := ap.Addr().Unmap()
	if !a.Is4() {
		return 0
	}
	ip := a.As4()
	return udp4Dest(1<<48 | uint64(binary.BigEndian.Uint32(ip[:]))<<16 | uint64(ap.Port()))
}

// addrPort unpacks d.
func (d udp4Dest) addrPort() netip.AddrPort {
	var ip [4]byte
	binary.BigEndian.PutUint32(ip[:], uint32(d>>16))
	return netip.AddrPortFrom(netip.AddrFrom4(ip), uint16(d))
}

// WriteTo implements net.PacketConn.
func (b *batchConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if ua, ok := addr.(*net.UDPAddr); ok && b.open.Load() > 0 {
		if dst := udp4DestOf(ua.AddrPort()); dst != 0 {
			return b.writeTo4(p, dst)
		}
	}
	return b.PacketConn.WriteTo(p, addr)
}

// writeTo4 writes p to dst: into the batch when one is open, else at once.
func (b *batchConn) writeTo4(p []byte, dst udp4Dest) (int, error) {
	if b.open.Load() == 0 || len(p) > maxDatagramSize {
		return b.udp.WriteToUDPAddrPort(p, dst.addrPort())
	}
	b.mu.Lock()
	n := copy(b.arena[b.used:], p)
	b.addLocked(dst, n)
	b.mu.Unlock()
	return n, nil
}

// writeInPlace writes a datagram to dst that fill makes straight into the
// batch, without a copy: fill gets room for maxDatagramSize bytes and
// returns how many it wrote (0: none), which writeInPlace returns. It
// returns -1, without calling fill, when no batch is open; the caller then
// writes the datagram itself. fill runs under the batch's lock, so it must
// be short (an SRTP seal) and must not write to the socket.
func (b *batchConn) writeInPlace(dst udp4Dest, fill func(room []byte) int) int {
	if b.open.Load() == 0 {
		return -1
	}
	b.mu.Lock()
	// A batch is flushed at maxDatagrams, so the arena has room for one more.
	n := fill(b.arena[b.used : b.used+maxDatagramSize])
	if n > 0 {
		b.addLocked(dst, n)
	}
	b.mu.Unlock()
	return n
}

// addLocked takes the n bytes just written at the arena's end into the
// batch, as a datagram to dst: the next segment of the last message, or a
// message of its own. The caller holds b.mu.
func (b *batchConn) addLocked(dst udp4Dest, n int) {
	start := b.used
	b.used += n
	b.waiting++
	if i := len(b.msgs) - 1; i >= 0 && b.joins(i, dst, n) {
		r := &b.runs[i]
		r.count++
		r.bytes += n
		r.closed = n < r.size
		// The run's buffer ends where this datagram begins: extend it.
		b.iovs[i][0] = b.iovs[i][0][:r.bytes]
	} else {
		i = len(b.msgs)
		a := &b.addrs[i]
		binary.BigEndian.PutUint32(a.IP, uint32(dst>>16))
		a.Port = int(uint16(dst))
		b.dests[i] = dst
		b.runs[i] = gsoRun{size: n, count: 1, bytes: n}
		b.iovs[i][0] = b.arena[start:b.used]
		b.msgs = append(b.msgs, ipv4.Message{Buffers: b.iovs[i], Addr: a})
	}
	if b.waiting == maxDatagrams {
		b.flushLocked()
	}
}

// joins reports whether a datagram of n bytes to dst may be the next
// segment of message i.
func (b *batchConn) joins(i int, dst udp4Dest, n int) bool {
	r := &b.runs[i]
	return b.dests[i] == dst && b.gso.Load() && !r.closed && n <= r.size && r.bytes+n <= maxGSOBytes
}

// flushLocked sends the waiting datagrams. A datagram the kernel refuses
// (an address gone unreachable) is dropped, as a failed sendto would
// have been, and the rest still go. The caller holds b.mu.
func (b *batchConn) flushLocked() {
	for i := range b.msgs {
		if r := &b.runs[i]; r.count > 1 {
			putGSOControl(b.oobs[i], r.size)
			b.msgs[i].OOB = b.oobs[i]
		}
	}
	msgs, runs := b.msgs, b.runs
	for len(msgs) > 0 {
		n, err := b.pc.WriteBatch(msgs, 0)
		b.calls.Add(1)
		for _, r := range runs[:max(n, 0)] {
			b.datagrams.Add(uint64(r.count))
			if r.count > 1 {
				b.segmented.Add(uint64(r.count))
			}
		}
		if n > 0 {
			msgs, runs = msgs[n:], runs[n:]
		}
		if err != nil && len(msgs) > 0 {
			if runs[0].count > 1 && isGSOError(err) && b.gso.Swap(false) {
				b.log.Warn("sfu: the kernel cannot segment UDP here; sending datagrams one by one", "err", err)
			}
			if runs[0].count > 1 && !b.gso.Load() {
				b.writeSegments(msgs[0], runs[0])
			} else {
				b.failed.Add(uint64(runs[0].count))
				if now := time.Now(); now.Sub(b.lastWarn) > 10*time.Second {
					b.lastWarn = now
					b.log.Warn("sfu: sending a batch of datagrams", "to", msgs[0].Addr, "err", err)
				}
			}
			msgs, runs = msgs[1:], runs[1:] // the one refused
		} else if n == 0 {
			break
		}
	}
	for i := range b.msgs {
		b.msgs[i] = ipv4.Message{}
	}
	b.msgs = b.msgs[:0]
	b.used, b.waiting = 0, 0
}

// writeSegments sends a GSO message's datagrams one by one, after the
// kernel refused to segment it.
func (b *batchConn) writeSegments(m ipv4.Message, r gsoRun) {
	buf := m.Buffers[0]
	for len(buf) > 0 {
		n := min(r.size, len(buf))
		if _, err := b.PacketConn.WriteTo(buf[:n], m.Addr); err != nil {
			b.failed.Add(1)
		} else {
			b.datagrams.Add(1)
		}
		buf = buf[n:]
	}
}
