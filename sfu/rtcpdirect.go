package sfu

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/srtp/v3"

	"podium/internal/rtpmux"
)

// Classrooms' RTCP, read off the node's UDP socket. A classroom sends the
// node RTCP all the time: TWCC feedback every 50-100 ms, receiver reports,
// NACKs. Through pion, each packet passed the UDP mux's worker, the ICE
// candidate's read loop, the DTLS/SRTP demultiplexer, the SRTP session and
// the RTP sender's buffer, four goroutine hand-offs before the subscriber's
// reader saw it: at fanout200 about 30 µs of CPU a packet, a fifth of the
// node's (docs/BENCHMARKS.md, "RTCP off the socket"). Once a subscriber
// connection's keys are known and its pair is UDP on the node's socket,
// the socket's reader takes that address's SRTCP itself: it opens it with
// the connection's SRTCP context and hands the compound packet to the
// subscriber, on the reading goroutine. Everything else (STUN, DTLS, a
// publisher's RTP and RTCP, other addresses) goes to pion as before.

// rtcpRoute is where one classroom address's SRTCP goes.
type rtcpRoute struct {
	in      *srtp.Context // opens the classroom's SRTCP; the socket reader's only
	deliver func(compound []byte)
	buf     []byte      // the socket reader's scratch
	hdr     rtcp.Header // scratch for the context's parse (pion allocates one when given none)
}

// rtcpRoutes are the batchConn's routes, by the classroom's address.
type rtcpRoutes struct {
	mu     sync.Mutex // serializes changes
	routes atomic.Pointer[map[netip.AddrPort]*rtcpRoute]
	taken  atomic.Uint64 // packets taken off the socket
	failed atomic.Uint64 // of those, packets that did not open
}

// set routes addr's SRTCP to r, or back to pion when r is nil.
func (rs *rtcpRoutes) set(addr netip.AddrPort, r *rtcpRoute) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	rs.mu.Lock()
	defer rs.mu.Unlock()
	next := map[netip.AddrPort]*rtcpRoute{}
	if old := rs.routes.Load(); old != nil {
		for a, r := range *old {
			next[a] = r
		}
	}
	if r == nil {
		delete(next, addr)
	} else {
		next[addr] = r
	}
	rs.routes.Store(&next)
}

// take handles p, read from addr, when it is SRTCP from a routed address,
// and reports whether it did.
func (rs *rtcpRoutes) take(p []byte, addr net.Addr) bool {
	routes := rs.routes.Load()
	if routes == nil || len(*routes) == 0 || !isSRTCPPacket(p) {
		return false
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return false
	}
	ap := ua.AddrPort()
	r := (*routes)[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())]
	if r == nil {
		return false
	}
	rs.taken.Add(1)
	out, err := r.in.DecryptRTCP(r.buf[:0], p, &r.hdr)
	if err != nil {
		rs.failed.Add(1) // a replay or garbage: dropped, as pion would
		return true
	}
	r.deliver(out)
	return true
}

// isSRTCPPacket tells SRTCP from the rest of what shares the socket: RTP
// version 2 in the first byte (RFC 7983 tells STUN and DTLS apart by it),
// an RTCP packet type in the second, and at least a header's 8 bytes.
func isSRTCPPacket(p []byte) bool {
	return len(p) >= 8 && p[0]>>6 == 2 && rtpmux.IsRTCP(p)
}
