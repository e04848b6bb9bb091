package loadtest

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	dtlsfingerprint "github.com/pion/dtls/v3/pkg/crypto/fingerprint"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/stun/v4"

	"podium/internal/rtpmux"
	"podium/internal/rtxrepair"
)

// A lean classroom (--receiver lean) receives what a classroom receives
// and answers as a browser does, without pion/webrtc's receive pipeline,
// so that one core of the tool can drive many more classrooms than the
// server under test can serve (docs/BENCHMARKS.md, "The lean receiver").
//
// Through pion, a received packet costs the tool ~16 µs: the ICE agent's
// read loop, a copy into its buffer, the mux, the SRTP session's buffer,
// an interceptor chain (NACK log, receiver reports, TWCC recorder, RTX
// repair) and the track's reader, with goroutine hand-offs between them.
// A lean classroom's socket is read by a poller shared with many others
// (lean_linux.go: epoll, one recvmmsg per ready socket, no goroutine per
// classroom), which decrypts in place and accounts the packet in the same
// goroutine; it also answers the server's ICE checks and sends the
// feedback a browser sends: TWCC every 100 ms (arrival times from the kernel's
// receive timestamps, so a tool late to read does not look like a queue
// to the server's estimator), NACKs for missing video, and receiver
// reports with the round-trip timing of the server's sender reports.
// pion's DTLS does the handshake, pion/srtp the crypto.
//
// It speaks UDP only, over one BUNDLEd 5-tuple, with no link emulation:
// a capacity benchmark's classroom on a good line.

// leanIdentity is the DTLS certificate the run's lean classrooms share.
type leanIdentity struct {
	cert        tls.Certificate
	fingerprint string // SHA-256, "ab:cd:..."
}

func newLeanIdentity() (*leanIdentity, error) {
	cert, err := selfsign.GenerateSelfSigned()
	if err != nil {
		return nil, fmt.Errorf("lean certificate: %w", err)
	}
	fp, err := certFingerprint(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("lean certificate: %w", err)
	}
	return &leanIdentity{cert: cert, fingerprint: fp}, nil
}

// certFingerprint is a DER certificate's SHA-256 fingerprint as a session
// description carries it, computed as pion's peers compute it.
func certFingerprint(der []byte) (string, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return "", err
	}
	return dtlsfingerprint.Fingerprint(cert, crypto.SHA256)
}

// Intervals of a lean classroom's feedback, as pion's interceptors (and
// so the pion classrooms) send it.
const (
	leanFeedbackEvery = 100 * time.Millisecond
	leanReportEvery   = time.Second
)

// leanBatch is how many datagrams a poller reads from a socket at once.
const leanBatch = 16

// leanConn is one lean classroom's receiving connection. Its poller reads
// the socket and does everything per packet and per feedback interval;
// connect runs ICE checks (when the classroom offered) and DTLS on the
// caller's goroutine. close takes it from the poller and closes the socket.
type leanConn struct {
	stats  *classroomStats
	lesson *lesson
	id     *leanIdentity

	fd     int
	addr   netip.AddrPort // the socket's
	poller *leanPoller
	// writeMu guards fd against its close while a write is under way
	// (a closed descriptor's number is soon another socket's).
	writeMu sync.RWMutex
	closed  bool
	start   time.Time
	ssrc    uint32 // of the RTCP it sends

	// controlling: the classroom offered (WHEP), so it nominates.
	controlling bool
	tiebreaker  uint64

	mu     sync.Mutex
	local  localDesc
	remote *remoteDesc

	table    atomic.Pointer[leanTable]
	peer     atomic.Pointer[netip.AddrPort]
	selected chan struct{} // closed when the peer is chosen
	selOnce  sync.Once
	dec, enc atomic.Pointer[srtp.Context]
	dtlsIn   chan []byte
	done     chan struct{}
	doneOnce sync.Once
	dtlsConn atomic.Pointer[dtls.Conn]

	// Owned by the poller.
	hdr    rtp.Header
	plain  [1500]byte
	repair [1500]byte
	twcc   *twcc.Recorder
	nextFB time.Time // zero until the first tick
	nextRR time.Time
	// loss, in tests, drops video packets as a lossy line would.
	loss *leanLoss
}

// leanLoss drops every nth original video packet of the classrooms it is
// given to, before anything sees them (tests: NACK and RTX through the
// lean path).
type leanLoss struct {
	every   uint64
	seen    atomic.Uint64
	dropped atomic.Uint64
}

func (l *leanLoss) drop() bool {
	if l.seen.Add(1)%l.every != 0 {
		return false
	}
	l.dropped.Add(1)
	return true
}

// leanTable maps the server's SSRCs to what they carry; a new description
// makes a new table (the read loop loads it per packet).
type leanTable struct {
	streams []*leanStream
	codecs  map[uint8]string // payload type -> codec name
	twccID  uint8            // the transport-wide sequence number's extension id; 0: none
}

func (t *leanTable) find(ssrc uint32) *leanStream {
	for _, s := range t.streams {
		if s.ssrc == ssrc {
			return s
		}
	}
	return nil
}

// leanStream is one of the server's SSRCs.
type leanStream struct {
	ssrc        uint32
	video       bool
	fromTeacher bool
	stats       *streamStats
	book        *stampBook
	rtxOf       *leanStream // a retransmission stream: the stream it repairs

	// Owned by the poller.
	nack     nackLog
	pt       uint8 // payload type of its last packet (what RTX restores)
	red      bool  // stats told it carries RED
	gotFirst bool  // the classroom's first-packet milestone is marked
	lsr      uint32
	lsrAt    time.Time
	lastExp  uint64
	lastDist uint64
}

// newLeanConn opens a classroom's socket on the address that reaches the
// server and hands it to poller.
func newLeanConn(poller *leanPoller, stats *classroomStats, l *lesson, id *leanIdentity, server string, loopbackOnly, controlling bool, loss *leanLoss) (*leanConn, error) {
	ip := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	if !loopbackOnly {
		a, err := localAddrTowards(server)
		if err != nil {
			return nil, err
		}
		ip = a
	}
	fd, addr, err := openLeanSocket(ip)
	if err != nil {
		return nil, err
	}
	var rnd [20]byte
	_, _ = rand.Read(rnd[:])
	c := &leanConn{
		stats: stats, lesson: l, id: id, loss: loss,
		fd: fd, addr: addr, poller: poller, start: time.Now(),
		ssrc:        binary.BigEndian.Uint32(rnd[0:]),
		controlling: controlling, tiebreaker: binary.BigEndian.Uint64(rnd[4:]),
		selected: make(chan struct{}), dtlsIn: make(chan []byte, 16), done: make(chan struct{}),
	}
	c.local = localDesc{fingerprint: id.fingerprint, addr: addr}
	c.newCredentials()
	c.twcc = twcc.NewRecorder(c.ssrc)
	c.table.Store(&leanTable{})
	if err := poller.add(c); err != nil {
		closeLeanSocket(fd)
		return nil, err
	}
	return c, nil
}

func (c *leanConn) newCredentials() {
	var b [32]byte
	_, _ = rand.Read(b[:])
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	s := make([]byte, len(b))
	for i, v := range b {
		s[i] = alphabet[int(v)%len(alphabet)]
	}
	c.local.ufrag, c.local.pwd = string(s[:8]), string(s[8:])
}

// localAddrTowards is the local address the kernel routes to server from.
func localAddrTowards(server string) (netip.Addr, error) {
	host := server
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	host, _, _ = strings.Cut(host, "/")
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	conn, err := net.Dial("udp4", net.JoinHostPort(host, "9"))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("lean socket: route to %s: %w", host, err)
	}
	defer conn.Close()
	return conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr(), nil
}

// answer takes the server's offer and returns the classroom's answer.
func (c *leanConn) answer(offer string) (string, error) {
	d, err := parseRemoteDesc(offer)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.remote != nil && c.remote.ufrag != d.ufrag {
		// An ICE restart: both sides take new credentials (RFC 8445).
		c.newCredentials()
	}
	c.learn(d)
	return c.local.answer(d), nil
}

// offer is the classroom's WHEP offer.
func (c *leanConn) offer() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.local.whepOffer()
}

// takeAnswer learns the server's answer to offer.
func (c *leanConn) takeAnswer(answer string) error {
	d, err := parseRemoteDesc(answer)
	if err != nil {
		return err
	}
	if len(d.candidates) == 0 {
		return errors.New("answer has no UDP candidate")
	}
	c.mu.Lock()
	c.learn(d)
	c.mu.Unlock()
	return nil
}

// learn makes the stream table of a new description, keeping the streams
// already known (their loss and NACK state). Called with mu held.
func (c *leanConn) learn(d *remoteDesc) {
	c.remote = d
	old := c.table.Load()
	t := &leanTable{codecs: map[uint8]string{}}
	keep := func(s *leanStream) *leanStream {
		if o := old.find(s.ssrc); o != nil && o.rtxOf == nil == (s.rtxOf == nil) {
			return o
		}
		return s
	}
	for _, m := range d.media {
		if m.rejected {
			continue
		}
		for _, f := range m.formats {
			t.codecs[f.pt] = f.codec
		}
		if m.twccID != 0 && t.twccID == 0 {
			t.twccID = m.twccID
		}
		video := m.kind == "video"
		for ssrc, streamID := range m.ssrcs {
			if _, isRTX := m.rtx[ssrc]; isRTX {
				continue
			}
			s := &leanStream{ssrc: ssrc, video: video}
			s.fromTeacher = c.lesson.teacherID == "" || streamID == c.lesson.teacherID || strings.HasPrefix(streamID, c.lesson.teacherID)
			switch {
			case !s.fromTeacher:
				s.stats = &c.stats.other
			case video:
				s.stats, s.book = &c.stats.video, c.lesson.book
			default:
				s.stats = &c.stats.audio
			}
			t.streams = append(t.streams, keep(s))
		}
		for rtx, orig := range m.rtx {
			if o := t.find(orig); o != nil {
				t.streams = append(t.streams, keep(&leanStream{ssrc: rtx, video: video, rtxOf: o}))
			}
		}
	}
	c.table.Store(t)
}

// connect waits for ICE to pick the path (sending checks when the
// classroom offered), then runs the DTLS handshake as its client and
// keeps the SRTP contexts it agrees. It returns when the connection
// carries media or failed.
func (c *leanConn) connect(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if c.controlling {
		if err := c.nominate(ctx); err != nil {
			return err
		}
	} else {
		select {
		case <-c.selected:
		case <-ctx.Done():
			return fmt.Errorf("ice: no check from the server: %w", ctx.Err())
		case <-c.done:
			return net.ErrClosed
		}
	}
	c.mu.Lock()
	want := c.remote.fingerprint
	c.mu.Unlock()
	peer := *c.peer.Load()
	conn, err := dtls.ClientWithOptions(&leanDTLSConn{c: c}, net.UDPAddrFromAddrPort(peer),
		dtls.WithCertificates(c.id.cert),
		dtls.WithSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80),
		dtls.WithExtendedMasterSecret(dtls.RequestExtendedMasterSecret),
		dtls.WithFlightInterval(200*time.Millisecond),
		dtls.WithInsecureSkipVerify(true),
		dtls.WithVerifyPeerCertificate(func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("server sent no certificate")
			}
			if got, err := certFingerprint(raw[0]); err != nil || !strings.EqualFold(got, want) {
				return errors.New("server certificate does not match the fingerprint of its description")
			}
			return nil
		}),
	)
	if err != nil {
		return fmt.Errorf("dtls: %w", err)
	}
	c.dtlsConn.Store(conn)
	if err := conn.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("dtls handshake: %w", err)
	}
	return c.startSRTP(conn)
}

func (c *leanConn) startSRTP(conn *dtls.Conn) error {
	var profile srtp.ProtectionProfile
	p, _ := conn.SelectedSRTPProtectionProfile()
	switch p {
	case dtls.SRTP_AEAD_AES_128_GCM:
		profile = srtp.ProtectionProfileAeadAes128Gcm
	case dtls.SRTP_AES128_CM_HMAC_SHA1_80:
		profile = srtp.ProtectionProfileAes128CmHmacSha1_80
	default:
		return fmt.Errorf("dtls: no SRTP profile agreed (%v)", p)
	}
	state, ok := conn.ConnectionState()
	if !ok {
		return errors.New("dtls: no connection state")
	}
	cfg := srtp.Config{Profile: profile}
	if err := cfg.ExtractSessionKeysFromDTLS(&state, true); err != nil {
		return fmt.Errorf("srtp keys: %w", err)
	}
	dec, err := srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, profile,
		srtp.SRTPNoReplayProtection(), srtp.SRTCPNoReplayProtection())
	if err != nil {
		return fmt.Errorf("srtp: %w", err)
	}
	enc, err := srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, profile)
	if err != nil {
		return fmt.Errorf("srtp: %w", err)
	}
	c.enc.Store(enc)
	c.dec.Store(dec)
	return nil
}

// nominate sends ICE checks with USE-CANDIDATE to the server's candidates
// until one is answered (aggressive nomination: one path, nothing to
// choose between).
func (c *leanConn) nominate(ctx context.Context) error {
	c.mu.Lock()
	remote, local := c.remote, c.local
	c.mu.Unlock()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, cand := range remote.candidates {
			if cand.Addr().Is4() && cand.Addr().IsLoopback() != local.addr.Addr().IsLoopback() {
				continue
			}
			m, err := stun.Build(stun.TransactionID, stun.BindingRequest,
				stun.NewUsername(remote.ufrag+":"+local.ufrag),
				ice.AttrControlling(c.tiebreaker), ice.PriorityAttr(2130706431), ice.UseCandidate(),
				stun.NewShortTermIntegrity(remote.pwd), stun.Fingerprint)
			if err == nil {
				c.write(m.Raw, cand)
			}
		}
		select {
		case <-c.selected:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("ice: no answer to checks: %w", ctx.Err())
		case <-c.done:
			return net.ErrClosed
		case <-tick.C:
		}
	}
}

func (c *leanConn) choose(peer netip.AddrPort) {
	c.selOnce.Do(func() {
		c.peer.Store(&peer)
		close(c.selected)
	})
}

// close ends the connection (a DTLS close_notify tells the server) and
// closes its socket.
func (c *leanConn) close() {
	c.stop()
	if conn := c.dtlsConn.Load(); conn != nil {
		_ = conn.Close()
	}
	c.poller.remove(c)
	c.writeMu.Lock()
	c.closed = true
	closeLeanSocket(c.fd)
	c.writeMu.Unlock()
}

// write sends one datagram; after close it sends nothing.
func (c *leanConn) write(b []byte, to netip.AddrPort) {
	c.writeMu.RLock()
	if !c.closed {
		_ = sendLean(c.fd, b, to)
	}
	c.writeMu.RUnlock()
}

func (c *leanConn) stop() { c.doneOnce.Do(func() { close(c.done) }) }

// readReady reads what the socket holds (its poller found it readable)
// and handles each datagram.
func (c *leanConn) readReady(rx *rxBatch, now time.Time) {
	for {
		n, err := rx.read(c.fd)
		for i := 0; i < n; i++ {
			msg, segment, from, at := rx.message(i)
			if at.IsZero() {
				at = now
			}
			for len(msg) > 0 {
				var b []byte
				b, msg = nextDatagram(msg, segment)
				c.onDatagram(at, b, from)
			}
		}
		if err != nil || n < leanBatch {
			return
		}
	}
}

// nextDatagram cuts a received message's first datagram off: a UDP GRO
// message is datagrams of segment bytes (rxBatch.message), the last
// shorter.
func nextDatagram(msg []byte, segment int) (datagram, rest []byte) {
	n := min(segment, len(msg))
	return msg[:n], msg[n:]
}

// tick sends the feedback that is due; the poller calls it every
// leanPollEvery.
func (c *leanConn) tick(now time.Time) {
	if c.nextFB.IsZero() {
		c.nextFB, c.nextRR = now.Add(leanFeedbackEvery), now.Add(leanReportEvery)
		return
	}
	if !now.Before(c.nextFB) {
		c.sendFeedback(now)
		c.nextFB = now.Add(leanFeedbackEvery)
	}
}

// onDatagram demultiplexes by the first byte (RFC 7983).
func (c *leanConn) onDatagram(at time.Time, b []byte, from netip.AddrPort) {
	if len(b) == 0 {
		return
	}
	switch {
	case b[0] < 4:
		c.onSTUN(b, from)
	case b[0] >= 20 && b[0] < 64:
		select {
		case c.dtlsIn <- append([]byte(nil), b...):
		default: // the handshake lags: DTLS resends
		}
	case b[0] >= 128 && b[0] < 192 && len(b) > 1:
		if rtpmux.IsRTCP(b) {
			c.onRTCP(at, b)
		} else {
			c.onRTP(at, b)
		}
	}
}

// onSTUN answers the server's ICE checks and takes answers to its own.
func (c *leanConn) onSTUN(b []byte, from netip.AddrPort) {
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if m.Decode() != nil {
		return
	}
	c.mu.Lock()
	local, remote := c.local, c.remote
	c.mu.Unlock()
	switch m.Type {
	case stun.BindingRequest:
		var u stun.Username
		if u.GetFrom(m) != nil || !strings.HasPrefix(u.String(), local.ufrag+":") ||
			stun.NewShortTermIntegrity(local.pwd).Check(m) != nil {
			return
		}
		resp, err := stun.Build(stun.NewTransactionIDSetter(m.TransactionID), stun.BindingSuccess,
			&stun.XORMappedAddress{IP: from.Addr().AsSlice(), Port: int(from.Port())},
			stun.NewShortTermIntegrity(local.pwd), stun.Fingerprint)
		if err != nil {
			return
		}
		c.write(resp.Raw, from)
		if !c.controlling && ice.UseCandidate().IsSet(m) {
			c.choose(from)
		}
	case stun.BindingSuccess:
		if c.controlling && remote != nil && stun.NewShortTermIntegrity(remote.pwd).Check(m) == nil {
			c.choose(from)
		}
	}
}

// onRTP decrypts a packet and accounts it on its stream.
func (c *leanConn) onRTP(at time.Time, b []byte) {
	dec := c.dec.Load()
	if dec == nil {
		return
	}
	plain, err := dec.DecryptRTP(c.plain[:], b, &c.hdr)
	if err != nil {
		return
	}
	t := c.table.Load()
	s := t.find(c.hdr.SSRC) // nil: a stream no description announced
	if s == nil {
		return
	}
	if c.loss != nil && s.video && s.rtxOf == nil && c.loss.drop() {
		return
	}
	if t.twccID != 0 {
		if ext := c.hdr.GetExtension(t.twccID); len(ext) >= 2 {
			c.twcc.Record(c.hdr.SSRC, binary.BigEndian.Uint16(ext), at.Sub(c.start).Microseconds())
		}
	}
	if s.rtxOf != nil {
		// A retransmission: account it as the packet it repairs.
		var ok bool
		if plain, ok = rtxrepair.Original(c.repair[:0], plain, s.rtxOf.ssrc, s.rtxOf.pt); !ok {
			return
		}
		s = s.rtxOf
	} else if s.pt = c.hdr.PayloadType; !s.red && t.codecs[s.pt] == "red" {
		s.red = true
		s.stats.mu.Lock()
		s.stats.red = true
		s.stats.mu.Unlock()
	}
	c.account(s, at, plain)
}

// account is what onTrack's reader does with a pion classroom's packet.
func (c *leanConn) account(s *leanStream, at time.Time, pkt []byte) {
	if s.video && s.fromTeacher {
		if !s.gotFirst {
			s.gotFirst = true
			c.stats.mark(&c.stats.firstPacketAt)
		}
		if pkt[1]&0x80 != 0 {
			c.stats.teacherFrame(at)
		}
	}
	if s.video {
		s.nack.add(binary.BigEndian.Uint16(pkt[2:]))
	}
	s.stats.onPacket(at, pkt, s.video, s.book)
}

// onRTCP notes the server's sender reports, for the round trip the
// receiver reports let it measure.
func (c *leanConn) onRTCP(at time.Time, b []byte) {
	dec := c.dec.Load()
	if dec == nil {
		return
	}
	plain, err := dec.DecryptRTCP(nil, b, nil)
	if err != nil {
		return
	}
	pkts, err := rtcp.Unmarshal(plain)
	if err != nil {
		return
	}
	t := c.table.Load()
	for _, p := range pkts {
		if sr, ok := p.(*rtcp.SenderReport); ok {
			if s := t.find(sr.SSRC); s != nil {
				s.lsr, s.lsrAt = uint32(sr.NTPTime>>16), at
			}
		}
	}
}

// leanDTLSConn is the net.PacketConn pion's DTLS runs on: it reads what
// the read loop hands over and writes to the chosen peer.
type leanDTLSConn struct{ c *leanConn }

func (d *leanDTLSConn) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case b := <-d.c.dtlsIn:
		return copy(p, b), net.UDPAddrFromAddrPort(*d.c.peer.Load()), nil
	case <-d.c.done:
		return 0, nil, net.ErrClosed
	}
}

func (d *leanDTLSConn) WriteTo(p []byte, _ net.Addr) (int, error) {
	d.c.write(p, *d.c.peer.Load())
	return len(p), nil
}

func (d *leanDTLSConn) Close() error                     { d.c.stop(); return nil }
func (d *leanDTLSConn) LocalAddr() net.Addr              { return net.UDPAddrFromAddrPort(d.c.addr) }
func (d *leanDTLSConn) SetDeadline(time.Time) error      { return nil }
func (d *leanDTLSConn) SetReadDeadline(time.Time) error  { return nil }
func (d *leanDTLSConn) SetWriteDeadline(time.Time) error { return nil }
