package loadtest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

func TestParseLinkProfile(t *testing.T) {
	cases := []struct {
		in   string
		want LinkProfile
		err  bool
	}{
		{in: "none", want: LinkProfile{Queue: defaultQueue}},
		{in: "", want: LinkProfile{Queue: defaultQueue}},
		{in: "1mbit,3%", want: LinkProfile{RateBits: 1e6, Loss: 0.03, Queue: defaultQueue}},
		{in: "rate=500kbit,loss=0.05,delay=40ms,jitter=10ms", want: LinkProfile{RateBits: 500e3, Loss: 0.05, Delay: 40 * time.Millisecond, Jitter: 10 * time.Millisecond, Queue: defaultQueue}},
		{in: "2mbit, 1%, 30ms, 5ms, queue=100ms", want: LinkProfile{RateBits: 2e6, Loss: 0.01, Delay: 30 * time.Millisecond, Jitter: 5 * time.Millisecond, Queue: 100 * time.Millisecond}},
		{in: "1mbps", err: true},
		{in: "loss=150%", err: true},
		{in: "rate=-1mbit", err: true},
		{in: "delay=-5ms", err: true},
		{in: "speed=1mbit", err: true},
		{in: "queue=0s", err: true},
		{in: "3", err: true},
	}
	for _, c := range cases {
		got, err := ParseLinkProfile(c.in)
		if c.err {
			if err == nil {
				t.Errorf("ParseLinkProfile(%q) = %+v, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseLinkProfile(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
		// The printed form reads back to the same profile.
		back, err := ParseLinkProfile(got.String())
		if err != nil || back != got {
			t.Errorf("round trip of %q via %q = %+v, %v", c.in, got.String(), back, err)
		}
	}
}

func FuzzParseLinkProfile(f *testing.F) {
	for _, s := range []string{"1mbit,3%", "rate=1mbit,loss=3%,delay=40ms,jitter=10ms", "none", "queue=1s", "=,=", "1e400mbit", "NaN%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseLinkProfile(s)
		if err != nil {
			return
		}
		if p.Loss < 0 || p.Loss > 1 || p.RateBits < 0 || p.Delay < 0 || p.Jitter < 0 || p.Queue <= 0 {
			t.Fatalf("ParseLinkProfile(%q) accepted an impossible profile %+v", s, p)
		}
	})
}

// The bottleneck queues packets behind the rate, drops what would wait
// longer than the queue allows, and never reorders.
func TestLinkAdmitRateQueueAndOrder(t *testing.T) {
	l := &linkInterceptor{profile: LinkProfile{RateBits: 1e6, Queue: 100 * time.Millisecond, Delay: 20 * time.Millisecond, Jitter: 15 * time.Millisecond}}
	l.rng = newTestRand()
	now := time.Unix(1000, 0)
	var last time.Time
	admitted := 0
	for i := 0; i < 30; i++ {
		// 1250 bytes at 1 Mbit/s take 10 ms each; all arrive at once.
		at, ok := l.admit(now, 1250)
		if !ok {
			continue
		}
		admitted++
		if at.Before(last) {
			t.Fatalf("packet %d released at %v before the previous one at %v", i, at, last)
		}
		last = at
		if min := now.Add(time.Duration(admitted)*10*time.Millisecond + 20*time.Millisecond); at.Before(min) {
			t.Fatalf("packet %d released %v after arrival, want at least %v", i, at.Sub(now), min.Sub(now))
		}
	}
	// The queue holds 100 ms = 10 packets beyond the one being sent.
	if admitted < 10 || admitted > 12 {
		t.Fatalf("admitted %d of 30 simultaneous packets through a 100 ms queue, want about 11", admitted)
	}
	if l.dropped != uint64(30-admitted) {
		t.Fatalf("dropped = %d, want %d", l.dropped, 30-admitted)
	}
}

// A real pion connection behind an emulated link loses about the set share
// of packets and delivers none of them sooner than the set delay.
func TestLinkShapesARealConnection(t *testing.T) {
	const delay = 30 * time.Millisecond
	lf := &linkFactory{profile: LinkProfile{Loss: 0.2, Delay: delay, Queue: defaultQueue}}
	sendAPI, err := newAPI(peerOptions{loopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	recvAPI, err := newAPI(peerOptions{loopbackOnly: true, link: lf})
	if err != nil {
		t.Fatal(err)
	}
	sender, err := sendAPI.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	receiver, err := recvAPI.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sender.Close()
		_ = receiver.Close()
		lf.wait()
	})
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "a", "s")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sender.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	// Each packet carries its send time; the receiver checks its age.
	var got, early atomic.Int64
	done := make(chan struct{})
	receiver.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		go func() {
			defer close(done)
			for {
				p, _, err := tr.ReadRTP()
				if err != nil {
					return
				}
				if len(p.Payload) >= 8 {
					sent := time.Unix(0, int64(beUint64(p.Payload)))
					if time.Since(sent) < delay {
						early.Add(1)
					}
				}
				got.Add(1)
			}
		}()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	offer, err := sender.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	sdp, err := completeLocal(ctx, sender, offer)
	if err != nil {
		t.Fatal(err)
	}
	if err := receiver.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		t.Fatal(err)
	}
	ans, err := receiver.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	asdp, err := completeLocal(ctx, receiver, ans)
	if err != nil {
		t.Fatal(err)
	}
	if err := sender.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: asdp}); err != nil {
		t.Fatal(err)
	}
	if err := waitConnected(ctx, sender, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	const n = 1000
	payload := make([]byte, 100)
	for i := 0; i < n; i++ {
		putUint64(payload, uint64(time.Now().UnixNano()))
		if err := track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(i * 960)}, Payload: payload}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	// Wait (generously) until the in-flight packets have arrived.
	deadline := time.Now().Add(10 * time.Second)
	for prev := int64(-1); time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		if cur := got.Load(); cur == prev && cur > 0 {
			break
		} else {
			prev = cur
		}
	}
	share := float64(got.Load()) / n
	if share < 0.65 || share > 0.92 {
		t.Fatalf("received %.0f%% of packets through a 20%% loss link, want about 80%%", share*100)
	}
	if e := early.Load(); e > 0 {
		t.Fatalf("%d packets arrived sooner than the link's %v delay", e, delay)
	}
	if all, queueFull := lf.dropped(); all == 0 || queueFull != 0 {
		t.Fatalf("link reports %d drops, %d of them a full queue; want random loss only (no rate set)", all, queueFull)
	}
}
