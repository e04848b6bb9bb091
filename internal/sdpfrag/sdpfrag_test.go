package sdpfrag

import (
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary PATCH bodies to the parser: no panic, and
// what it accepts writes back to a fragment it reads the same.
func FuzzParse(f *testing.F) {
	f.Add("a=ice-ufrag:abcd\r\na=ice-pwd:xyz\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n")
	f.Add("a=candidate:1 1 udp 1 127.0.0.1 1 typ host\r\n")
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, s string) {
		fr, err := Parse(s)
		if err != nil {
			return
		}
		for _, c := range fr.Candidates {
			if !strings.HasPrefix(c.Candidate, "candidate:") {
				t.Fatalf("candidate %q", c.Candidate)
			}
		}
	})
}

func TestParse(t *testing.T) {
	f, err := Parse("a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\na=end-of-candidates\r\n")
	if err != nil || f.Ufrag != "EsAw" || f.Pwd != "P2uYro0UCOQ4zxjKXaWCBui1" || f.Mid != "0" || len(f.Candidates) != 1 ||
		*f.Candidates[0].SDPMid != "0" || *f.Candidates[0].SDPMLineIndex != 0 || !f.EndOfCandidates {
		t.Fatalf("%v %+v", err, f)
	}
	again, err := Parse(f.String())
	if err != nil || again.String() != f.String() {
		t.Fatalf("written and read again: %v\n%s\nwant\n%s", err, again.String(), f.String())
	}
	if _, err := Parse("a=candidate:1 1 udp 1 1.2.3.4 1 typ host\r\n"); err == nil {
		t.Fatal("a candidate with no section must be refused")
	}
	if _, err := Parse("x=unknown\r\n"); err == nil {
		t.Fatal("a line that is no SDP attribute must be refused")
	}
}

const offer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:old1\r\na=ice-pwd:oldpassword1\r\na=mid:0\r\n" +
	"a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:old1\r\na=ice-pwd:oldpassword1\r\na=mid:1\r\n"

func TestWithCredentialsAndFromSDP(t *testing.T) {
	f := FromSDP(offer)
	if f.Ufrag != "old1" || f.Pwd != "oldpassword1" || f.Media != "m=video 9 UDP/TLS/RTP/SAVPF 96" || f.Mid != "0" ||
		len(f.Candidates) != 1 || !f.EndOfCandidates {
		t.Fatalf("FromSDP = %+v", f)
	}
	restarted := WithCredentials(offer, "new2", "newpassword2")
	if strings.Contains(restarted, "old1") || strings.Count(restarted, "a=ice-ufrag:new2\r\n") != 2 ||
		strings.Count(restarted, "a=ice-pwd:newpassword2\r\n") != 2 {
		t.Fatalf("credentials not replaced everywhere:\n%s", restarted)
	}
	if strings.Contains(restarted, "a=candidate") || strings.Contains(restarted, "end-of-candidates") {
		t.Fatalf("the old candidates stayed:\n%s", restarted)
	}
	if !strings.Contains(restarted, "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n") || !strings.HasPrefix(restarted, "v=0\r\n") {
		t.Fatalf("the rest of the description changed:\n%s", restarted)
	}
}
