package sfu

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// protectForTest protects a marshalled RTP packet as sendDirect does.
func protectForTest(t testing.TB, s *srtpSender, plain []byte) []byte {
	t.Helper()
	var hdr rtp.Header
	n, err := hdr.Unmarshal(plain)
	if err != nil {
		t.Fatal(err)
	}
	if s.gcm == nil {
		out, err := s.ctx.EncryptRTP(nil, plain, nil)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	buf := make([]byte, len(plain)+srtpOverhead)
	copy(buf, plain[:n])
	payload := plain[n:]
	if hdr.SequenceNumber%2 == 0 { // in place, as when a prefix is copied in first
		payload = buf[n:len(plain)]
		copy(payload, plain[n:])
	}
	return s.sealGCM(buf, n, payload, hdr.SSRC, hdr.SequenceNumber)
}

// TestSRTPSealIsWhatPionSends: for both AES-GCM profiles, the egress's own
// sealing gives the bytes pion's context gives for the same keys, over
// streams that run through the sequence number's wrap, with
// retransmissions of packets from before the wrap, header extensions
// (the TWCC stamp) and an RTX stream beside the media; and a receiver's
// pion context opens them. Both with gcmseal (where the CPU has VAES) and
// with crypto/aes, and with payloads sealed in place and from elsewhere.
func TestSRTPSealIsWhatPionSends(t *testing.T) {
	for _, c := range []struct {
		profile srtp.ProtectionProfile
		vaes    bool
	}{
		{srtp.ProtectionProfileAeadAes128Gcm, true}, {srtp.ProtectionProfileAeadAes128Gcm, false},
		{srtp.ProtectionProfileAeadAes256Gcm, true}, {srtp.ProtectionProfileAeadAes256Gcm, false},
	} {
		profile := c.profile
		t.Run(fmt.Sprintf("%v/vaes=%v", profile, c.vaes), func(t *testing.T) {
			keyLen, err := profile.KeyLen()
			if err != nil {
				t.Fatal(err)
			}
			saltLen, err := profile.SaltLen()
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, uint64(profile)))
			key, salt := make([]byte, keyLen), make([]byte, saltLen)
			for i := range key {
				key[i] = byte(rng.Uint32())
			}
			for i := range salt {
				salt[i] = byte(rng.Uint32())
			}
			own, err := newSRTPSender(key, salt, profile)
			if err != nil {
				t.Fatal(err)
			}
			if own.gcm == nil {
				t.Fatal("an AES-GCM profile is sealed by pion, not by the egress")
			}
			if !c.vaes {
				own.vaes = nil
			} else if own.vaes == nil {
				t.Skip("this CPU has no VAES")
			}
			pion, err := srtp.CreateContext(key, salt, profile)
			if err != nil {
				t.Fatal(err)
			}
			receiver, err := srtp.CreateContext(key, salt, profile)
			if err != nil {
				t.Fatal(err)
			}
			media, rtx := uint16(65536-300), uint16(65000)
			// Six more streams, more than the sender keeps at hand, each
			// wrapping while it is in and out of the cold map.
			var others [6]uint16
			for k := range others {
				others[k] = uint16(65536 - 40 - 5*k)
			}
			for i := range 3000 {
				hdr := rtp.Header{Version: 2, PayloadType: 96, SSRC: 0xcafe, SequenceNumber: media, Timestamp: uint32(i) * 3000}
				switch {
				case i%5 == 1: // another down-track of the connection
					k := rng.IntN(len(others))
					hdr.SSRC, hdr.SequenceNumber = 0x1000+uint32(k), others[k]
					others[k] += uint16(1 + rng.IntN(2))
				case i%7 == 3: // a retransmission, as RTX
					hdr.SSRC, hdr.PayloadType, hdr.SequenceNumber = 0xbeef, 97, rtx
					rtx++
				case i%11 == 5: // the original stream resent (no RTX): up to 500 back
					hdr.SequenceNumber = media - uint16(rng.IntN(500))
				default:
					media++
				}
				if i%2 == 0 {
					if err := hdr.SetExtension(3, []byte{byte(i >> 8), byte(i)}); err != nil {
						t.Fatal(err)
					}
				}
				payload := make([]byte, 1+rng.IntN(1200))
				for j := range payload {
					payload[j] = byte(rng.Uint32())
				}
				plain, err := (&rtp.Packet{Header: hdr, Payload: payload}).Marshal()
				if err != nil {
					t.Fatal(err)
				}
				want, err := pion.EncryptRTP(nil, plain, nil)
				if err != nil {
					t.Fatal(err)
				}
				got := protectForTest(t, own, plain)
				if !bytes.Equal(got, want) {
					t.Fatalf("packet %d (ssrc %#x seq %d): sealed %x…, pion %x…", i, hdr.SSRC, hdr.SequenceNumber, got[:min(24, len(got))], want[:min(24, len(want))])
				}
				if hdr.SSRC == 0xcafe && hdr.SequenceNumber == media-1 { // new media: in order for the receiver's replay window
					opened, err := receiver.DecryptRTP(nil, got, nil)
					if err != nil || !bytes.Equal(opened, plain) {
						t.Fatalf("packet %d: a receiver cannot open it: %v", i, err)
					}
				}
			}
		})
	}
}

// TestSRTPDeriveIsRFC3711s: the key derivation gives RFC 3711 appendix
// B.3's test vectors.
func TestSRTPDeriveIsRFC3711s(t *testing.T) {
	master := []byte{0xE1, 0xF9, 0x7A, 0x0D, 0x3E, 0x01, 0x8B, 0xE0, 0xD6, 0x4F, 0xA3, 0x2C, 0x06, 0xDE, 0x41, 0x39}
	salt := []byte{0x0E, 0xC6, 0x75, 0xAD, 0x49, 0x8A, 0xFE, 0xEB, 0xB6, 0x96, 0x0B, 0x3A, 0xAB, 0xE6}
	for _, c := range []struct {
		label byte
		n     int
		want  []byte
	}{
		{labelSRTPEncryption, 16, []byte{0xC6, 0x1E, 0x7A, 0x93, 0x74, 0x4F, 0x39, 0xEE, 0x10, 0x73, 0x4A, 0xFE, 0x3F, 0xF7, 0xA0, 0x87}},
		{labelSRTPSalt, 14, []byte{0x30, 0xCB, 0xBC, 0x08, 0x86, 0x3D, 0x8C, 0x85, 0xD4, 0x9D, 0xB3, 0x4A, 0x9A, 0xE1}},
	} {
		got, err := srtpDerive(c.label, master, salt, c.n)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, c.want) {
			t.Errorf("label %d: %x, want %x", c.label, got, c.want)
		}
	}
}

// BenchmarkSRTPSeal: sealing a 1,200-byte packet in place (with gcmseal and
// with crypto/aes), against pion's context encrypting the same packet into
// a buffer.
func BenchmarkSRTPSeal(b *testing.B) {
	key := make([]byte, 16+12)
	hdr := rtp.Header{Version: 2, PayloadType: 96, SSRC: 0xcafe}
	if err := hdr.SetExtension(3, []byte{0, 1}); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 1300)
	for _, vaes := range []bool{true, false} {
		b.Run(fmt.Sprintf("own/vaes=%v", vaes), func(b *testing.B) {
			s, err := newSRTPSender(key[:16], key[16:], srtp.ProtectionProfileAeadAes128Gcm)
			if err != nil {
				b.Fatal(err)
			}
			if !vaes {
				s.vaes = nil
			} else if s.vaes == nil {
				b.Skip("this CPU has no VAES")
			}
			b.ReportAllocs()
			b.SetBytes(1200)
			for i := range b.N {
				hdr.SequenceNumber = uint16(i)
				n, _ := hdr.MarshalTo(buf[:cap(buf)])
				s.sealGCM(buf[:n+1200+srtpOverhead], n, buf[n:n+1200], hdr.SSRC, hdr.SequenceNumber)
			}
		})
	}
	b.Run("pion", func(b *testing.B) {
		ctx, err := srtp.CreateContext(key[:16], key[16:], srtp.ProtectionProfileAeadAes128Gcm)
		if err != nil {
			b.Fatal(err)
		}
		plain, out := make([]byte, 1300), make([]byte, 0, 1400)
		var parsed rtp.Header
		b.ReportAllocs()
		b.SetBytes(1200)
		for i := range b.N {
			hdr.SequenceNumber = uint16(i)
			n, _ := hdr.MarshalTo(plain)
			if _, err := ctx.EncryptRTP(out[:0], plain[:n+1200], &parsed); err != nil {
				b.Fatal(err)
			}
		}
	})
}
