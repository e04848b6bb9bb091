package signaling

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

// A client that stops reading must never block whoever sends to it (the
// room's event goroutine): its queue fills, it is cut off, sends return.
func TestSlowClientIsDisconnectedNotWaitedFor(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &session{ctx: ctx, cancel: cancel, out: make(chan outgoing, 4), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 1000; i++ {
			s.send(encode("chat", "", ChatData{Text: "x"}))
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("send blocked on a client that does not read")
	}
	if ctx.Err() == nil {
		t.Fatal("the slow client was not disconnected")
	}
	if len(s.out) != 4 {
		t.Fatalf("queue holds %d, want it full at 4 and nothing more", len(s.out))
	}
}

// Messages sent while a request is handled come after its reply.
func TestReplyPrecedesHeldMessages(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &session{ctx: ctx, cancel: cancel, out: make(chan outgoing, 8), log: slog.Default()}
	s.hold()
	s.send(encode("offer", "", SDPData{SDP: "x"}))
	reply := encode("answer", "c1", SDPData{SDP: "y"})
	s.release(&reply)
	if first := <-s.out; first.msg.Type != "answer" {
		t.Fatalf("first message %s, want the reply", first.msg.Type)
	}
	if second := <-s.out; second.msg.Type != "offer" {
		t.Fatalf("second message %s", second.msg.Type)
	}
}

func BenchmarkDecodeMessage(b *testing.B) {
	msg := []byte(`{"v":1,"type":"trickle","id":"c9","data":{"target":"publisher","candidate":{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}}`)
	b.ReportAllocs()
	for b.Loop() {
		m, err := DecodeMessage(msg)
		if err != nil {
			b.Fatal(err)
		}
		var d TrickleData
		if err := decodeData(m, &d); err != nil {
			b.Fatal(err)
		}
	}
}
