// Package gcmseal seals packets with AES-GCM using the CPU's 512-bit AES
// and carry-less multiply instructions (VAES, VPCLMULQDQ).
//
// Go's crypto/aes seals 16 bytes per instruction; on a CPU with VAES it
// can do 64. A node forwarding a teacher's video to 200 classrooms seals
// every packet once per classroom, and crypto/aes was an eighth of its
// time (docs/BENCHMARKS.md, "The send path, fifth round"). This package
// does only what SRTP's AEAD profiles need (RFC 7714): a 12-byte nonce, a
// 16-byte tag, the header authenticated, the payload encrypted, with the
// payload read from one buffer and written to another so a packet is
// sealed as it is copied into its send buffer.
//
// Where the CPU lacks the instructions, New returns nil and callers keep
// crypto/cipher.
package gcmseal

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// TagSize is the length of the authentication tag Seal appends.
const TagSize = 16

// Key is an AES key's round keys and its GHASH key's powers, laid out for
// the assembly in one 512-byte object (eight cache lines, all a seal
// reads): the round count, H^16..H^1, then the round keys. A chunk of
// n < 16 blocks multiplies by the n powers ending at H^1 and reads 256
// bytes from there; what it reads past H^1 (round keys) meets blocks of
// zeros.
type Key struct {
	rounds    uint64
	_         uint64
	powers    [16][16]byte
	roundKeys [15][16]byte
}

// New expands a 16- or 32-byte AES key for sealing, or returns nil (and
// no error) when this CPU cannot run the assembly.
func New(key []byte) (*Key, error) {
	if len(key) != 16 && len(key) != 32 {
		return nil, fmt.Errorf("gcmseal: a %d-byte key, want 16 or 32", len(key))
	}
	if !supported {
		return nil, nil
	}
	k := &Key{}
	k.rounds = uint64(expandKey(key, &k.roundKeys))
	var h [16]byte
	encryptBlock(&k.roundKeys, int(k.rounds), &h, &h)
	hx := ghashKey(h)
	p := hx
	for i := len(k.powers) - 1; i >= 0; i-- {
		p.put(k.powers[i][:])
		p = gfMul(p, hx)
	}
	return k, nil
}

// Seal authenticates hdr, encrypts payload into dst and appends the tag:
// dst must hold len(payload)+TagSize bytes and either be payload itself or
// not overlap it. nonce is the 12-byte GCM nonce. It returns
// dst[:len(payload)+TagSize].
func (k *Key) Seal(dst, hdr, payload []byte, nonce *[12]byte) []byte {
	n := len(payload) + TagSize
	if len(dst) < n {
		panic("gcmseal: dst too short")
	}
	var counter [16]byte
	copy(counter[:], nonce[:])
	counter[15] = 1
	var hp, sp *byte
	if len(hdr) > 0 {
		hp = &hdr[0]
	}
	if len(payload) > 0 {
		sp = &payload[0]
	}
	seal(k, hp, len(hdr), &dst[0], sp, len(payload), &counter)
	return dst[:n]
}

// field is a GHASH field element as the assembly holds it: the block's
// bytes reversed, read as a little-endian 128-bit number (lo, hi), the
// representation of Go's crypto/aes and Intel's CLMUL white paper.
type field struct{ lo, hi uint64 }

func (f field) put(b []byte) {
	binary.LittleEndian.PutUint64(b, f.lo)
	binary.LittleEndian.PutUint64(b[8:], f.hi)
}

// polyHi is the high half of the reduction constant (x^128 + x^7 + x^2 +
// x + 1, bit-reflected); its low half is 1.
const polyHi = 0xc200000000000000

// ghashKey is H in the assembly's representation: reversed, then
// multiplied by x (shifted left one bit, reduced), so that products need
// no shift.
func ghashKey(h [16]byte) field {
	f := field{lo: binary.BigEndian.Uint64(h[8:]), hi: binary.BigEndian.Uint64(h[:8])}
	carry := f.hi >> 63
	f.hi = f.hi<<1 | f.lo>>63
	f.lo <<= 1
	if carry == 1 {
		f.lo ^= 1
		f.hi ^= polyHi
	}
	return f
}

// gfMul multiplies as the assembly does: a schoolbook carry-less product,
// then two folds of the low half by the reduction constant.
func gfMul(a, b field) field {
	l1, l0 := clmul(a.lo, b.lo)
	h1, h0 := clmul(a.hi, b.hi)
	m1, m0 := clmul(a.lo, b.hi)
	n1, n0 := clmul(a.hi, b.lo)
	m1, m0 = m1^n1, m0^n0
	lo := field{lo: l0, hi: l1 ^ m0}
	hi := field{lo: h0 ^ m1, hi: h1}
	for range 2 {
		t1, t0 := clmul(polyHi, lo.lo)
		lo = field{lo: lo.hi ^ t0, hi: lo.lo ^ t1}
	}
	return field{lo: lo.lo ^ hi.lo, hi: lo.hi ^ hi.hi}
}

// clmul is the carry-less product of a and b as (high, low) halves.
func clmul(a, b uint64) (hi, lo uint64) {
	for i := range 64 {
		if b>>i&1 == 1 {
			lo ^= a << i
			if i > 0 {
				hi ^= a >> (64 - i)
			}
		}
	}
	return hi, lo
}

// expandKey is AES's key schedule (FIPS 197 section 5.2); it returns the
// number of rounds.
func expandKey(key []byte, rk *[15][16]byte) int {
	nk := len(key) / 4
	rounds := nk + 6
	var w [60]uint32
	for i := range nk {
		w[i] = binary.BigEndian.Uint32(key[4*i:])
	}
	rcon := uint32(1)
	for i := nk; i < 4*(rounds+1); i++ {
		t := w[i-1]
		switch {
		case i%nk == 0:
			t = subWord(bits.RotateLeft32(t, 8)) ^ rcon<<24
			rcon = uint32(xtime(byte(rcon)))
		case nk > 6 && i%nk == 4:
			t = subWord(t)
		}
		w[i] = w[i-nk] ^ t
	}
	for r := 0; r <= rounds; r++ {
		for j := range 4 {
			binary.BigEndian.PutUint32(rk[r][4*j:], w[4*r+j])
		}
	}
	return rounds
}

func subWord(w uint32) uint32 {
	return uint32(sbox[w>>24])<<24 | uint32(sbox[w>>16&0xff])<<16 | uint32(sbox[w>>8&0xff])<<8 | uint32(sbox[w&0xff])
}

// xtime multiplies by x in AES's field.
func xtime(b byte) byte {
	if b&0x80 != 0 {
		return b<<1 ^ 0x1b
	}
	return b << 1
}

// sbox is AES's S-box, built from its definition: the multiplicative
// inverse in GF(2^8), then the affine map (FIPS 197 section 5.1.1).
var sbox = func() (s [256]byte) {
	p, q := byte(1), byte(1)
	for {
		p ^= xtime(p) // p *= 3
		q ^= q << 1   // q /= 3
		q ^= q << 2
		q ^= q << 4
		if q&0x80 != 0 {
			q ^= 0x09
		}
		s[p] = q ^ bits.RotateLeft8(q, 1) ^ bits.RotateLeft8(q, 2) ^ bits.RotateLeft8(q, 3) ^ bits.RotateLeft8(q, 4) ^ 0x63
		if p == 1 {
			break
		}
	}
	s[0] = 0x63
	return s
}()
