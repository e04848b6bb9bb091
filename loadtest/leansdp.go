package loadtest

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// The session descriptions of a lean classroom (lean.go): what it reads of
// the server's and what it writes of its own. It receives only, over one
// BUNDLEd UDP 5-tuple, as the DTLS client.

// twccURI is the transport-wide sequence number extension (TWCC feedback
// reports each packet's arrival by it).
const twccURI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"

// remoteDesc is what a lean classroom needs of the server's description.
type remoteDesc struct {
	ufrag, pwd string
	// fingerprint is the server's certificate's SHA-256, "AB:CD:...".
	fingerprint string
	// candidates are the server's UDP candidates (a WHEP answer's; a
	// Podium offer's may be trickled instead: the server's checks then
	// tell the address).
	candidates []netip.AddrPort
	media      []remoteMedia
}

// remoteMedia is one m-section of the server's description.
type remoteMedia struct {
	kind      string // "audio" or "video"
	mid       string
	direction string // the server's: sendonly, sendrecv, recvonly, inactive
	rejected  bool   // port 0
	// formats are the payload types we accept, in the server's order,
	// with their codec names (lower case: opus, red, vp8, h264, rtx).
	formats []format
	twccID  uint8 // 0: not negotiated
	// ssrcs are the server's sending SSRCs with their stream (msid) ids;
	// rtx maps a retransmission SSRC to the SSRC it repairs (FID group).
	ssrcs map[uint32]string
	rtx   map[uint32]uint32
}

type format struct {
	pt           uint8
	codec        string
	rtpmap, fmtp string
}

// leanCodecs are the codecs a lean classroom accepts: what Podium forwards.
var leanCodecs = map[string]bool{"opus": true, "red": true, "vp8": true, "h264": true, "rtx": true}

// parseRemoteDesc reads the server's description; an error names what is
// missing.
func parseRemoteDesc(raw string) (*remoteDesc, error) {
	var s sdp.SessionDescription
	if err := s.UnmarshalString(raw); err != nil {
		return nil, fmt.Errorf("sdp: %w", err)
	}
	d := &remoteDesc{}
	d.ufrag, _ = s.Attribute("ice-ufrag")
	d.pwd, _ = s.Attribute("ice-pwd")
	d.fingerprint, _ = s.Attribute("fingerprint")
	for _, m := range s.MediaDescriptions {
		rm := remoteMedia{kind: m.MediaName.Media, direction: "sendrecv", rejected: m.MediaName.Port.Value == 0,
			ssrcs: map[uint32]string{}, rtx: map[uint32]uint32{}}
		for _, f := range m.MediaName.Formats {
			if pt, err := strconv.ParseUint(f, 10, 7); err == nil {
				rm.formats = append(rm.formats, format{pt: uint8(pt)})
			}
		}
		pts := map[uint8]*format{}
		for i := range rm.formats {
			pts[rm.formats[i].pt] = &rm.formats[i]
		}
		for _, a := range m.Attributes {
			switch a.Key {
			case "ice-ufrag":
				d.ufrag = a.Value
			case "ice-pwd":
				d.pwd = a.Value
			case "fingerprint":
				d.fingerprint = a.Value
			case "mid":
				rm.mid = a.Value
			case "sendonly", "sendrecv", "recvonly", "inactive":
				rm.direction = a.Key
			case "rtpmap", "fmtp":
				ptText, rest, _ := strings.Cut(a.Value, " ")
				pt, err := strconv.ParseUint(ptText, 10, 7)
				if f := pts[uint8(pt)]; err == nil && f != nil {
					if a.Key == "rtpmap" {
						f.rtpmap = rest
						name, _, _ := strings.Cut(rest, "/")
						f.codec = strings.ToLower(name)
					} else {
						f.fmtp = rest
					}
				}
			case "extmap":
				var e sdp.ExtMap
				if e.Unmarshal("extmap:"+a.Value) == nil && e.URI != nil && e.URI.String() == twccURI && e.Value > 0 && e.Value < 256 {
					rm.twccID = uint8(e.Value)
				}
			case "ssrc":
				ssrcText, rest, _ := strings.Cut(a.Value, " ")
				ssrc, err := strconv.ParseUint(ssrcText, 10, 32)
				if err != nil {
					continue
				}
				if msid, ok := strings.CutPrefix(rest, "msid:"); ok {
					stream, _, _ := strings.Cut(msid, " ")
					rm.ssrcs[uint32(ssrc)] = stream
				} else if _, known := rm.ssrcs[uint32(ssrc)]; !known {
					rm.ssrcs[uint32(ssrc)] = ""
				}
			case "ssrc-group":
				f := strings.Fields(a.Value)
				if len(f) == 3 && f[0] == "FID" {
					orig, err1 := strconv.ParseUint(f[1], 10, 32)
					rtx, err2 := strconv.ParseUint(f[2], 10, 32)
					if err1 == nil && err2 == nil {
						rm.rtx[uint32(rtx)] = uint32(orig)
					}
				}
			case "candidate":
				if ap, ok := udpCandidate(a.Value); ok {
					d.candidates = append(d.candidates, ap)
				}
			}
		}
		kept := rm.formats[:0]
		for _, f := range rm.formats {
			if leanCodecs[f.codec] {
				kept = append(kept, f)
			}
		}
		rm.formats = kept
		// A stream's msid may come on a line of its own (a=msid), the
		// SSRCs then without one.
		if msid, ok := m.Attribute("msid"); ok {
			stream, _, _ := strings.Cut(msid, " ")
			for ssrc, s := range rm.ssrcs {
				if s == "" {
					rm.ssrcs[ssrc] = stream
				}
			}
		}
		d.media = append(d.media, rm)
	}
	if d.ufrag == "" || d.pwd == "" {
		return nil, errors.New("sdp: no ice-ufrag or ice-pwd")
	}
	algo, fp, _ := strings.Cut(d.fingerprint, " ")
	if !strings.EqualFold(algo, "sha-256") || fp == "" {
		return nil, fmt.Errorf("sdp: need a sha-256 fingerprint, got %q", d.fingerprint)
	}
	d.fingerprint = strings.ToUpper(fp)
	return d, nil
}

// udpCandidate reads a UDP candidate's address ("foundation component
// transport priority address port typ ...").
func udpCandidate(v string) (netip.AddrPort, bool) {
	f := strings.Fields(v)
	if len(f) < 8 || !strings.EqualFold(f[2], "udp") || f[1] != "1" {
		return netip.AddrPort{}, false
	}
	addr, err := netip.ParseAddr(f[4])
	port, err2 := strconv.ParseUint(f[5], 10, 16)
	if err != nil || err2 != nil || !addr.Is4() {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(addr, uint16(port)), true
}

// localDesc is what a lean classroom says of itself.
type localDesc struct {
	ufrag, pwd  string
	fingerprint string // SHA-256 of its certificate, "AB:CD:..."
	addr        netip.AddrPort
}

// leanFeedback is the feedback a lean classroom sends for video (the
// RTCP it builds: lean.go).
var leanFeedback = []string{"transport-cc", "nack", "nack pli"}

// answer answers the server's offer: every section it sends is received,
// with the codecs of leanCodecs it offers and transport-wide congestion
// control, BUNDLEd on one UDP candidate, the classroom the DTLS client.
func (l localDesc) answer(offer *remoteDesc) string {
	var b strings.Builder
	l.session(&b)
	var bundle []string
	for _, m := range offer.media {
		if !m.rejected && len(m.formats) > 0 {
			bundle = append(bundle, m.mid)
		}
	}
	fmt.Fprintf(&b, "a=group:BUNDLE %s\r\n", strings.Join(bundle, " "))
	for i, m := range offer.media {
		if m.rejected || len(m.formats) == 0 {
			fmt.Fprintf(&b, "m=%s 0 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:%s\r\na=inactive\r\n", m.kind, m.mid)
			continue
		}
		dir := "recvonly"
		if m.direction == "recvonly" || m.direction == "inactive" {
			dir = "inactive"
		}
		l.section(&b, m.kind, m.mid, dir, m.formats, m.twccID, i == 0)
	}
	return b.String()
}

// whepOffer is a receive-only offer of one video and one audio section,
// with the codecs and feedback a browser offers (registerCodecs). The
// classroom asks to be the DTLS client (setup:active), as it is when it
// answers.
func (l localDesc) whepOffer() string {
	var b strings.Builder
	l.session(&b)
	b.WriteString("a=group:BUNDLE 0 1\r\n")
	video := []format{
		{pt: 96, codec: "vp8", rtpmap: "VP8/90000"},
		{pt: 97, codec: "rtx", rtpmap: "rtx/90000", fmtp: "apt=96"},
		{pt: 106, codec: "h264", rtpmap: "H264/90000", fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
		{pt: 107, codec: "rtx", rtpmap: "rtx/90000", fmtp: "apt=106"},
	}
	audio := []format{
		{pt: 111, codec: "opus", rtpmap: "opus/48000/2", fmtp: "minptime=10;useinbandfec=1"},
		{pt: 63, codec: "red", rtpmap: "red/48000/2", fmtp: "111/111"},
	}
	l.section(&b, "video", "0", "recvonly", video, leanOfferTWCCID, true)
	l.section(&b, "audio", "1", "recvonly", audio, leanOfferTWCCID, false)
	return b.String()
}

// leanOfferTWCCID is the extension id a lean classroom's own offer gives
// transport-wide sequence numbers.
const leanOfferTWCCID = 3

func (l localDesc) session(b *strings.Builder) {
	fmt.Fprintf(b, "v=0\r\no=- %d 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n", l.addr.Port())
	b.WriteString("a=msid-semantic: WMS\r\n")
}

func (l localDesc) section(b *strings.Builder, kind, mid, dir string, formats []format, twccID uint8, withCandidate bool) {
	pts := make([]string, len(formats))
	for i, f := range formats {
		pts[i] = strconv.Itoa(int(f.pt))
	}
	fmt.Fprintf(b, "m=%s %d UDP/TLS/RTP/SAVPF %s\r\n", kind, l.addr.Port(), strings.Join(pts, " "))
	fmt.Fprintf(b, "c=IN IP4 %s\r\n", l.addr.Addr())
	fmt.Fprintf(b, "a=mid:%s\r\na=%s\r\na=rtcp-mux\r\n", mid, dir)
	fmt.Fprintf(b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\n", l.ufrag, l.pwd)
	fmt.Fprintf(b, "a=fingerprint:sha-256 %s\r\na=setup:active\r\n", l.fingerprint)
	if twccID > 0 {
		fmt.Fprintf(b, "a=extmap:%d %s\r\n", twccID, twccURI)
	}
	for _, f := range formats {
		fmt.Fprintf(b, "a=rtpmap:%d %s\r\n", f.pt, f.rtpmap)
		if f.fmtp != "" {
			fmt.Fprintf(b, "a=fmtp:%d %s\r\n", f.pt, f.fmtp)
		}
		switch {
		case kind == "video" && f.codec != "rtx":
			for _, fb := range leanFeedback {
				fmt.Fprintf(b, "a=rtcp-fb:%d %s\r\n", f.pt, fb)
			}
		case kind == "audio":
			fmt.Fprintf(b, "a=rtcp-fb:%d transport-cc\r\n", f.pt)
		}
	}
	if withCandidate {
		fmt.Fprintf(b, "a=candidate:1 1 udp 2130706431 %s %d typ host\r\na=end-of-candidates\r\n", l.addr.Addr(), l.addr.Port())
	}
}
