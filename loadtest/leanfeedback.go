package loadtest

import (
	"net/netip"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/srtp/v3"
)

// The feedback a lean classroom sends, as a browser does: TWCC feedback,
// NACKs for missing video and receiver reports (lean.go).

// sendFeedback sends what is due: TWCC feedback, NACKs, and receiver
// reports every leanReportEvery.
func (c *leanConn) sendFeedback(now time.Time) {
	enc, peer := c.enc.Load(), c.peer.Load()
	if enc == nil || peer == nil {
		return
	}
	var pkts []rtcp.Packet
	t := c.table.Load()
	if !now.Before(c.nextRR) {
		c.nextRR = now.Add(leanReportEvery)
		rr := &rtcp.ReceiverReport{SSRC: c.ssrc}
		for _, s := range t.streams {
			if s.rtxOf == nil {
				if r, ok := s.report(now); ok {
					rr.Reports = append(rr.Reports, r)
				}
			}
		}
		pkts = append(pkts, rr)
	}
	for _, s := range t.streams {
		if s.video && s.rtxOf == nil {
			if seqs := s.nack.missing(); len(seqs) > 0 {
				pkts = append(pkts, &rtcp.TransportLayerNack{SenderSSRC: c.ssrc, MediaSSRC: s.ssrc, Nacks: rtcp.NackPairsFromSequenceNumbers(seqs)})
			}
		}
	}
	if t.twccID != 0 {
		for _, p := range c.twcc.BuildFeedbackPacket() {
			c.sendRTCP(enc, *peer, []rtcp.Packet{p})
		}
	}
	if len(pkts) > 0 {
		c.sendRTCP(enc, *peer, pkts)
	}
}

func (c *leanConn) sendRTCP(enc *srtp.Context, peer netip.AddrPort, pkts []rtcp.Packet) {
	raw, err := rtcp.Marshal(pkts)
	if err != nil {
		return
	}
	out, err := enc.EncryptRTCP(nil, raw, nil)
	if err != nil {
		return
	}
	c.write(out, peer)
}

// report is the stream's reception report block (RFC 3550 6.4.1).
func (s *leanStream) report(now time.Time) (rtcp.ReceptionReport, bool) {
	s.stats.mu.Lock()
	started, maxSeq := s.stats.started, s.stats.maxSeq
	expected, distinct := s.stats.counts()
	s.stats.mu.Unlock()
	if !started {
		return rtcp.ReceptionReport{}, false
	}
	r := rtcp.ReceptionReport{SSRC: s.ssrc, LastSequenceNumber: uint32(maxSeq - 1<<32)}
	if expected > distinct {
		r.TotalLost = uint32(min(expected-distinct, 1<<23-1))
	}
	if e, d := expected-s.lastExp, distinct-s.lastDist; e > 0 && d < e {
		r.FractionLost = uint8((e - d) * 256 / e)
	}
	s.lastExp, s.lastDist = expected, distinct
	if s.lsr != 0 {
		r.LastSenderReport = s.lsr
		r.Delay = uint32(now.Sub(s.lsrAt).Seconds() * 65536)
	}
	return r, true
}

// nackLog finds the video packets to ask again for, as pion's NACK
// generator does: every missing sequence number of the last 512 packets,
// each at most nackTries times.
type nackLog struct {
	started bool
	max     uint16
	span    uint16    // how far max is past the first packet, up to 511
	seen    [8]uint64 // by sequence number mod 512
	tries   [512]uint8
}

const nackTries = 10

func (n *nackLog) add(seq uint16) {
	if !n.started {
		n.started, n.max = true, seq
		n.set(seq)
		return
	}
	diff := int16(seq - n.max)
	if diff > 0 {
		for x := n.max + 1; x != seq; x++ {
			n.clear(x)
		}
		if diff >= 512 {
			n.seen = [8]uint64{}
		}
		n.clear(seq)
		n.max = seq
		n.span = uint16(min(int(n.span)+int(diff), 511))
	} else if diff <= -512 {
		return
	}
	n.set(seq)
}

func (n *nackLog) set(seq uint16)      { n.seen[(seq%512)/64] |= 1 << (seq % 64) }
func (n *nackLog) has(seq uint16) bool { return n.seen[(seq%512)/64]&(1<<(seq%64)) != 0 }
func (n *nackLog) clear(seq uint16) {
	n.seen[(seq%512)/64] &^= 1 << (seq % 64)
	n.tries[seq%512] = 0
}

// missing lists the sequence numbers to NACK now.
func (n *nackLog) missing() []uint16 {
	if !n.started {
		return nil
	}
	var out []uint16
	for back := n.span; back > 0; back-- {
		seq := n.max - back
		if !n.has(seq) && n.tries[seq%512] < nackTries {
			n.tries[seq%512]++
			out = append(out, seq)
		}
	}
	return out
}
