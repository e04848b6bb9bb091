package sfu

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/pion/rtcp"
	"github.com/pion/srtp/v3"
)

// TestRTCPRoutesTakeOnlyRoutedSRTCP: the socket reader takes SRTCP from a
// routed classroom's address, opens it and hands the compound packet on;
// it leaves to pion RTCP from other addresses, and STUN, DTLS and RTP from
// the routed one; SRTCP that does not open (garbage, a replay) is dropped
// and counted; once the route is gone, the address's RTCP goes to pion
// again.
func TestRTCPRoutesTakeOnlyRoutedSRTCP(t *testing.T) {
	key := make([]byte, 16+12)
	for i := range key {
		key[i] = byte(i)
	}
	classroom, err := srtp.CreateContext(key[:16], key[16:], srtp.ProtectionProfileAeadAes128Gcm)
	if err != nil {
		t.Fatal(err)
	}
	node, err := srtp.CreateContext(key[:16], key[16:], srtp.ProtectionProfileAeadAes128Gcm, srtp.SRTCPReplayProtection(srtcpReplayWindow))
	if err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	var rs rtcpRoutes
	from := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	other := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40001}
	rs.set(netip.MustParseAddrPort("127.0.0.1:40000"), &rtcpRoute{in: node, buf: make([]byte, maxDatagramSize),
		deliver: func(p []byte) { got = append(got, append([]byte(nil), p...)) }})

	plain, err := rtcp.Marshal([]rtcp.Packet{
		&rtcp.ReceiverReport{SSRC: 7, Reports: []rtcp.ReceptionReport{{SSRC: 1234, FractionLost: 9}}},
		&rtcp.PictureLossIndication{SenderSSRC: 7, MediaSSRC: 1234},
	})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := classroom.EncryptRTCP(nil, plain, nil)
	if err != nil {
		t.Fatal(err)
	}

	if rs.take(sealed, other) {
		t.Error("RTCP from an address with no route was taken")
	}
	for name, p := range map[string][]byte{
		"STUN": {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0},
		"DTLS": {0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"RTP":  {0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0x04, 0xd2},
	} {
		if rs.take(p, from) {
			t.Errorf("%s from the routed address was taken", name)
		}
	}
	if !rs.take(sealed, from) {
		t.Fatal("SRTCP from the routed address was not taken")
	}
	if len(got) != 1 || !bytes.Equal(got[0], plain) {
		t.Fatalf("delivered %x, want the compound packet %x", got, plain)
	}
	if !rs.take(sealed, from) || len(got) != 1 || rs.failed.Load() != 1 {
		t.Fatalf("a replay: delivered %d, failed %d; want it taken, not delivered, counted", len(got), rs.failed.Load())
	}
	garbage := append([]byte(nil), sealed...)
	garbage[len(garbage)/2] ^= 0xff
	if !rs.take(garbage, from) || len(got) != 1 || rs.failed.Load() != 2 {
		t.Fatalf("a forged packet: delivered %d, failed %d; want it taken, not delivered, counted", len(got), rs.failed.Load())
	}
	if rs.taken.Load() != 3 {
		t.Errorf("taken %d, want 3", rs.taken.Load())
	}

	rs.set(netip.MustParseAddrPort("127.0.0.1:40000"), nil)
	if rs.take(sealed, from) {
		t.Error("RTCP was taken after its route was removed")
	}
}
