package sfu

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"

	"github.com/pion/srtp/v3"

	"podium/sfu/gcmseal"
)

// srtpSender protects what an egress sends on one subscriber connection.
//
// With the AEAD AES-GCM profiles (RFC 7714), which browsers and pion
// negotiate first, the egress seals each packet itself, into the buffer
// it marshals the packet's header into (sfu/gcmseal where the CPU has
// VAES, crypto/aes elsewhere): pion's Context.EncryptRTP parses
// the header it was just given again, looks the SSRC's rollover state up
// in a map and copies the packet into its output, about as much work per
// packet again as the AES-GCM itself (docs/BENCHMARKS.md, "Own SRTP
// sealing"). With the other profiles (AES-CM with HMAC-SHA1) pion's
// context protects the packet.
//
// A sender belongs to one egress: its scratch and rollover state are the
// egress goroutine's.
type srtpSender struct {
	ctx *srtp.Context // non-GCM profiles
	// rtcp protects the RTCP the node sends (egress.sendRTCP): a context
	// of its own, as pion's contexts are not safe to share.
	rtcp *srtp.Context

	gcm cipher.AEAD // GCM profiles: the SRTP session key's AES-GCM
	// vaes is the same key for gcmseal, where the CPU has VAES: twice
	// crypto/aes's speed, and it encrypts the payload as it copies it.
	vaes *gcmseal.Key
	salt [12]byte // the SRTP session salt
	iv   [12]byte // scratch: a packet's nonce (kept here so it does not escape per packet)
	// hot holds the packet index state of the SSRCs sent lately (a
	// classroom's video, sound and RTX): looked up by a scan of one
	// cache line, where a map lookup per packet, cold for each of 200
	// classrooms in a fan-out, was 3 % of a node's time. cold keeps the
	// others' highest index.
	hot     [srtpHotSSRCs]srtpIndex
	nextHot uint8 // the hot entry to give up next
	cold    map[uint32]uint64
}

// srtpHotSSRCs is how many SSRCs' index state a sender keeps at hand.
const srtpHotSSRCs = 4

// srtpIndex is one SSRC's packet index state for sending: the highest
// index sent (RFC 3711 section 3.3.1: rollover count << 16 | sequence
// number).
type srtpIndex struct {
	highest uint64
	ssrc    uint32
	used    bool
}

// SRTP key derivation labels (RFC 3711 section 4.3.2).
const (
	labelSRTPEncryption = 0x00
	labelSRTPSalt       = 0x02
)

// newSRTPSender makes the sender for a connection's write keys.
func newSRTPSender(masterKey, masterSalt []byte, profile srtp.ProtectionProfile) (*srtpSender, error) {
	rtcpCtx, err := srtp.CreateContext(masterKey, masterSalt, profile)
	if err != nil {
		return nil, fmt.Errorf("srtcp context: %w", err)
	}
	switch profile {
	case srtp.ProtectionProfileAeadAes128Gcm, srtp.ProtectionProfileAeadAes256Gcm:
		if len(masterSalt) != 12 {
			return nil, fmt.Errorf("srtp: a %d-byte master salt for an AES-GCM profile, want 12", len(masterSalt))
		}
		key, err := srtpDerive(labelSRTPEncryption, masterKey, masterSalt, len(masterKey))
		if err != nil {
			return nil, err
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("srtp session cipher: %w", err)
		}
		gcm, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("srtp session cipher: %w", err)
		}
		vaes, err := gcmseal.New(key)
		if err != nil {
			return nil, fmt.Errorf("srtp session cipher: %w", err)
		}
		s := &srtpSender{gcm: gcm, vaes: vaes, rtcp: rtcpCtx, cold: map[uint32]uint64{}}
		salt, err := srtpDerive(labelSRTPSalt, masterKey, masterSalt, len(s.salt))
		if err != nil {
			return nil, err
		}
		copy(s.salt[:], salt)
		return s, nil
	}
	ctx, err := srtp.CreateContext(masterKey, masterSalt, profile)
	if err != nil {
		return nil, fmt.Errorf("srtp context: %w", err)
	}
	return &srtpSender{ctx: ctx, rtcp: rtcpCtx}, nil
}

// srtpDerive is SRTP's key derivation with a key derivation rate of 0
// (RFC 3711 section 4.3.3, as DTLS-SRTP uses it): AES in counter mode
// under the master key, from the master salt with the label in its
// seventh byte.
func srtpDerive(label byte, masterKey, masterSalt []byte, n int) ([]byte, error) {
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, fmt.Errorf("srtp key derivation: %w", err)
	}
	if len(masterSalt) > aes.BlockSize-2 {
		return nil, fmt.Errorf("srtp key derivation: a %d-byte master salt", len(masterSalt))
	}
	var in [aes.BlockSize]byte
	copy(in[:], masterSalt)
	in[7] ^= label
	out := make([]byte, (n+aes.BlockSize-1)/aes.BlockSize*aes.BlockSize)
	for i := 0; i*aes.BlockSize < n; i++ {
		binary.BigEndian.PutUint16(in[aes.BlockSize-2:], uint16(i))
		block.Encrypt(out[i*aes.BlockSize:], in[:])
	}
	return out[:n], nil
}

// rolloverCount is the rollover count to send seq of ssrc with, as a
// receiver will estimate it (RFC 3711 section 3.3.1): from the highest
// index sent, seq is at most half the sequence space ahead or behind. A
// retransmission of a packet from before a wrap keeps its old count.
func (s *srtpSender) rolloverCount(ssrc uint32, seq uint16) uint32 {
	x := s.index(ssrc)
	if !x.used {
		*x = srtpIndex{highest: uint64(seq), ssrc: ssrc, used: true}
		return 0
	}
	index := int64(x.highest) + int64(int16(seq-uint16(x.highest)))
	if index < 0 { // behind the first packet, before any wrap
		return 0
	}
	if uint64(index) > x.highest {
		x.highest = uint64(index)
	}
	return uint32(index >> 16)
}

// index is ssrc's hot entry: found, brought back from cold, or (not used)
// to be started.
func (s *srtpSender) index(ssrc uint32) *srtpIndex {
	for i := range s.hot {
		if x := &s.hot[i]; x.used && x.ssrc == ssrc {
			return x
		}
	}
	x := &s.hot[s.nextHot%srtpHotSSRCs]
	s.nextHot++
	if x.used {
		s.cold[x.ssrc] = x.highest
	}
	*x = srtpIndex{}
	if highest, ok := s.cold[ssrc]; ok {
		delete(s.cold, ssrc)
		*x = srtpIndex{highest: highest, ssrc: ssrc, used: true}
	}
	return x
}

// sealGCM protects an RTP packet (RFC 7714 sections 8 and 9) in buf, whose
// first hdrLen bytes are its header, and returns it with the
// authentication tag appended: the header is authenticated, the payload
// encrypted into buf after the header. payload is either there already
// (sealed in place) or elsewhere, then copied in as it is encrypted.
// buf's length must hold the payload and the tag.
func (s *srtpSender) sealGCM(buf []byte, hdrLen int, payload []byte, ssrc uint32, seq uint16) []byte {
	roc := s.rolloverCount(ssrc, seq)
	s.iv = [12]byte{}
	binary.BigEndian.PutUint32(s.iv[2:], ssrc)
	binary.BigEndian.PutUint32(s.iv[6:], roc)
	binary.BigEndian.PutUint16(s.iv[10:], seq)
	for i := range s.iv {
		s.iv[i] ^= s.salt[i]
	}
	if s.vaes != nil {
		return buf[:hdrLen+len(s.vaes.Seal(buf[hdrLen:], buf[:hdrLen], payload, &s.iv))]
	}
	if len(payload) > 0 && &payload[0] != &buf[hdrLen] {
		copy(buf[hdrLen:], payload)
	}
	return s.gcm.Seal(buf[:hdrLen], s.iv[:], buf[hdrLen:hdrLen+len(payload)], buf[:hdrLen])
}
