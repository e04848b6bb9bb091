package gcmseal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"math/rand/v2"
	"testing"
)

func stdGCM(t testing.TB, key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func newKey(t testing.TB, key []byte) *Key {
	k, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	if k == nil {
		t.Skip("this CPU has no VAES and VPCLMULQDQ")
	}
	return k
}

// TestSealIsAESGCM: for both key sizes and every header and payload
// length a packet can have here (and the lengths around each 16, 64 and
// 256-byte edge), Seal's output is crypto/cipher's, byte for byte, both
// in place and from another buffer, and writes nothing past the tag.
func TestSealIsAESGCM(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, keyLen := range []int{16, 32} {
		key := make([]byte, keyLen)
		for i := range key {
			key[i] = byte(rng.Uint32())
		}
		std, k := stdGCM(t, key), newKey(t, key)
		for _, hdrLen := range []int{0, 1, 12, 15, 16, 17, 20, 28, 64, 72, 255, 256, 257, 300, 600} {
			for payLen := 0; payLen <= 1600; payLen++ {
				var nonce [12]byte
				for i := range nonce {
					nonce[i] = byte(rng.Uint32())
				}
				pkt := make([]byte, hdrLen+payLen+TagSize+32)
				for i := range pkt {
					pkt[i] = byte(rng.Uint32())
				}
				guard := append([]byte(nil), pkt[hdrLen+payLen+TagSize:]...)
				hdr, payload := pkt[:hdrLen], pkt[hdrLen:hdrLen+payLen]
				want := std.Seal(nil, nonce[:], payload, hdr)

				out := make([]byte, payLen+TagSize)
				if got := k.Seal(out, hdr, payload, &nonce); !bytes.Equal(got, want) {
					t.Fatalf("key %d, header %d, payload %d: sealed\n%x\nwant\n%x", keyLen, hdrLen, payLen, got, want)
				}
				if got := k.Seal(pkt[hdrLen:], hdr, payload, &nonce); !bytes.Equal(got, want) {
					t.Fatalf("key %d, header %d, payload %d, in place: sealed\n%x\nwant\n%x", keyLen, hdrLen, payLen, got, want)
				}
				if !bytes.Equal(pkt[hdrLen+payLen+TagSize:], guard) {
					t.Fatalf("key %d, header %d, payload %d: wrote past the tag", keyLen, hdrLen, payLen)
				}
				if plain, err := std.Open(nil, nonce[:], pkt[hdrLen:hdrLen+payLen+TagSize], hdr); err != nil || len(plain) != payLen {
					t.Fatalf("key %d, header %d, payload %d: crypto/cipher cannot open it: %v", keyLen, hdrLen, payLen, err)
				}
			}
		}
	}
}

func TestNewRefusesOtherKeySizes(t *testing.T) {
	for _, n := range []int{0, 15, 24, 33} {
		if _, err := New(make([]byte, n)); err == nil {
			t.Errorf("a %d-byte key was taken", n)
		}
	}
}

func BenchmarkSeal(b *testing.B) {
	for _, n := range []int{160, 1200} {
		key := make([]byte, 16)
		hdr := make([]byte, 20)
		payload := make([]byte, n)
		out := make([]byte, n+TagSize)
		var nonce [12]byte
		b.Run(fmt.Sprintf("vaes/%d", n), func(b *testing.B) {
			k := newKey(b, key)
			b.SetBytes(int64(n))
			for b.Loop() {
				k.Seal(out, hdr, payload, &nonce)
			}
		})
		b.Run(fmt.Sprintf("crypto-cipher/%d", n), func(b *testing.B) {
			g := stdGCM(b, key)
			b.SetBytes(int64(n))
			for b.Loop() {
				g.Seal(out[:0], nonce[:], payload, hdr)
			}
		})
	}
}
