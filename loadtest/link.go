package loadtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
)

// LinkProfile describes the downlink of one emulated classroom: what a rural
// school's connection does to the packets the server sends it.
type LinkProfile struct {
	// RateBits is the bottleneck rate in bit/s; 0 means unlimited.
	RateBits int64 `json:"rateBits"`
	// Loss is the probability (0..1) that a packet is dropped at random.
	Loss float64 `json:"loss"`
	// Delay is the one-way propagation delay added to every packet.
	Delay time.Duration `json:"delay"`
	// Jitter is the largest extra random delay (uniform in 0..Jitter).
	// Packets are never reordered: a packet leaves no earlier than the one
	// before it, as on a single bottleneck queue.
	Jitter time.Duration `json:"jitter"`
	// Queue is the longest a packet may wait behind the rate limit before
	// the bottleneck drops it (a router's buffer), 200 ms by default.
	Queue time.Duration `json:"queue"`
}

// Active reports whether the profile changes anything.
func (p LinkProfile) Active() bool {
	return p.RateBits > 0 || p.Loss > 0 || p.Delay > 0 || p.Jitter > 0
}

// String is the profile in the form ParseLinkProfile reads.
func (p LinkProfile) String() string {
	if !p.Active() {
		return "none"
	}
	var parts []string
	if p.RateBits > 0 {
		parts = append(parts, fmt.Sprintf("rate=%gmbit", float64(p.RateBits)/1e6))
	}
	if p.Loss > 0 {
		parts = append(parts, fmt.Sprintf("loss=%g%%", p.Loss*100))
	}
	if p.Delay > 0 {
		parts = append(parts, "delay="+p.Delay.String())
	}
	if p.Jitter > 0 {
		parts = append(parts, "jitter="+p.Jitter.String())
	}
	if p.Queue > 0 && p.Queue != defaultQueue {
		parts = append(parts, "queue="+p.Queue.String())
	}
	return strings.Join(parts, ",")
}

const defaultQueue = 200 * time.Millisecond

// ParseLinkProfile reads a profile such as "1mbit,3%", "rate=1mbit,loss=3%,
// delay=40ms,jitter=10ms" or "none". Unnamed values are recognised by their
// unit: bit/kbit/mbit is the rate, % the loss, a duration the delay (the
// second duration is the jitter).
func ParseLinkProfile(s string) (LinkProfile, error) {
	p := LinkProfile{Queue: defaultQueue}
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return p, nil
	}
	durations := 0
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, val, named := strings.Cut(part, "=")
		if !named {
			val = part
			switch {
			case strings.HasSuffix(val, "%"):
				key = "loss"
			case strings.HasSuffix(strings.ToLower(val), "bit"):
				key = "rate"
			default:
				key = "delay"
				if durations > 0 {
					key = "jitter"
				}
				durations++
			}
		}
		var err error
		switch strings.ToLower(key) {
		case "rate":
			p.RateBits, err = parseRate(val)
		case "loss":
			p.Loss, err = parsePercent(val)
		case "delay":
			p.Delay, err = parseNonNegDuration(val)
		case "jitter":
			p.Jitter, err = parseNonNegDuration(val)
		case "queue":
			p.Queue, err = parseNonNegDuration(val)
			if err == nil && p.Queue == 0 {
				err = errors.New("must be positive")
			}
		default:
			return LinkProfile{}, fmt.Errorf("link profile %q: unknown field %q (want rate, loss, delay, jitter, queue)", s, key)
		}
		if err != nil {
			return LinkProfile{}, fmt.Errorf("link profile %q: %s: %w", s, key, err)
		}
	}
	return p, nil
}

func parseRate(v string) (int64, error) {
	l := strings.ToLower(strings.TrimSpace(v))
	mult := 1.0
	switch {
	case strings.HasSuffix(l, "mbit"):
		mult, l = 1e6, strings.TrimSuffix(l, "mbit")
	case strings.HasSuffix(l, "kbit"):
		mult, l = 1e3, strings.TrimSuffix(l, "kbit")
	case strings.HasSuffix(l, "bit"):
		l = strings.TrimSuffix(l, "bit")
	default:
		return 0, fmt.Errorf("rate %q needs a unit (bit, kbit, mbit)", v)
	}
	f, err := strconv.ParseFloat(l, 64)
	if err != nil || f < 0 || f*mult > 1e12 || f != f {
		return 0, fmt.Errorf("bad rate %q", v)
	}
	return int64(f * mult), nil
}

func parsePercent(v string) (float64, error) {
	l := strings.TrimSpace(v)
	pct := strings.HasSuffix(l, "%")
	f, err := strconv.ParseFloat(strings.TrimSuffix(l, "%"), 64)
	if err != nil || f != f {
		return 0, fmt.Errorf("bad loss %q", v)
	}
	if pct {
		f /= 100
	}
	if f < 0 || f > 1 {
		return 0, fmt.Errorf("loss %q out of range 0..100%%", v)
	}
	return f, nil
}

func parseNonNegDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		return 0, err
	}
	if d < 0 || d > time.Minute {
		return 0, fmt.Errorf("duration %q out of range 0..1m", v)
	}
	return d, nil
}

// linkFactory makes one emulated link per peer connection. The link is a
// receive-side interceptor registered before NACK and TWCC: it drops, queues
// and delays incoming RTP (media and retransmissions alike) before the NACK
// generator and the TWCC recorder see them, so the server's congestion
// control and loss recovery react to the emulated link as they would to a
// real one. The server's RTCP (sender reports) crosses the same link: lost
// at the same rate, delayed by the propagation delay and jitter; the
// classroom's own RTCP (receiver reports, NACK, TWCC feedback) is delayed
// by the propagation delay on its way up, so the round trip the server
// measures is two delays plus queueing, as on a real line. ICE, DTLS and a
// classroom's own camera are not shaped.
//
// A factory serves one peer connection: its owner calls wait after closing
// the connection, so the pump goroutines are gone before the run ends.
type linkFactory struct {
	profile LinkProfile

	mu    sync.Mutex
	links []*linkInterceptor
}

func (f *linkFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	ctx, cancel := context.WithCancel(context.Background())
	l := &linkInterceptor{profile: f.profile, ctx: ctx, cancel: cancel,
		rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
	f.mu.Lock()
	f.links = append(f.links, l)
	f.mu.Unlock()
	return l, nil
}

// wait waits for the pumps of every link this factory made (after their
// connections were closed), giving up after a few seconds.
func (f *linkFactory) wait() {
	f.mu.Lock()
	links := f.links
	f.mu.Unlock()
	for _, l := range links {
		l.cancel()
		done := make(chan struct{})
		go func() { l.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	}
}

// dropped returns how many packets the links dropped in all, and of them
// how many because the bottleneck's queue was full.
func (f *linkFactory) dropped() (all, queueFull uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.links {
		l.mu.Lock()
		all += l.dropped
		queueFull += l.queueDropped
		l.mu.Unlock()
	}
	return all, queueFull
}

// linkInterceptor is one connection's bottleneck: every remote stream of the
// connection shares its rate.
type linkInterceptor struct {
	interceptor.NoOp
	profile LinkProfile
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu       sync.Mutex
	rng      *rand.Rand
	nextFree time.Time // when the bottleneck finishes sending what it holds
	lastOut  time.Time // release time of the latest packet (no reordering)
	dropped  uint64
	// queueDropped: of dropped, those the full bottleneck queue dropped
	// (the rest is random loss).
	queueDropped uint64
}

// admit decides the fate of one packet of n bytes arriving now: dropped, or
// released at the returned time.
func (l *linkInterceptor) admit(now time.Time, n int) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.profile.Loss > 0 && l.rng.Float64() < l.profile.Loss {
		l.dropped++
		return time.Time{}, false
	}
	out := now
	if l.profile.RateBits > 0 {
		start := now
		if l.nextFree.After(start) {
			start = l.nextFree
		}
		if start.Sub(now) > l.profile.Queue {
			l.dropped++
			l.queueDropped++
			return time.Time{}, false // the router's buffer is full
		}
		l.nextFree = start.Add(time.Duration(float64(n*8) / float64(l.profile.RateBits) * float64(time.Second)))
		out = l.nextFree
	}
	out = out.Add(l.profile.Delay)
	if l.profile.Jitter > 0 {
		out = out.Add(time.Duration(l.rng.Int64N(int64(l.profile.Jitter) + 1)))
	}
	if out.Before(l.lastOut) {
		out = l.lastOut
	}
	l.lastOut = out
	return out, true
}

type heldPacket struct {
	buf   []byte
	attrs interceptor.Attributes
	at    time.Time
}

// readFunc is the shape of both an RTP and an RTCP reader.
type readFunc = func([]byte, interceptor.Attributes) (int, interceptor.Attributes, error)

// delayLine puts a queue between the network and the rest of the chain: a
// pump goroutine reads as fast as packets come and asks admit about each
// (dropped, or released at a time), and the returned reader hands packets
// on when their release time has come.
func (l *linkInterceptor) delayLine(read readFunc, admit func(now time.Time, n int) (time.Time, bool), queue int) readFunc {
	q := make(chan heldPacket, queue)
	errc := make(chan error, 1)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(q)
		buf := make([]byte, 1500)
		for {
			n, attrs, err := read(buf, nil)
			if err != nil {
				errc <- err
				return
			}
			at, ok := admit(time.Now(), n)
			if !ok {
				continue
			}
			select {
			case q <- heldPacket{buf: append([]byte(nil), buf[:n]...), attrs: attrs, at: at}:
			default: // the reader stopped reading: drop rather than block the network
			}
		}
	}()
	var timer *time.Timer
	return func(b []byte, _ interceptor.Attributes) (int, interceptor.Attributes, error) {
		p, ok := <-q
		if !ok {
			return 0, nil, <-errc
		}
		if err := l.sleepUntil(p.at, &timer); err != nil {
			return 0, nil, err
		}
		if len(b) < len(p.buf) {
			return 0, nil, errors.New("link: read buffer too small")
		}
		return copy(b, p.buf), p.attrs, nil
	}
}

// BindRemoteStream sends the media through the bottleneck.
func (l *linkInterceptor) BindRemoteStream(_ *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	if !l.profile.Active() {
		return reader
	}
	return interceptor.RTPReaderFunc(l.delayLine(reader.Read, l.admit, 2048))
}

// BindRTCPReader delays (and loses) the server's RTCP like its media, but
// outside the rate queue: reports are small and a router does not hold
// them behind video for long.
func (l *linkInterceptor) BindRTCPReader(reader interceptor.RTCPReader) interceptor.RTCPReader {
	if !l.profile.Active() {
		return reader
	}
	return interceptor.RTCPReaderFunc(l.delayLine(reader.Read, l.propagate, 256))
}

// propagate is admit for RTCP: random loss, then delay and jitter.
func (l *linkInterceptor) propagate(now time.Time, _ int) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.profile.Loss > 0 && l.rng.Float64() < l.profile.Loss {
		return time.Time{}, false
	}
	out := now.Add(l.profile.Delay)
	if l.profile.Jitter > 0 {
		out = out.Add(time.Duration(l.rng.Int64N(int64(l.profile.Jitter) + 1)))
	}
	return out, true
}

type heldRTCP struct {
	pkts  []rtcp.Packet
	attrs interceptor.Attributes
	at    time.Time
}

// BindRTCPWriter delays the classroom's RTCP by the propagation delay on
// its way to the server, in order.
func (l *linkInterceptor) BindRTCPWriter(writer interceptor.RTCPWriter) interceptor.RTCPWriter {
	if l.profile.Delay <= 0 {
		return writer
	}
	q := make(chan heldRTCP, 256)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		var timer *time.Timer
		for {
			select {
			case <-l.ctx.Done():
				return
			case p := <-q:
				if l.sleepUntil(p.at, &timer) != nil {
					return
				}
				_, _ = writer.Write(p.pkts, p.attrs)
			}
		}
	}()
	return interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, attrs interceptor.Attributes) (int, error) {
		select {
		case q <- heldRTCP{pkts: pkts, attrs: attrs, at: time.Now().Add(l.profile.Delay)}:
		default: // the uplink queue is full: lost, as on a congested line
		}
		return 0, nil
	})
}

// sleepUntil waits until at, or until the link is closed.
func (l *linkInterceptor) sleepUntil(at time.Time, timer **time.Timer) error {
	wait := time.Until(at)
	if wait <= 0 {
		return nil
	}
	if *timer == nil {
		*timer = time.NewTimer(wait)
	} else {
		(*timer).Reset(wait)
	}
	select {
	case <-(*timer).C:
		return nil
	case <-l.ctx.Done():
		return l.ctx.Err()
	}
}

// Close stops the pumps and waits for them; the pumps' reads end when the
// connection closes its streams.
func (l *linkInterceptor) Close() error {
	l.cancel()
	return nil
}
