// Package sdpfrag reads and writes trickle-ice-sdpfrag bodies (RFC 8840),
// which WHIP and WHEP PATCH requests carry (RFC 9725 §4.3): trickled
// candidates, and for an ICE restart a new ICE username fragment and
// password. It also puts new credentials into a whole session description,
// which is how both ends apply a restart that PATCH carries without a new
// offer. The server (signaling, sfu) and the Go client use it.
package sdpfrag

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/pion/webrtc/v4"
)

// MediaType is the Content-Type of a fragment.
const MediaType = "application/trickle-ice-sdpfrag"

// Frag is one fragment.
type Frag struct {
	// Ufrag and Pwd are the ICE credentials the fragment's candidates
	// belong to; new ones ask for an ICE restart.
	Ufrag, Pwd string
	// Media is the first m= line and Mid its a=mid, which the candidates
	// are for (with max-bundle, every candidate is the first section's).
	Media, Mid string
	// Candidates are the candidate attributes without "a=".
	Candidates []webrtc.ICECandidateInit
	// EndOfCandidates says that no more candidates follow.
	EndOfCandidates bool
}

// maxLine bounds one line of a fragment.
const maxLine = 64 << 10

// Parse reads a fragment. A candidate must follow an m= or a=mid line, so
// it is known which section it belongs to.
func Parse(body string) (Frag, error) {
	var (
		f        Frag
		mid      *string
		index    uint16
		sections = -1
	)
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
		case strings.HasPrefix(line, "m="):
			sections++
			index = uint16(sections)
			mid = nil
			if f.Media == "" {
				f.Media = line
			}
		case strings.HasPrefix(line, "a=mid:"):
			v := strings.TrimPrefix(line, "a=mid:")
			mid = &v
			if sections <= 0 && f.Mid == "" {
				f.Mid = v
			}
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			f.Ufrag = strings.TrimPrefix(line, "a=ice-ufrag:")
		case strings.HasPrefix(line, "a=ice-pwd:"):
			f.Pwd = strings.TrimPrefix(line, "a=ice-pwd:")
		case strings.HasPrefix(line, "a=candidate:"):
			if mid == nil && sections < 0 {
				return Frag{}, fmt.Errorf("candidate before any a=mid or m= line")
			}
			c := webrtc.ICECandidateInit{Candidate: strings.TrimPrefix(line, "a=")}
			if mid != nil {
				m := *mid
				c.SDPMid = &m
			}
			if sections >= 0 {
				i := index
				c.SDPMLineIndex = &i
			}
			f.Candidates = append(f.Candidates, c)
		case line == "a=end-of-candidates":
			f.EndOfCandidates = true
		case strings.HasPrefix(line, "a="):
		default:
			return Frag{}, fmt.Errorf("unexpected line in sdpfrag: %q", truncate(line, 60))
		}
	}
	if err := sc.Err(); err != nil {
		return Frag{}, fmt.Errorf("read sdpfrag: %w", err)
	}
	return f, nil
}

// String writes the fragment: credentials first, then the media section
// with its candidates.
func (f Frag) String() string {
	var b strings.Builder
	if f.Ufrag != "" {
		fmt.Fprintf(&b, "a=ice-ufrag:%s\r\n", f.Ufrag)
	}
	if f.Pwd != "" {
		fmt.Fprintf(&b, "a=ice-pwd:%s\r\n", f.Pwd)
	}
	if f.Media != "" {
		fmt.Fprintf(&b, "%s\r\n", f.Media)
	}
	if f.Mid != "" {
		fmt.Fprintf(&b, "a=mid:%s\r\n", f.Mid)
	}
	for _, c := range f.Candidates {
		fmt.Fprintf(&b, "a=%s\r\n", c.Candidate)
	}
	if f.EndOfCandidates {
		b.WriteString("a=end-of-candidates\r\n")
	}
	return b.String()
}

// FromSDP is the fragment of a whole session description: its credentials
// and the candidates of its first media section (max-bundle), with
// end-of-candidates when the description says gathering is complete.
func FromSDP(sdp string) Frag {
	var f Frag
	section := -1
	for _, line := range strings.Split(sdp, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "m="):
			section++
			if section == 0 {
				// "m=<media> <port> <proto> <fmt>...": the port is 9 in a
				// fragment (RFC 8840), the rest as described.
				if p := strings.Fields(line); len(p) >= 4 {
					f.Media = strings.Join(append([]string{p[0], "9"}, p[2:]...), " ")
				}
			}
		case strings.HasPrefix(line, "a=ice-ufrag:") && f.Ufrag == "":
			f.Ufrag = strings.TrimPrefix(line, "a=ice-ufrag:")
		case strings.HasPrefix(line, "a=ice-pwd:") && f.Pwd == "":
			f.Pwd = strings.TrimPrefix(line, "a=ice-pwd:")
		case section == 0 && strings.HasPrefix(line, "a=mid:"):
			f.Mid = strings.TrimPrefix(line, "a=mid:")
		case section == 0 && strings.HasPrefix(line, "a=candidate:"):
			f.Candidates = append(f.Candidates, webrtc.ICECandidateInit{Candidate: strings.TrimPrefix(line, "a=")})
		case section == 0 && line == "a=end-of-candidates":
			f.EndOfCandidates = true
		}
	}
	return f
}

// WithCredentials returns the session description with every ICE
// username fragment and password replaced by the given ones and its
// candidates dropped (they belonged to the old credentials): what the
// description is after an ICE restart, before new candidates arrive.
func WithCredentials(sdp, ufrag, pwd string) string {
	lines := strings.SplitAfter(sdp, "\n")
	out := make([]string, 0, len(lines))
	for _, raw := range lines {
		line := strings.TrimSpace(raw)
		eol := raw[len(strings.TrimRight(raw, "\r\n")):]
		switch {
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			out = append(out, "a=ice-ufrag:"+ufrag+eol)
		case strings.HasPrefix(line, "a=ice-pwd:"):
			out = append(out, "a=ice-pwd:"+pwd+eol)
		case strings.HasPrefix(line, "a=candidate:"), line == "a=end-of-candidates":
		default:
			out = append(out, raw)
		}
	}
	return strings.Join(out, "")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
