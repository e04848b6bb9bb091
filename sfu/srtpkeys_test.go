package sfu

import (
	"bytes"
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// TestSRTPKeysFromTheHandshake: from what a DTLS server's hello hook and
// key log see, srtpKeys derives the server's SRTP write keys, and a
// packet it protects is what the DTLS client (as a browser or pion
// would) decrypts with the keys its own connection exports, for each
// SRTP profile and for SHA-256 and SHA-384 cipher suites.
func TestSRTPKeysFromTheHandshake(t *testing.T) {
	cases := []struct {
		suite   dtls.CipherSuiteID
		profile dtls.SRTPProtectionProfile
	}{
		{dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, dtls.SRTP_AEAD_AES_128_GCM},
		{dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, dtls.SRTP_AEAD_AES_256_GCM},
		{dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, dtls.SRTP_AES128_CM_HMAC_SHA1_80},
	}
	for _, c := range cases {
		t.Run(c.suite.String()+"/"+srtp.ProtectionProfile(c.profile).String(), func(t *testing.T) {
			var got *srtpSender
			var in *srtp.Context
			keys := &srtpKeys{ready: func(out *srtpSender, i *srtp.Context) { got, in = out, i }}
			clientState := handshakeDTLS(t, c.suite, c.profile, keys)
			if got == nil {
				t.Fatal("no SRTP sender from the handshake's hello and key log")
			}
			if gcm := c.profile == dtls.SRTP_AEAD_AES_128_GCM || c.profile == dtls.SRTP_AEAD_AES_256_GCM; gcm != (got.gcm != nil) {
				t.Fatalf("profile %v: the egress seals itself: %v, want %v", c.profile, got.gcm != nil, gcm)
			}

			cfg := srtp.Config{Profile: srtp.ProtectionProfile(c.profile)}
			if err := cfg.ExtractSessionKeysFromDTLS(clientState, true); err != nil {
				t.Fatal(err)
			}
			clientSide, err := srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, cfg.Profile)
			if err != nil {
				t.Fatal(err)
			}
			pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 7, Timestamp: 90000, SSRC: 0x1234},
				Payload: []byte("a picture of the teacher's slide")}
			plain, err := pkt.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			sealed := protectForTest(t, got, plain)
			opened, err := clientSide.DecryptRTP(nil, sealed, nil)
			if err != nil {
				t.Fatalf("the client cannot decrypt what the derived keys protect: %v", err)
			}
			if !bytes.Equal(opened, plain) {
				t.Fatalf("decrypted %x, want %x", opened, plain)
			}

			// And what the client sends (its RTCP) opens with the other.
			rr, err := (&rtcp.ReceiverReport{SSRC: 0x5678, Reports: []rtcp.ReceptionReport{{SSRC: 0x1234, FractionLost: 3}}}).Marshal()
			if err != nil {
				t.Fatal(err)
			}
			clientWrite, err := srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, cfg.Profile)
			if err != nil {
				t.Fatal(err)
			}
			sealedRR, err := clientWrite.EncryptRTCP(nil, rr, nil)
			if err != nil {
				t.Fatal(err)
			}
			openedRR, err := in.DecryptRTCP(nil, sealedRR, nil)
			if err != nil || !bytes.Equal(openedRR, rr) {
				t.Fatalf("the node cannot open the client's RTCP: %v", err)
			}
			if _, err := in.DecryptRTCP(nil, sealedRR, nil); err == nil {
				t.Fatal("the node opened the same RTCP packet twice: no replay protection")
			}
		})
	}
}

// handshakeDTLS runs a DTLS handshake over loopback UDP, the server side
// with keys' hooks, and returns the client's state.
func handshakeDTLS(t *testing.T, suite dtls.CipherSuiteID, profile dtls.SRTPProtectionProfile, keys *srtpKeys) *dtls.State {
	t.Helper()
	a, b := listenLoopback(t), listenLoopback(t)
	cert := func() tls.Certificate {
		c, err := selfsign.GenerateSelfSigned()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	server, err := dtls.Server(a, b.LocalAddr(), &dtls.Config{
		Certificates: []tls.Certificate{cert()}, CipherSuites: []dtls.CipherSuiteID{suite},
		SRTPProtectionProfiles: []dtls.SRTPProtectionProfile{profile}, InsecureSkipVerify: true,
		ServerHelloMessageHook: keys.onServerHello, KeyLogWriter: keys,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	client, err := dtls.Client(b, a.LocalAddr(), &dtls.Config{
		Certificates: []tls.Certificate{cert()}, CipherSuites: []dtls.CipherSuiteID{suite},
		SRTPProtectionProfiles: []dtls.SRTPProtectionProfile{profile}, InsecureSkipVerify: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- server.HandshakeContext(ctx) }()
	if err := client.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	state, ok := client.ConnectionState()
	if !ok {
		t.Fatal("no client state")
	}
	return &state
}
