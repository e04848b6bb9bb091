package sfu

import (
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// TestBatchConnSendsEveryDatagramInFewCalls: datagrams written while a
// batch is open reach each receiver whole and in order, in far fewer
// system calls than datagrams; with no batch open a datagram leaves at
// once.
func TestBatchConnSendsEveryDatagramInFewCalls(t *testing.T) {
	udp := listenLoopback(t)
	conn, b := newBatchConn(udp, slog.Default())
	if b == nil {
		t.Fatal("a UDP socket was not wrapped")
	}
	const receivers, each = 3, 100
	var rs []*net.UDPConn
	for range receivers {
		rs = append(rs, listenLoopback(t))
	}
	b.begin()
	for i := range each {
		for k, r := range rs {
			msg := fmt.Appendf(nil, "receiver %d datagram %03d %s", k, i, make([]byte, 900))
			if n, err := conn.WriteTo(msg, r.LocalAddr()); err != nil || n != len(msg) {
				t.Fatalf("WriteTo: %d, %v", n, err)
			}
		}
	}
	b.end()
	buf := make([]byte, 2000)
	for k, r := range rs {
		for i := range each {
			_ = r.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _, err := r.ReadFrom(buf)
			if err != nil {
				t.Fatalf("receiver %d got %d of %d datagrams: %v", k, i, each, err)
			}
			want := fmt.Sprintf("receiver %d datagram %03d ", k, i)
			if string(buf[:len(want)]) != want || n != len(want)+900 {
				t.Fatalf("receiver %d: datagram %d is %q (%d bytes), want %q", k, i, buf[:len(want)], n, want)
			}
		}
	}
	if calls, sent := b.calls.Load(), b.datagrams.Load(); sent != receivers*each || calls > sent/maxDatagrams+1 {
		t.Errorf("%d datagrams in %d sendmmsg calls, want %d in at most %d", sent, calls, receivers*each, receivers*each/maxDatagrams+1)
	}

	// No batch open: the datagram is on its way before WriteTo returns.
	if _, err := conn.WriteTo([]byte("at once"), rs[0].LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = rs[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := rs[0].ReadFrom(buf)
	if err != nil || string(buf[:n]) != "at once" {
		t.Fatalf("unbatched datagram: %q, %v", buf[:n], err)
	}
	if b.datagrams.Load() != receivers*each {
		t.Error("an unbatched datagram went through a batch")
	}
}

// TestBatchConnSendsFramesAsGSOSegments: a frame's packets to one
// classroom, back to back in a batch (all of one size, the last shorter),
// leave as one GSO message where the kernel has it, and each classroom
// still reads every datagram whole, in order and with its own size; a
// packet larger than the one before starts a new message.
func TestBatchConnSendsFramesAsGSOSegments(t *testing.T) {
	udp := listenLoopback(t)
	conn, b := newBatchConn(udp, slog.Default())
	rs := []*net.UDPConn{listenLoopback(t), listenLoopback(t)}
	frames := [][]int{{1200, 1200, 1200, 700}, {1200, 1200}, {300}, {900, 1200, 1200}, {100, 100, 100}}
	var want [][]byte
	b.begin()
	seq := 0
	for _, frame := range frames {
		for k, r := range rs {
			for _, size := range frame {
				msg := make([]byte, size)
				copy(msg, fmt.Sprintf("receiver %d datagram %03d", k, seq))
				seq++
				if k == 0 {
					want = append(want, msg)
				}
				if _, err := conn.WriteTo(msg, r.LocalAddr()); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	b.end()
	buf := make([]byte, 2000)
	got := 0
	for i, w := range want {
		_ = rs[0].SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := rs[0].ReadFrom(buf)
		if err != nil {
			t.Fatalf("receiver 0 got %d of %d datagrams: %v", i, len(want), err)
		}
		if n != len(w) || string(buf[:n]) != string(w) {
			t.Fatalf("datagram %d: %d bytes %q, want %d bytes %q", i, n, buf[:24], len(w), w[:24])
		}
		got++
	}
	total := uint64(2 * got)
	if sent := b.datagrams.Load(); sent != total {
		t.Errorf("%d datagrams counted as sent, want %d", sent, total)
	}
	if gsoSupported(udp) {
		// Runs per receiver: 1200x3+700, 1200x2, 300 alone, 900 alone, 1200x2,
		// 100x3: 11 of its 13 datagrams are segments.
		if seg := b.segmented.Load(); seg != 2*11 {
			t.Errorf("%d datagrams went as GSO segments, want %d", seg, 2*11)
		}
	}

	// A run the kernel would not segment goes one datagram at a time.
	b.writeSegments(ipv4.Message{Buffers: [][]byte{[]byte("aaaabbbbcc")}, Addr: rs[1].LocalAddr()}, gsoRun{size: 4, count: 3, bytes: 10})
	for range len(want) {
		_ = rs[1].SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := rs[1].ReadFrom(buf); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range []string{"aaaa", "bbbb", "cc"} {
		_ = rs[1].SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := rs[1].ReadFrom(buf)
		if err != nil || string(buf[:n]) != w {
			t.Fatalf("split run: %q, %v, want %q", buf[:n], err, w)
		}
	}
}

// listenLoopback opens a UDP socket on loopback with room for a burst,
// closed when the test ends.
func listenLoopback(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadBuffer(1 << 20)
	return c
}
