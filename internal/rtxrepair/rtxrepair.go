// Package rtxrepair puts RTX retransmissions (RFC 4588) back into the
// stream they repair, inside pion's interceptor chain.
//
// Pion reads an RTX stream through an interceptor chain of its own and
// hands the repaired packets straight to the track's reader, past the
// original stream's interceptors. Its NACK generator therefore never sees
// a packet arrive by retransmission and asks for it again every 100 ms
// until it gives up: on a lossy link every lost packet is retransmitted
// several times, and the duplicates fill the very link that lost it.
//
// The interceptor here sits nearest the network. It reads a declared RTX
// stream (one the SDP ties to its original with an FID ssrc-group) itself,
// turns each retransmission back into the original packet (original
// sequence number from the payload's first two bytes, original SSRC and
// payload type) and feeds it into the original stream's reader, so the NACK
// generator, the receiver reports and the TWCC recorder see it as the
// packet they were missing. Streams without a declared RTX stream (RID
// simulcast, which pairs RTX by RRID) are left to pion.
package rtxrepair

import (
	"encoding/binary"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/pion/interceptor"
)

// Factory makes the Interceptor of one peer connection (one Factory per
// connection: it holds the connection's RTX pairs). Register it first
// (nearest the network), or right after anything that emulates the network.
type Factory struct {
	mu    sync.Mutex
	pairs map[uint32]uint32 // RTX SSRC -> original SSRC
	apt   map[uint8]uint8   // RTX payload type -> original payload type
}

// NewFactory makes a factory that knows no pairs yet.
func NewFactory() *Factory {
	return &Factory{pairs: map[uint32]uint32{}, apt: map[uint8]uint8{}}
}

// LearnSDP records the RTX pairs a remote description declares: "a=ssrc-
// group:FID <original> <rtx>" and "a=fmtp:<rtx pt> apt=<original pt>".
// Call it before setting the description, so the pairs are known when the
// streams start. Malformed lines are ignored: pion validates the SDP.
func (f *Factory) LearnSDP(sdp string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, line := range strings.Split(sdp, "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "a=ssrc-group:FID "); ok {
			fields := strings.Fields(rest)
			if len(fields) != 2 {
				continue
			}
			orig, err1 := strconv.ParseUint(fields[0], 10, 32)
			rtx, err2 := strconv.ParseUint(fields[1], 10, 32)
			if err1 == nil && err2 == nil {
				f.pairs[uint32(rtx)] = uint32(orig)
			}
			continue
		}
		if rest, ok := strings.CutPrefix(line, "a=fmtp:"); ok {
			pt, params, _ := strings.Cut(rest, " ")
			for _, p := range strings.Split(params, ";") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(p), "apt="); ok {
					rtxPT, err1 := strconv.ParseUint(pt, 10, 7)
					origPT, err2 := strconv.ParseUint(v, 10, 7)
					if err1 == nil && err2 == nil {
						f.apt[uint8(rtxPT)] = uint8(origPT)
					}
				}
			}
		}
	}
}

// role tells whether ssrc is a declared RTX stream (with its original) or
// an original that has one.
func (f *Factory) role(ssrc uint32) (isRTX, hasRTX bool, orig uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if o, ok := f.pairs[ssrc]; ok {
		return true, false, o
	}
	for _, o := range f.pairs {
		if o == ssrc {
			return false, true, ssrc
		}
	}
	return false, false, 0
}

func (f *Factory) originalPT(rtxPT uint8) (uint8, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pt, ok := f.apt[rtxPT]
	return pt, ok
}

// NewInterceptor implements interceptor.Factory.
func (f *Factory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &Interceptor{f: f, originals: map[uint32]*original{}, done: make(chan struct{})}, nil
}

// Interceptor is one connection's RTX unwrapper.
type Interceptor struct {
	interceptor.NoOp
	f *Factory

	mu        sync.Mutex
	originals map[uint32]*original // by original SSRC

	done      chan struct{}
	closeOnce sync.Once
}

// original is a stream that has a declared RTX stream.
type original struct {
	ssrc uint32
	// in carries the original stream's packets and the repaired ones, in
	// arrival order, to the original stream's reader.
	in chan packet
}

type packet struct {
	buf    []byte
	pooled *[]byte // buf's backing array, back to buffers once read
	attrs  interceptor.Attributes
	err    error
}

// buffers recycles the original streams' packet buffers: the pump reads
// every packet of a stream into one.
var buffers = sync.Pool{New: func() any { b := make([]byte, 1500); return &b }}

func (p packet) release() {
	if p.pooled != nil {
		buffers.Put(p.pooled)
	}
}

// queueLen bounds the packets waiting for the original stream's reader; a
// reader that stops reading loses packets rather than blocking the network.
const queueLen = 512

// BindRemoteStream implements interceptor.Interceptor.
func (r *Interceptor) BindRemoteStream(info *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	isRTX, hasRTX, orig := r.f.role(info.SSRC)
	switch {
	case isRTX:
		return r.bindRTX(r.original(orig), reader)
	case hasRTX:
		return r.bindOriginal(r.original(orig), reader)
	}
	return reader
}

func (r *Interceptor) original(ssrc uint32) *original {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.originals[ssrc]
	if o == nil {
		o = &original{ssrc: ssrc, in: make(chan packet, queueLen)}
		r.originals[ssrc] = o
	}
	return o
}

// bindOriginal merges the network's packets of an original stream with the
// repaired ones into one reader. The pump goroutine ends when the
// connection closes the stream (its read fails).
func (r *Interceptor) bindOriginal(o *original, reader interceptor.RTPReader) interceptor.RTPReader {
	go func() {
		for {
			bp := buffers.Get().(*[]byte)
			n, attrs, err := reader.Read(*bp, nil)
			if err != nil {
				buffers.Put(bp)
				r.deliver(o, packet{err: err})
				return
			}
			r.deliver(o, packet{buf: (*bp)[:n], pooled: bp, attrs: attrs})
		}
	}()
	return interceptor.RTPReaderFunc(func(b []byte, _ interceptor.Attributes) (int, interceptor.Attributes, error) {
		select {
		case p := <-o.in:
			if p.err != nil {
				return 0, nil, p.err
			}
			defer p.release()
			if len(b) < len(p.buf) {
				return 0, nil, io.ErrShortBuffer
			}
			return copy(b, p.buf), p.attrs, nil
		case <-r.done:
			return 0, nil, io.EOF
		}
	})
}

// deliver queues a packet for the original stream's reader. An error is
// always delivered (the reader must learn the stream ended); a packet is
// dropped when the reader is far behind.
func (r *Interceptor) deliver(o *original, p packet) {
	if p.err != nil {
		select {
		case o.in <- p:
		case <-r.done:
		}
		return
	}
	select {
	case o.in <- p:
	default:
		p.release()
	}
}

// bindRTX reads the RTX stream itself and feeds each repaired packet to
// its original. Pion's own repair reader blocks here until the stream
// ends, which is what it would do on an idle stream anyway.
func (r *Interceptor) bindRTX(o *original, reader interceptor.RTPReader) interceptor.RTPReader {
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		for {
			n, attrs, err := reader.Read(b, a)
			if err != nil {
				return n, attrs, err
			}
			if n < 2 {
				continue
			}
			pt, known := r.f.originalPT(b[1] & 0x7f)
			if !known {
				continue
			}
			if buf, ok := Original(nil, b[:n], o.ssrc, pt); ok {
				r.deliver(o, packet{buf: buf, attrs: attrs})
			}
			// Padding-only RTX (bandwidth probes) and malformed packets are
			// dropped here; nothing downstream needs them.
		}
	})
}

// Original turns an RTX packet into the original packet, appended to dst:
// same header (with extensions, minus padding), the original's SSRC, payload
// type and sequence number, and the payload after the 2-byte OSN. The load
// tool's lean classrooms use it outside pion too.
func Original(dst, rtx []byte, ssrc uint32, pt uint8) ([]byte, bool) {
	if len(rtx) < 12 || rtx[0]>>6 != 2 {
		return nil, false
	}
	hdr := 12 + 4*int(rtx[0]&0x0f)
	if rtx[0]&0x10 != 0 {
		if len(rtx) < hdr+4 {
			return nil, false
		}
		hdr += 4 + 4*int(binary.BigEndian.Uint16(rtx[hdr+2:]))
	}
	end := len(rtx)
	if rtx[0]&0x20 != 0 {
		end -= int(rtx[end-1])
	}
	if end-hdr < 2 || hdr > end {
		return nil, false
	}
	out := slices.Grow(dst, end-2)
	out = append(out, rtx[:hdr]...)
	out = append(out, rtx[hdr+2:end]...)
	p := out[len(dst):]
	p[0] &^= 0x20 // padding removed
	p[1] = p[1]&0x80 | pt&0x7f
	copy(p[2:4], rtx[hdr:hdr+2])
	binary.BigEndian.PutUint32(p[8:12], ssrc)
	return out, true
}

// Close implements interceptor.Interceptor: readers of original streams
// return io.EOF from now on. Pion closes interceptors after the streams, so
// the pumps have ended or end with them.
func (r *Interceptor) Close() error {
	r.closeOnce.Do(func() { close(r.done) })
	return nil
}
