package sfu

import (
	"log/slog"
	"net"
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
// socket, already SRTP-protected by pion, is copied into a batch that
// leaves in one sendmmsg(2) when it is full or when a writer that began a
// batch ends it: one system call for up to maxDatagrams datagrams instead
// of one each. With no batch open (ICE checks, DTLS, a publisher's RTCP)
// a datagram is written at once, as before.
//
// Nothing waits for a timer: a batched datagram leaves when the drain that
// was running beside it ends, tens of microseconds later.
type batchConn struct {
	net.PacketConn
	pc  *ipv4.PacketConn
	log *slog.Logger

	open atomic.Int32 // batches begun and not ended

	mu    sync.Mutex
	msgs  []ipv4.Message // len = datagrams waiting
	bufs  [][]byte       // one per message slot, maxDatagramSize each
	iovs  [][][]byte     // one per message slot: its one buffer
	addrs []net.UDPAddr  // one per message slot: copies, the caller's may change

	// Counters for /metrics and the benchmarks.
	calls     atomic.Uint64 // sendmmsg calls
	datagrams atomic.Uint64 // datagrams sent in them
	failed    atomic.Uint64 // datagrams the kernel refused
	lastWarn  time.Time
}

const (
	maxDatagrams    = 64
	maxDatagramSize = 1500
)

// newBatchConn wraps a UDP socket; any other PacketConn is returned as it
// is (nil batcher).
func newBatchConn(c net.PacketConn, log *slog.Logger) (net.PacketConn, *batchConn) {
	udp, ok := c.(*net.UDPConn)
	if !ok {
		return c, nil
	}
	b := &batchConn{PacketConn: udp, pc: ipv4.NewPacketConn(udp), log: log,
		msgs: make([]ipv4.Message, 0, maxDatagrams), bufs: make([][]byte, maxDatagrams),
		iovs: make([][][]byte, maxDatagrams), addrs: make([]net.UDPAddr, maxDatagrams)}
	for i := range b.bufs {
		b.bufs[i] = make([]byte, maxDatagramSize)
		b.iovs[i] = make([][]byte, 1)
	}
	return b, b
}

// begin opens a batch: datagrams written until end are sent together.
func (b *batchConn) begin() { b.open.Add(1) }

// end closes a batch and sends what waits.
func (b *batchConn) end() {
	b.open.Add(-1)
	b.mu.Lock()
	b.flushLocked()
	b.mu.Unlock()
}

// WriteTo implements net.PacketConn.
func (b *batchConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if b.open.Load() == 0 || !ok || ua.IP.To4() == nil || len(p) > maxDatagramSize {
		return b.PacketConn.WriteTo(p, addr)
	}
	b.mu.Lock()
	i := len(b.msgs)
	n := copy(b.bufs[i], p)
	a := &b.addrs[i]
	a.IP = append(a.IP[:0], ua.IP...)
	a.Port, a.Zone = ua.Port, ua.Zone
	b.iovs[i][0] = b.bufs[i][:n]
	b.msgs = append(b.msgs, ipv4.Message{Buffers: b.iovs[i], Addr: a})
	if len(b.msgs) == maxDatagrams {
		b.flushLocked()
	}
	b.mu.Unlock()
	return n, nil
}

// flushLocked sends the waiting datagrams. A datagram the kernel refuses
// (an address gone unreachable) is dropped, as a failed sendto would
// have been, and the rest still go. The caller holds b.mu.
func (b *batchConn) flushLocked() {
	msgs := b.msgs
	for len(msgs) > 0 {
		n, err := b.pc.WriteBatch(msgs, 0)
		b.calls.Add(1)
		if n > 0 {
			b.datagrams.Add(uint64(n))
			msgs = msgs[n:]
		}
		if err != nil {
			b.failed.Add(1)
			if now := time.Now(); now.Sub(b.lastWarn) > 10*time.Second {
				b.lastWarn = now
				b.log.Warn("sfu: sending a batch of datagrams", "to", msgs[0].Addr, "err", err)
			}
			msgs = msgs[1:] // the one refused
		} else if n == 0 {
			break
		}
	}
	for i := range b.msgs {
		b.msgs[i] = ipv4.Message{}
	}
	b.msgs = b.msgs[:0]
}
