package sfu

import (
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"
)

// TestBatchConnSendsEveryDatagramInFewCalls: datagrams written while a
// batch is open reach each receiver whole and in order, in far fewer
// system calls than datagrams; with no batch open a datagram leaves at
// once.
func TestBatchConnSendsEveryDatagramInFewCalls(t *testing.T) {
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	conn, b := newBatchConn(udp, slog.Default())
	if b == nil {
		t.Fatal("a UDP socket was not wrapped")
	}
	const receivers, each = 3, 100
	var rs []*net.UDPConn
	for range receivers {
		r, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		_ = r.SetReadBuffer(1 << 20)
		rs = append(rs, r)
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
