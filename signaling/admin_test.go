package signaling

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"

	"podium/clients/goclient"
	"podium/internal/testmedia"
	"podium/sfu"
)

func call(t *testing.T, method, url, token, body string) (int, map[string]any, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m, string(b)
}

func TestAdminAPI(t *testing.T) {
	ts := newTestServer(t)
	admin := ts.token(t, "*", sfu.RoleAdmin, "ops")
	scoped := ts.token(t, "bio", sfu.RoleAdmin, "bio admin")
	teacherTok := ts.token(t, "bio", sfu.RoleTeacher, "T")

	for _, tc := range []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"no token", "GET", "/api/lessons", "", "", 401, "unauthorized"},
		{"teacher token", "GET", "/api/lessons", teacherTok, "", 403, "forbidden"},
		{"create", "POST", "/api/lessons", admin, `{"id":"bio","title":"Cells"}`, 201, ""},
		{"create twice", "POST", "/api/lessons", admin, `{"id":"bio"}`, 409, "conflict"},
		{"bad id", "POST", "/api/lessons", admin, `{"id":"../etc"}`, 400, "bad_request"},
		{"bad json", "POST", "/api/lessons", admin, `{"id":`, 400, "bad_request"},
		{"unknown field", "POST", "/api/lessons", admin, `{"id":"x","colour":"red"}`, 400, "bad_request"},
		{"scoped admin other room", "POST", "/api/lessons", scoped, `{"id":"chem"}`, 403, "forbidden"},
		{"get", "GET", "/api/lessons/bio", scoped, "", 200, ""},
		{"get missing", "GET", "/api/lessons/none", admin, "", 404, "not_found"},
		{"token", "POST", "/api/tokens", admin, `{"room":"bio","role":"classroom","name":"Valley","ttl":"30m"}`, 201, ""},
		{"token bad role", "POST", "/api/tokens", admin, `{"room":"bio","role":"king","name":"x"}`, 400, "bad_request"},
		{"token bad ttl", "POST", "/api/tokens", admin, `{"room":"bio","role":"viewer","name":"x","ttl":"forever"}`, 400, "bad_request"},
		{"token other room", "POST", "/api/tokens", scoped, `{"room":"chem","role":"viewer","name":"x"}`, 403, "forbidden"},
		{"profiles without token", "GET", "/debug/pprof/goroutine", "", "", 401, "unauthorized"},
		{"profiles for a teacher", "GET", "/debug/pprof/goroutine", teacherTok, "", 403, "forbidden"},
		{"profiles for a lesson admin", "GET", "/debug/pprof/goroutine", scoped, "", 403, "forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, raw := call(t, tc.method, ts.URL+tc.path, tc.token, tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, raw)
			}
			if tc.code != "" && (body["code"] != tc.code || body["error"] == "") {
				t.Fatalf("body %s, want code %s", raw, tc.code)
			}
		})
	}
	if n := len(ts.SFU.Rooms.List()); n != 1 {
		t.Fatalf("%d lessons, want only bio", n)
	}
	// A server-wide admin reads a goroutine profile naming the sfu's code.
	if status, _, raw := call(t, "GET", ts.URL+"/debug/pprof/goroutine?debug=1", admin, ""); status != 200 || !strings.Contains(raw, "podium/sfu.") {
		t.Fatalf("goroutine profile: status %d, %.200s", status, raw)
	}

	// A minted classroom token joins; the list shows the participant; DELETE
	// ends the lesson for everyone in it.
	teacher, _ := ts.join(t, "bio", sfu.RoleTeacher, "T", goclient.Options{})
	_, tok, _ := call(t, "POST", ts.URL+"/api/tokens", admin, `{"room":"bio","role":"classroom","name":"Valley"}`)
	c, err := goclient.Dial(testCtx(t), ts.URL, tok["token"].(string), goclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Join(testCtx(t), true); err != nil {
		t.Fatal(err)
	}
	_, _, list := call(t, "GET", ts.URL+"/api/lessons", admin, "")
	if !strings.Contains(list, `"Valley"`) || !strings.Contains(list, `"Cells"`) {
		t.Fatalf("list lacks the lesson or its participant: %s", list)
	}
	if status, _, raw := call(t, "DELETE", ts.URL+"/api/lessons/bio", admin, ""); status != 204 {
		t.Fatalf("delete: %d %s", status, raw)
	}
	for _, cl := range []*goclient.Client{teacher, c} {
		waitEvent(t, cl, "lessonEnded", nil)
		<-cl.Done()
	}
	if status, _, _ := call(t, "GET", ts.URL+"/api/lessons/bio", admin, ""); status != 404 {
		t.Fatalf("ended lesson still listed: %d", status)
	}
}

func TestWHIPErrors(t *testing.T) {
	ts := newTestServer(t)
	teacher := ts.token(t, "w", sfu.RoleTeacher, "T")
	req := func(method, path, ctype, token, body string) (int, string) {
		r, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s %s: no CORS header", method, path)
		}
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name, method, path, ctype, token, body string
		status                                 int
	}{
		{"no token", "POST", "/whip/w", "application/sdp", "", "v=0", 401},
		{"wrong room", "POST", "/whip/other", "application/sdp", teacher, "v=0", 403},
		{"wrong type", "POST", "/whip/w", "application/json", teacher, "{}", 415},
		{"bad sdp", "POST", "/whip/w", "application/sdp", teacher, "hello", 400},
		// Parses, but no ICE credentials or fingerprint: refused by the
		// publisher's connection after the lesson would have been made.
		{"sdp without ice", "POST", "/whip/w", "application/sdp", teacher,
			"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\n", 400},
		{"whep no lesson", "POST", "/whep/w", "application/sdp", teacher, "v=0", 404},
		{"delete unknown", "DELETE", "/whip/w/abc", "", teacher, "", 404},
		{"patch unknown", "PATCH", "/whip/w/abc", "application/trickle-ice-sdpfrag", teacher, "", 404},
		{"preflight", "OPTIONS", "/whip/w", "", "", "", 204},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := req(tc.method, tc.path, tc.ctype, tc.token, tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if status >= 400 && !strings.Contains(body, `"code"`) {
				t.Fatalf("error body not JSON: %s", body)
			}
		})
	}
	if rooms := ts.SFU.Rooms.List(); len(rooms) != 0 && !rooms[0].Ended() {
		t.Fatalf("refused WHIP requests left lesson %q live", rooms[0].ID())
	}
}

// TestWHEPOfferWithoutTheLessonsCodec: a WHEP player that offers only
// H.264 to a lesson whose camera is VP8 is told why (422 codec_mismatch),
// and the refusal leaves no participant behind.
func TestWHEPOfferWithoutTheLessonsCodec(t *testing.T) {
	files := testmedia.ForTest(t)
	ts := newTestServer(t)
	teacher, _ := ts.join(t, "vp8", sfu.RoleTeacher, "Ms T", goclient.Options{})
	publishFile(t, teacher, files.VP8[1], "")
	waitEvent(t, teacher, "trackPublished", func(d json.RawMessage) bool { return strings.Contains(string(d), "camera") })
	room, ok := ts.SFU.Rooms.Room("vp8")
	if !ok {
		t.Fatal("no lesson")
	}
	before := len(room.Participants())

	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
		PayloadType: 102,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered

	req, _ := http.NewRequest("POST", ts.URL+"/whep/vp8", strings.NewReader(pc.LocalDescription().SDP))
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer "+ts.token(t, "vp8", sfu.RoleViewer, "H.264 only"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Code, Error string }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusUnprocessableEntity || body.Code != "codec_mismatch" {
		t.Fatalf("an H.264-only offer to a VP8 lesson: %d %+v, want 422 codec_mismatch", resp.StatusCode, body)
	}
	t.Logf("refused: %s", body.Error)
	if after := len(room.Participants()); after != before {
		t.Fatalf("the refused player left %d participants (had %d)", after, before)
	}
}
