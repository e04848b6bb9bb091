package sfu

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"sync"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/prf"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/srtp/v3"
)

// srtpKeys learns the SRTP keys a subscriber connection's DTLS handshake
// agrees, so that the egress can protect its packets itself and write them
// straight to the node's UDP socket (egress.sendDirect) instead of through
// pion's SRTP session, ICE connection and mux, which cost a forwarded
// packet about as much again as the encryption (docs/SENDPATH.md).
//
// pion/webrtc keeps its DTLS connection private, so the keys are derived
// as pion/srtp does (RFC 5764 section 4.2: the TLS exporter with the label
// "EXTRACTOR-dtls_srtp") from what the handshake lets an application see:
// the server's hello (random, cipher suite, SRTP profile), through the
// setting engine's hello hook, and the master secret with the client's
// random, through its key log writer, which receives them and nothing else.
// The node is the DTLS server on subscriber connections (it offers actpass
// and clients answer active; as the answerer it chooses passive), the side
// that sees the server's hello. Where it is not, or nothing was learnt, the
// egress writes through pion as before.
type srtpKeys struct {
	mu           sync.Mutex
	serverRandom [handshake.RandomLength]byte
	suite        dtls.CipherSuiteID
	profile      srtp.ProtectionProfile
	sawHello     bool
	done         bool
	// ready receives, once, the sender that protects what the node sends
	// and the context that opens what the classroom sends (its SRTCP).
	ready func(out *srtpSender, in *srtp.Context)
}

// onServerHello notes what the node's hello announces and sends it as is.
func (k *srtpKeys) onServerHello(m handshake.MessageServerHello) handshake.Message {
	k.mu.Lock()
	k.serverRandom = m.Random.MarshalFixed()
	if m.CipherSuiteID != nil {
		k.suite = dtls.CipherSuiteID(*m.CipherSuiteID)
	}
	for _, e := range m.Extensions {
		if u, ok := e.(*extension.UseSRTP); ok && len(u.ProtectionProfiles) == 1 {
			k.profile = srtp.ProtectionProfile(u.ProtectionProfiles[0])
		}
	}
	k.sawHello = k.profile != 0
	k.mu.Unlock()
	return &m
}

// Write takes the handshake's key log line, in the NSS format pion writes:
// "CLIENT_RANDOM <client random> <master secret>".
func (k *srtpKeys) Write(line []byte) (int, error) {
	fields := bytes.Fields(line)
	if len(fields) != 3 || string(fields[0]) != "CLIENT_RANDOM" {
		return len(line), nil
	}
	clientRandom, err1 := hex.DecodeString(string(fields[1]))
	master, err2 := hex.DecodeString(string(fields[2]))
	if err1 != nil || err2 != nil || len(clientRandom) != handshake.RandomLength {
		return len(line), nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.sawHello || k.done {
		return len(line), nil
	}
	out, in, err := serverSRTPContexts(master, clientRandom, k.serverRandom[:], k.suite, k.profile)
	if err != nil {
		return len(line), nil // the egress keeps writing through pion
	}
	k.done = true
	k.ready(out, in)
	return len(line), nil
}

// handshakeExporter is the TLS 1.2 exporter (RFC 5705) of a finished
// handshake, computed as pion/dtls does from its master secret and the two
// hellos' randoms; pion/srtp's key extraction reads it.
type handshakeExporter struct {
	master, clientRandom, serverRandom []byte
	suite                              dtls.CipherSuiteID
}

func (x handshakeExporter) ExportKeyingMaterial(label string, context []byte, n int) ([]byte, error) {
	if len(context) != 0 {
		return nil, fmt.Errorf("keying material with a context is not supported")
	}
	seed := make([]byte, 0, len(label)+len(x.clientRandom)+len(x.serverRandom))
	seed = append(append(append(seed, label...), x.clientRandom...), x.serverRandom...)
	return prf.PHash(x.master, seed, n, prfHash(x.suite))
}

// prfHash is the cipher suite's PRF hash: SHA-384 for the *_SHA384 suites,
// SHA-256 for every other (TLS 1.2's default, also for the *_CBC_SHA ones).
func prfHash(suite dtls.CipherSuiteID) func() hash.Hash {
	switch suite {
	case dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, dtls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:
		return sha512.New384
	}
	return sha256.New
}

// srtcpReplayWindow is the SRTCP replay window of what a classroom sends,
// pion/srtp's session default.
const srtcpReplayWindow = 64

// serverSRTPContexts makes the DTLS server's SRTP ends: the sender that
// protects what it sends, and the context that opens what the client
// sends. pion/srtp lays the exported material out into keys and salts
// (RFC 5764 section 4.2), as it does for pion's own session.
func serverSRTPContexts(master, clientRandom, serverRandom []byte, suite dtls.CipherSuiteID, profile srtp.ProtectionProfile) (*srtpSender, *srtp.Context, error) {
	cfg := srtp.Config{Profile: profile}
	exporter := handshakeExporter{master: master, clientRandom: clientRandom, serverRandom: serverRandom, suite: suite}
	if err := cfg.ExtractSessionKeysFromDTLS(exporter, false); err != nil {
		return nil, nil, fmt.Errorf("srtp keys (profile %#x): %w", uint16(profile), err)
	}
	out, err := newSRTPSender(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, profile)
	if err != nil {
		return nil, nil, err
	}
	// The replay window pion's SRTCP session keeps (srtp's default, 64):
	// a context made bare keeps none, and a replayed NACK or PLI would be
	// acted on again.
	in, err := srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, profile, srtp.SRTCPReplayProtection(srtcpReplayWindow))
	if err != nil {
		return nil, nil, fmt.Errorf("srtp context: %w", err)
	}
	return out, in, nil
}
