package rtxrepair

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

func TestUnwrap(t *testing.T) {
	orig := rtp.Packet{Header: rtp.Header{Version: 2, Marker: true, PayloadType: 96, SequenceNumber: 4242, Timestamp: 9, SSRC: 111}, Payload: []byte{1, 2, 3}}
	_ = orig.Header.SetExtension(3, []byte{7})
	rtx := orig.Clone()
	rtx.PayloadType, rtx.SSRC, rtx.SequenceNumber = 97, 222, 17
	rtx.Payload = append([]byte{0x10, 0x92}, orig.Payload...) // OSN 4242
	rtx.Padding, rtx.PaddingSize = true, 4
	b, _ := rtx.Marshal()

	out, ok := Original(nil, b, 111, 96)
	if !ok {
		t.Fatal("unwrap refused a valid RTX packet")
	}
	var got rtp.Packet
	if err := got.Unmarshal(out); err != nil {
		t.Fatal(err)
	}
	if got.SSRC != 111 || got.PayloadType != 96 || got.SequenceNumber != 4242 || !got.Marker || got.Padding ||
		string(got.Payload) != string(orig.Payload) || string(got.GetExtension(3)) != "\x07" {
		t.Fatalf("unwrapped %+v payload %v, want the original", got.Header, got.Payload)
	}
	for _, bad := range [][]byte{nil, b[:11], b[:14]} {
		if _, ok := Original(nil, bad, 111, 96); ok {
			t.Errorf("unwrap accepted %d bytes", len(bad))
		}
	}
}

func TestLearnSDP(t *testing.T) {
	f := NewFactory()
	f.LearnSDP("v=0\r\na=fmtp:97 apt=96\r\na=fmtp:96 x=1\r\na=ssrc-group:FID 111 222\r\na=ssrc-group:FID bad\r\n")
	if isRTX, _, orig := f.role(222); !isRTX || orig != 111 {
		t.Errorf("222: rtx %v of %d, want RTX of 111", isRTX, orig)
	}
	if _, hasRTX, _ := f.role(111); !hasRTX {
		t.Error("111 should have an RTX stream")
	}
	if pt, ok := f.originalPT(97); !ok || pt != 96 {
		t.Errorf("apt of 97 = %d %v, want 96", pt, ok)
	}
}

// A real pion sender and receiver over loopback; the receiver's network
// loses every 20th packet once. With the unwrapper, each lost packet is
// retransmitted about once and every packet arrives; pion alone keeps
// asking for repaired packets (see the package comment).
func TestEachLostPacketIsRetransmittedAboutOnce(t *testing.T) {
	const packets, every = 300, 20
	sent := &rtxCount{}
	sender := newAPI(t, sent, nil)
	drop := &dropOnce{every: every, seen: map[uint16]bool{}}
	repair := NewFactory()
	receiver := newAPI(t, nil, []interceptor.Factory{drop, repair})

	spc, err := sender.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer spc.Close()
	rpc, err := receiver.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer rpc.Close()
	track, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "v", "s")
	s, err := spc.AddTrack(track)
	if err != nil {
		t.Fatal(err)
	}
	go func() { // the sender must read RTCP for its NACK responder to act
		for {
			if _, _, err := s.ReadRTCP(); err != nil {
				return
			}
		}
	}()

	got := make(chan uint16, 4*packets)
	rpc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			got <- p.SequenceNumber
		}
	})
	connected := make(chan struct{})
	var once sync.Once
	spc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	connect(t, spc, rpc, repair)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	select {
	case <-connected:
	case <-ctx.Done():
		t.Fatal("not connected")
	}
	go func() {
		// A few packets more, so the last lost one is noticed too.
		for i := 1; i <= packets+every && ctx.Err() == nil; i++ {
			_ = track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(i * 3000)}, Payload: []byte{0x10, 0, 0, 0, byte(i)}})
			time.Sleep(5 * time.Millisecond)
		}
	}()
	have := map[uint16]bool{}
	for len(have) < packets {
		select {
		case seq := <-got:
			if seq <= packets {
				have[seq] = true
			}
		case <-ctx.Done():
			var missing []int
			for i := 1; i <= packets; i++ {
				if !have[uint16(i)] {
					missing = append(missing, i)
				}
			}
			t.Fatalf("received %d of %d packets, missing %v (dropped %d, retransmitted %d)", len(have), packets, missing, drop.dropped.Load(), sent.n.Load())
		}
	}
	// Let late NACKs play out before counting retransmissions.
	time.Sleep(500 * time.Millisecond)
	lost, resent := drop.dropped.Load(), sent.n.Load()
	if lost < packets/every-1 {
		t.Fatalf("only %d packets were dropped; the test link is not working", lost)
	}
	if resent > lost+lost/2 {
		t.Fatalf("%d packets lost, %d retransmissions: repaired packets were asked for again", lost, resent)
	}
}

func newAPI(t *testing.T, count *rtxCount, first []interceptor.Factory) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "nack"}}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: fb}, PayloadType: 96}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=96"}, PayloadType: 97}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	reg := &interceptor.Registry{}
	if count != nil {
		reg.Add(count)
	}
	for _, f := range first {
		reg.Add(f)
	}
	if err := webrtc.ConfigureNack(m, reg); err != nil {
		t.Fatal(err)
	}
	if err := webrtc.ConfigureRTCPReports(reg); err != nil {
		t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))
}

func connect(t *testing.T, offerer, answerer *webrtc.PeerConnection, repair *Factory) {
	t.Helper()
	offer, err := offerer.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	done := webrtc.GatheringCompletePromise(offerer)
	if err := offerer.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-done
	repair.LearnSDP(offerer.LocalDescription().SDP)
	if err := answerer.SetRemoteDescription(*offerer.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := answerer.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	done = webrtc.GatheringCompletePromise(answerer)
	if err := answerer.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := offerer.SetRemoteDescription(*answerer.LocalDescription()); err != nil {
		t.Fatal(err)
	}
}

// rtxCount counts the RTX packets a sender puts on the wire.
type rtxCount struct {
	interceptor.NoOp
	n atomic.Int64
}

func (c *rtxCount) NewInterceptor(string) (interceptor.Interceptor, error) { return c, nil }

func (c *rtxCount) BindLocalStream(_ *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	return interceptor.RTPWriterFunc(func(h *rtp.Header, p []byte, a interceptor.Attributes) (int, error) {
		if h.PayloadType == 97 {
			c.n.Add(1)
		}
		return w.Write(h, p, a)
	})
}

// dropOnce is the receiver's network: it loses the first copy of every
// every-th original packet (retransmissions pass).
type dropOnce struct {
	interceptor.NoOp
	every   uint16
	mu      sync.Mutex
	seen    map[uint16]bool
	dropped atomic.Int64
}

func (d *dropOnce) NewInterceptor(string) (interceptor.Interceptor, error) { return d, nil }

func (d *dropOnce) BindRemoteStream(_ *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		for {
			n, attrs, err := r.Read(b, a)
			if err != nil || n < 12 || b[1]&0x7f != 96 {
				return n, attrs, err
			}
			seq := uint16(b[2])<<8 | uint16(b[3])
			d.mu.Lock()
			first := !d.seen[seq]
			d.seen[seq] = true
			d.mu.Unlock()
			if first && seq%d.every == 0 {
				d.dropped.Add(1)
				continue
			}
			return n, attrs, err
		}
	})
}

// Peer input never panics the unwrapper, and what it accepts keeps the
// original's SSRC, payload type and the OSN as sequence number.
func FuzzUnwrap(f *testing.F) {
	rtx := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 97, SequenceNumber: 5, SSRC: 222}, Payload: []byte{0x01, 0x02, 0xaa}}
	_ = rtx.Header.SetExtension(1, []byte("f"))
	good, _ := rtx.Marshal()
	f.Add(good)
	f.Add([]byte{0x90, 0x61, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0xbe, 0xde, 0xff, 0xff})
	f.Add([]byte{0xa0, 0x61, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0x00, 0x01, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		out, ok := Original(nil, b, 111, 96)
		if !ok {
			return
		}
		var p rtp.Packet
		if err := p.Unmarshal(out); err != nil {
			return // the input's own header was already odd
		}
		if p.SSRC != 111 || p.PayloadType != 96 || p.Padding {
			t.Fatalf("unwrapped header %+v", p.Header)
		}
	})
}
