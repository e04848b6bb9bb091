package sfu

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"podium/internal/ridtag"
	"podium/internal/rtxrepair"
	"podium/internal/testmedia"
)

// Test peers: real pion peer connections on loopback that talk to the sfu
// through its Go API (in-process signaling, no websocket).

func newTestSFU(t *testing.T, cfg Config) *SFU {
	t.Helper()
	if cfg.BindIP == "" {
		cfg.BindIP = "127.0.0.1"
	}
	s, err := New(cfg, testLogger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// clientAPI builds a browser-like pion API: default codecs and
// interceptors, loopback candidates only. extra interceptors are
// registered first, i.e. nearest the network.
func clientAPI(t *testing.T, extra ...interceptor.Factory) *webrtc.API {
	t.Helper()
	return clientAPIOn(t, []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4}, extra...)
}

func clientAPIOn(t *testing.T, networks []webrtc.NetworkType, extra ...interceptor.Factory) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	return clientAPIWith(t, m, networks, extra...)
}

// clientAPIWith is clientAPIOn with the client's own codecs.
func clientAPIWith(t *testing.T, m *webrtc.MediaEngine, networks []webrtc.NetworkType, extra ...interceptor.Factory) *webrtc.API {
	t.Helper()
	reg := &interceptor.Registry{}
	for _, f := range extra {
		reg.Add(f)
	}
	if err := webrtc.RegisterDefaultInterceptors(m, reg); err != nil {
		t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes(networks)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))
}

func gathered(t *testing.T, pc *webrtc.PeerConnection) webrtc.SessionDescription {
	t.Helper()
	select {
	case <-webrtc.GatheringCompletePromise(pc):
	case <-time.After(10 * time.Second):
		t.Fatal("gathering timed out")
	}
	return *pc.LocalDescription()
}

// testSignaler hands the sfu's offers to the test client's answer loop.
type testSignaler struct {
	offers chan webrtc.SessionDescription
}

func (s *testSignaler) SendOffer(o webrtc.SessionDescription)         { s.offers <- o }
func (s *testSignaler) SendCandidate(Target, webrtc.ICECandidateInit) {}

// testPeer is a client in a lesson: its participant and its subscriber
// connection, recording every received RTP stream.
type testPeer struct {
	t   *testing.T
	p   *Participant
	sig *testSignaler
	api *webrtc.API
	sub *webrtc.PeerConnection
	// repair, when set, learns the RTX pairs of every offer before it is
	// applied (a client that puts retransmissions back into their stream).
	repair *rtxrepair.Factory

	mu      sync.Mutex
	streams map[string]*streamLog // by msid track id
}

func joinPeer(t *testing.T, s *SFU, room *Room, id string, role Role, api *webrtc.API) *testPeer {
	t.Helper()
	return joinPeerWith(t, s, room, id, role, api, webrtc.Configuration{})
}

func joinPeerWith(t *testing.T, s *SFU, room *Room, id string, role Role, api *webrtc.API, cfg webrtc.Configuration) *testPeer {
	t.Helper()
	return joinPeerRepairing(t, s, room, id, role, api, cfg, nil)
}

func joinPeerRepairing(t *testing.T, s *SFU, room *Room, id string, role Role, api *webrtc.API, cfg webrtc.Configuration, repair *rtxrepair.Factory) *testPeer {
	t.Helper()
	sig := &testSignaler{offers: make(chan webrtc.SessionDescription, 16)}
	p, err := s.Join(room, ParticipantInfo{ID: id, Name: id, Role: role}, sig, JoinOptions{AutoSubscribe: true})
	if err != nil {
		t.Fatal(err)
	}
	tp := &testPeer{t: t, p: p, sig: sig, api: api, repair: repair, streams: make(map[string]*streamLog)}
	tp.sub = tp.newSubscriberPC(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tp.answerLoop(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		tp.sub.Close()
		p.Close("test over")
	})
	return tp
}

func (tp *testPeer) newSubscriberPC(cfg webrtc.Configuration) *webrtc.PeerConnection {
	pc, err := tp.api.NewPeerConnection(cfg)
	if err != nil {
		tp.t.Fatal(err)
	}
	pc.OnTrack(func(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		log := &streamLog{streamID: remote.StreamID(), family: familyOf(remote.Codec().MimeType), keepAudio: true}
		// Read RTCP as a browser does: sender reports feed the receiver
		// reports' LSR, from which the sfu computes RTT.
		go func() {
			for {
				pkts, _, err := recv.ReadRTCP()
				if err != nil {
					return
				}
				for _, p := range pkts {
					if sr, ok := p.(*rtcp.SenderReport); ok && sr.SSRC == uint32(remote.SSRC()) {
						log.addReport(sr)
					}
				}
			}
		}()
		tp.mu.Lock()
		tp.streams[remote.ID()] = log
		tp.mu.Unlock()
		for {
			pkt, _, err := remote.ReadRTP()
			if err != nil {
				return
			}
			log.add(pkt)
		}
	})
	return pc
}

func (tp *testPeer) answerLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case offer := <-tp.sig.offers:
			if err := tp.answer(offer); err != nil {
				// At cleanup the publisher closes first, which ends the
				// participant and closes this connection by DTLS
				// close_notify while a last renegotiation may be in flight.
				if ctx.Err() == nil && tp.sub.ConnectionState() != webrtc.PeerConnectionStateClosed {
					tp.t.Error(err)
				}
				return
			}
		}
	}
}

func (tp *testPeer) answer(offer webrtc.SessionDescription) error {
	if tp.repair != nil {
		tp.repair.LearnSDP(offer.SDP)
	}
	if err := tp.sub.SetRemoteDescription(offer); err != nil {
		return fmt.Errorf("client set offer: %w", err)
	}
	answer, err := tp.sub.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("client answer: %w", err)
	}
	if err := tp.sub.SetLocalDescription(answer); err != nil {
		return fmt.Errorf("client set answer: %w", err)
	}
	<-webrtc.GatheringCompletePromise(tp.sub)
	if err := tp.p.SetAnswer(*tp.sub.LocalDescription()); err != nil {
		return fmt.Errorf("sfu set answer: %w", err)
	}
	return nil
}

func (tp *testPeer) stream(trackID string) *streamLog {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.streams[trackID]
}

// streamLog checks what a subscriber receives as a decoder would see it.
type streamLog struct {
	streamID string
	family   codecFamily

	mu          sync.Mutex
	packets     int
	frames      int // marker bits
	keyframes   int
	firstKey    bool // the first packet started a keyframe
	maxSeq      uint16
	minSeq      uint16
	seen        map[uint16]bool
	lastTS      uint32
	badJumps    int // sequence jumps no loss explains
	tsBackwards int // timestamp went back on an in-order packet
	picBreaks   int // VP8 picture id jumps no loss explains
	lastPic     int
	keepAudio   bool                   // set from the start: keep audio payloads
	audio       map[uint16]audioPacket // by sequence number, keepAudio only
	reports     []streamReport
}

// streamReport is a sender report the stream's receiver opened, with the
// newest RTP timestamp it had received then.
type streamReport struct {
	sr     rtcp.SenderReport
	lastTS uint32
}

func (l *streamLog) addReport(sr *rtcp.SenderReport) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reports = append(l.reports, streamReport{sr: *sr, lastTS: l.lastTS})
}

func (l *streamLog) senderReports() []streamReport {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]streamReport(nil), l.reports...)
}

func (l *streamLog) add(pkt *rtp.Packet) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = make(map[uint16]bool)
	}
	key := isKeyframe(l.family, pkt.Payload) && l.family != familyOpus
	if l.packets == 0 {
		l.firstKey = key
		l.minSeq, l.maxSeq, l.lastTS = pkt.SequenceNumber, pkt.SequenceNumber, pkt.Timestamp
		l.lastPic = -1
	} else {
		d := int16(pkt.SequenceNumber - l.maxSeq)
		if d > 1000 || d < -1000 { // a rewriting bug, not loss
			l.badJumps++
		}
		if d > 0 {
			if int32(pkt.Timestamp-l.lastTS) < 0 {
				l.tsBackwards++
			}
			l.maxSeq = pkt.SequenceNumber
			l.lastTS = pkt.Timestamp
		}
	}
	inOrder := l.packets == 0 || int16(pkt.SequenceNumber-l.maxSeq) == 0
	if l.family == familyVP8 && inOrder { // retransmissions arrive late: judge new packets only
		if desc, ok := parseVP8(pkt.Payload); ok && desc.frameStart && desc.hasPictureID {
			pic := int(desc.pictureID)
			// Lost frames skip a few ids; a rewriting bug jumps far.
			if jump := (pic - l.lastPic) & 0x7fff; l.lastPic >= 0 && jump > 100 && jump < 0x7fff-100 {
				l.picBreaks++
			}
			if l.lastPic < 0 || int16(uint16(pic-l.lastPic)<<1) > 0 {
				l.lastPic = pic
			}
		}
	}
	if key {
		l.keyframes++
	}
	if pkt.Marker {
		l.frames++
	}
	l.seen[pkt.SequenceNumber] = true
	l.packets++
	if l.keepAudio && (l.family == familyOpus || l.family == familyRED) {
		if l.audio == nil {
			l.audio = make(map[uint16]audioPacket)
		}
		l.audio[pkt.SequenceNumber] = audioPacket{ts: pkt.Timestamp, payload: bytes.Clone(pkt.Payload)}
	}
}

// audioPacket is an audio packet as a subscriber received it.
type audioPacket struct {
	ts      uint32
	payload []byte
}

// audioPackets returns the audio packets received so far, by sequence
// number (keepAudio streams only).
func (l *streamLog) audioPackets() map[uint16]audioPacket {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[uint16]audioPacket, len(l.audio))
	for k, v := range l.audio {
		out[k] = v
	}
	return out
}

type streamStats struct {
	packets, frames, keyframes, badJumps, tsBackwards, picBreaks, missing int
	firstKey                                                              bool
}

func (l *streamLog) stats() streamStats {
	if l == nil {
		return streamStats{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	span := int(uint16(l.maxSeq-l.minSeq)) + 1
	return streamStats{packets: l.packets, frames: l.frames, keyframes: l.keyframes, badJumps: l.badJumps,
		tsBackwards: l.tsBackwards, picBreaks: l.picBreaks, missing: span - len(l.seen), firstKey: l.firstKey}
}

// testPublisher is a teacher or classroom sending the test media.
type testPublisher struct {
	pc    *webrtc.PeerConnection
	plis  map[string]int // by RID ("" for single layer), counted from RTCP
	plimu sync.Mutex
}

// publishMedia connects a publisher connection for tp sending VP8 (three
// simulcast layers when simulcast is set, else the "h" file) and Opus,
// playing the test files until the test ends.
func publishMedia(t *testing.T, tp *testPeer, files testmedia.Files, simulcast bool) *testPublisher {
	t.Helper()
	tagger := &simulcastRIDs{rids: make(map[uint32]string)}
	pc, err := clientAPI(t, ridtag.New(tagger.lookup)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	pub := &testPublisher{pc: pc, plis: make(map[string]int)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		pc.Close()
		wg.Wait()
	})
	vp8 := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	var videos []*webrtc.TrackLocalStaticSample
	var paths []string
	if simulcast {
		for i, rid := range []string{"q", "h", "f"} {
			tr, err := webrtc.NewTrackLocalStaticSample(vp8, "cam", "stream", webrtc.WithRTPStreamID(rid))
			if err != nil {
				t.Fatal(err)
			}
			videos = append(videos, tr)
			paths = append(paths, files.VP8[i])
		}
	} else {
		tr, err := webrtc.NewTrackLocalStaticSample(vp8, "cam", "stream")
		if err != nil {
			t.Fatal(err)
		}
		videos = append(videos, tr)
		paths = append(paths, files.VP8[1])
	}
	sender, err := pc.AddTrack(videos[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range videos[1:] {
		if err := sender.AddEncoding(v); err != nil {
			t.Fatal(err)
		}
	}
	audio, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "stream")
	if err != nil {
		t.Fatal(err)
	}
	asender, err := pc.AddTrack(audio)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range sender.GetParameters().Encodings {
		if e.RID != "" {
			tagger.set(uint32(e.SSRC), e.RID)
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	answer, err := tp.p.Publish(gathered(t, pc), []PublishTrack{{TrackID: "cam", Source: SourceCamera}, {TrackID: "mic", Source: SourceMicrophone}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetRemoteDescription(answer); err != nil {
		t.Fatal(err)
	}
	wg.Add(len(videos) + 2 + len(sender.GetParameters().Encodings))
	for i, v := range videos {
		go func() {
			defer wg.Done()
			if err := testmedia.PlayIVF(ctx, paths[i], v, true); err != nil && ctx.Err() == nil {
				t.Errorf("play %s: %v", paths[i], err)
			}
		}()
	}
	go func() {
		defer wg.Done()
		if err := testmedia.PlayOgg(ctx, files.Opus, audio, true); err != nil && ctx.Err() == nil {
			t.Errorf("play opus: %v", err)
		}
	}()
	// Each layer's RTCP arrives on its own stream: a PLI for the top
	// layer is read only from that layer.
	for _, e := range sender.GetParameters().Encodings {
		go func() {
			defer wg.Done()
			pub.countPLIs(sender, e.RID)
		}()
	}
	go func() {
		defer wg.Done()
		for {
			if _, _, err := asender.ReadRTCP(); err != nil {
				return
			}
		}
	}()
	return pub
}

func (pub *testPublisher) countPLIs(sender *webrtc.RTPSender, rid string) {
	ssrcs := map[webrtc.SSRC]string{}
	for _, e := range sender.GetParameters().Encodings {
		ssrcs[e.SSRC] = e.RID
	}
	for {
		var pkts []rtcp.Packet
		var err error
		if rid == "" {
			pkts, _, err = sender.ReadRTCP()
		} else {
			pkts, _, err = sender.ReadSimulcastRTCP(rid)
		}
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				pub.plimu.Lock()
				for _, s := range p.DestinationSSRC() {
					pub.plis[ssrcs[webrtc.SSRC(s)]]++
				}
				pub.plimu.Unlock()
			}
		}
	}
}

func (pub *testPublisher) pliCount() int {
	pub.plimu.Lock()
	defer pub.plimu.Unlock()
	n := 0
	for _, c := range pub.plis {
		n += c
	}
	return n
}

// dropInterceptor drops a fraction of incoming RTP before any other
// interceptor sees it: a lossy rural link.
type dropInterceptor struct {
	interceptor.NoOp
	audio    bool // drop the audio instead of the video
	fraction float64
	mu       sync.Mutex
	rng      *rand.Rand
	dropped  int
}

func (d *dropInterceptor) NewInterceptor(string) (interceptor.Interceptor, error) { return d, nil }

// setFraction changes the link's loss (0 heals it).
func (d *dropInterceptor) setFraction(f float64) {
	d.mu.Lock()
	d.fraction = f
	d.mu.Unlock()
}

func (d *dropInterceptor) BindRemoteStream(info *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	f := familyOf(info.MimeType)
	if audio := f == familyOpus || f == familyRED; audio != d.audio {
		return reader
	}
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		for {
			n, attr, err := reader.Read(b, a)
			if err != nil {
				return n, attr, err
			}
			d.mu.Lock()
			drop := d.fraction > 0 && d.rng.Float64() < d.fraction
			if drop {
				d.dropped++
			}
			d.mu.Unlock()
			if !drop {
				return n, attr, nil
			}
		}
	})
}

// dropOnceInterceptor drops every n-th video packet the first time it
// arrives, remembering which: the sfu must retransmit each of them.
type dropOnceInterceptor struct {
	interceptor.NoOp
	every int
	mu    sync.Mutex
	count int
	lost  map[uint16]bool
}

func (d *dropOnceInterceptor) NewInterceptor(string) (interceptor.Interceptor, error) { return d, nil }

func (d *dropOnceInterceptor) BindRemoteStream(info *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	if info.MimeType == webrtc.MimeTypeRTX {
		return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
			n, attr, err := reader.Read(b, a)
			return n, attr, err
		})
	}
	if info.MimeType != webrtc.MimeTypeVP8 {
		return reader
	}
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		for {
			n, attr, err := reader.Read(b, a)
			if err != nil || n < 4 {
				return n, attr, err
			}
			seq := uint16(b[2])<<8 | uint16(b[3])
			d.mu.Lock()
			d.count++
			drop := d.count%d.every == 0 && !d.lost[seq] && len(d.lost) < 40
			if drop {
				d.lost[seq] = true
			}
			d.mu.Unlock()
			if !drop {
				return n, attr, nil
			}
		}
	})
}

func (d *dropOnceInterceptor) dropped() []uint16 {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]uint16, 0, len(d.lost))
	for s := range d.lost {
		out = append(out, s)
	}
	return out
}

func (l *streamLog) has(seq uint16) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[seq]
}

func testLogger() *slog.Logger {
	if os.Getenv("SFU_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// simulcastRIDs names the RID of each simulcast layer the test publisher
// sends, for ridtag (its video is always mid 0).
type simulcastRIDs struct {
	mu   sync.Mutex
	rids map[uint32]string
}

func (s *simulcastRIDs) set(ssrc uint32, rid string) {
	s.mu.Lock()
	s.rids[ssrc] = rid
	s.mu.Unlock()
}

func (s *simulcastRIDs) lookup(ssrc uint32) (mid, rid string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rid, ok = s.rids[ssrc]
	return "0", rid, ok
}

func (d *dropInterceptor) droppedCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dropped
}

// downTracks returns the participant's down-tracks (tests only).
func (p *Participant) downTracks() []*DownTrack {
	p.mu.Lock()
	sub := p.sub
	p.mu.Unlock()
	if sub == nil {
		return nil
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	var out []*DownTrack
	for _, d := range sub.downs {
		out = append(out, d.dt)
	}
	return out
}
