package ingest

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"podium/internal/rtspcam"
	"podium/internal/testenv"
	"podium/sfu"
)

// The URL policy as registration applies it: scheme, host and port rules,
// then the default allow list (private ranges, CGNAT, ULA, loopback) and the
// addresses refused whatever the list says.
func TestSourceURLPolicy(t *testing.T) {
	m, _ := newTestManager(t)
	for _, tc := range []struct {
		url    string
		ok     bool
		reason string // part of the refusal
	}{
		{"rtsp://10.0.0.5:554/live", true, ""},
		{"rtsp://172.16.3.4/live", true, ""},
		{"rtsp://172.31.255.254/live", true, ""},
		{"rtsp://192.168.1.64:554/Streaming/101", true, ""},
		{"rtsp://100.64.0.9/county", true, ""},
		{"rtsp://100.127.255.1/county", true, ""},
		{"rtsp://127.0.0.1:8554/cam", true, ""},
		{"rtsp://[::1]:8554/cam", true, ""},
		{"rtsp://[fd12:3456::7]/cam", true, ""},
		{"rtsps://admin:pw@10.1.2.3:322/cam", true, ""},
		{"rtsp://camera.school.internal/cam", true, ""}, // a name: checked when dialed
		{"rtsp://10.0.0.5:65535/live", true, ""},
		{"rtsp://10.0.0.5:1/live", true, ""},

		{"rtsp://169.254.169.254:80/", false, "link-local"},
		{"rtsp://169.254.170.2/v2/credentials", false, "link-local"},
		{"rtsp://[fe80::1]/cam", false, "link-local"},
		{"rtsp://[fe80::1%25eth0]/cam", false, "link-local"},
		{"rtsp://[::ffff:169.254.169.254]/", false, "link-local"},
		{"rtsp://[64:ff9b::a9fe:a9fe]/", false, "NAT64"},
		{"rtsp://[fd00:ec2::254]/", false, "metadata"},
		{"rtsp://100.100.100.200/", false, "metadata"},
		{"rtsp://0.0.0.0:8554/", false, "unspecified"},
		{"rtsp://0.1.2.3:8554/", false, "0.0.0.0/8"},
		{"rtsp://[::]:8554/", false, "unspecified"},
		{"rtsp://224.0.0.1/", false, "multicast"},
		{"rtsp://239.255.255.250/", false, "multicast"},
		{"rtsp://[ff02::1]/", false, "multicast"},
		{"rtsp://255.255.255.255/", false, "broadcast"},
		{"rtsp://8.8.8.8/", false, "not in the networks"},
		{"rtsp://[2001:db8::1]/", false, "not in the networks"},
		{"rtsp://172.32.0.1/", false, "not in the networks"},
		{"rtsp://10.0.0.5:0/live", false, "port must be 1-65535"},
		{"rtsp://10.0.0.5:99999/live", false, "port must be 1-65535"},
		{"rtsp://10.0.0.5:/live", false, "port must be 1-65535"},
		{"http://10.0.0.5/live", false, "scheme must be rtsp or rtsps"},
		{"file:///etc/passwd", false, "scheme must be rtsp or rtsps"},
		{"rtsp:///live", false, "no host"},
	} {
		info, err := m.Add("policy", SourceConfig{URL: tc.url})
		if tc.ok {
			if err != nil {
				t.Errorf("%s refused: %v", tc.url, err)
			} else if err := m.Remove("policy", info.ID); err != nil {
				t.Errorf("%s: remove: %v", tc.url, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s accepted", tc.url)
			_ = m.Remove("policy", info.ID)
			continue
		}
		if !strings.Contains(err.Error(), tc.reason) || !strings.Contains(err.Error(), "invalid source") {
			t.Errorf("%s: error %q, want it to say %q", tc.url, err, tc.reason)
		}
	}
}

// An operator's list replaces the default; link-local stays refused even
// when the list covers it.
func TestAllowListReplacesDefault(t *testing.T) {
	a, err := ParseAllowList([]string{"203.0.113.0/24", "10.9.8.7", "0.0.0.0/0", "::/0"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ip string
		ok bool
	}{
		{"203.0.113.9", true},
		{"8.8.8.8", true}, // 0.0.0.0/0
		{"2001:db8::1", true},
		{"169.254.169.254", false},
		{"fe80::1", false},
		{"::ffff:169.254.169.254", false},
		{"64:ff9b::a9fe:a9fe", false},
		{"fd00:ec2::254", false},
		{"224.0.0.1", false},
		{"255.255.255.255", false},
		{"0.0.0.0", false},
		{"::", false},
	} {
		err := a.Check(netip.MustParseAddr(tc.ip))
		if (err == nil) != tc.ok {
			t.Errorf("%s: allowed=%v, want %v (%v)", tc.ip, err == nil, tc.ok, err)
		}
	}
	narrow, err := ParseAllowList([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	if narrow.Check(netip.MustParseAddr("127.0.0.1")) == nil || narrow.Check(netip.MustParseAddr("10.1.1.1")) != nil {
		t.Fatal("a narrow list did not replace the default")
	}
	for _, bad := range []string{"10.0.0.0/33", "cam.local", "10.0.0.0/8/8", "fe80::/10%eth0"} {
		if _, err := ParseAllowList([]string{bad}); err == nil {
			t.Errorf("%q accepted as an allowed network", bad)
		}
	}
}

// Over the admin API: the metadata address and out-of-range ports are
// refused with 400 and a reason, and no source or lesson is created.
func TestAPIRefusesDisallowedSources(t *testing.T) {
	m, rooms := newTestManager(t)
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	for _, tc := range []struct{ url, reason string }{
		{"rtsp://169.254.169.254:80/latest/meta-data/", "link-local"},
		{"rtsp://u:hunter22@169.254.169.254/", "link-local"},
		{"rtsp://10.0.0.5:0/live", "port must be 1-65535"},
		{"rtsp://10.0.0.5:99999/live", "port must be 1-65535"},
		{"rtsp://8.8.8.8:554/live", "--ingest-allow-cidr"},
	} {
		body, _ := json.Marshal(map[string]string{"url": tc.url})
		resp, err := http.Post(srv.URL+"/api/lessons/ssrf/sources", "application/json", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var v struct{ Code, Error string }
		_ = json.Unmarshal(raw, &v)
		if resp.StatusCode != http.StatusBadRequest || v.Code != "invalid_source" || !strings.Contains(v.Error, tc.reason) {
			t.Errorf("%s: %d %s", tc.url, resp.StatusCode, raw)
		}
		if strings.Contains(string(raw), "hunter22") {
			t.Errorf("password in response: %s", raw)
		}
	}
	if got := m.List("ssrf"); len(got) != 0 {
		t.Fatalf("refused registrations left sources: %+v", got)
	}
	if _, ok := rooms.Room("ssrf"); ok {
		t.Fatal("a refused registration created the lesson")
	}
}

// A name that resolves to a refused address is refused when dialed, after
// resolution (what DNS rebinding would exploit): nothing connects, and the
// source's lastError names neither the address nor anything that answered.
func TestResolvedAddressRefusedAtConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.6 internal-box\r\n"))
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	rooms := sfu.NewRooms(testLogger(t))
	allow, err := ParseAllowList([]string{"10.0.0.0/8"}) // loopback not allowed
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{Rooms: rooms, Log: testLogger(t), Allow: allow, Backoff: Backoff{Min: 100 * time.Millisecond, Max: 200 * time.Millisecond}, ReadTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); rooms.EndAll("test over") })

	// The literal is refused at registration ...
	if _, err := m.Add("rebind", SourceConfig{URL: "rtsp://127.0.0.1:" + itoa(port) + "/x"}); err == nil {
		t.Fatal("127.0.0.1 registered although loopback is not allowed")
	}
	// ... a name passes registration and is refused when dialed.
	for _, transport := range []Transport{TransportTCP, TransportAuto} {
		info, err := m.Add("rebind", SourceConfig{URL: "rtsp://localhost:" + itoa(port) + "/x", Transport: transport})
		if err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 10*time.Second, "the refusal", func() bool {
			got, _ := m.Get("rebind", info.ID)
			return got.State == StateRetrying && got.Reconnects >= 2
		})
		got, _ := m.Get("rebind", info.ID)
		if !strings.Contains(got.LastError, "not in the networks sources may reach") {
			t.Fatalf("lastError = %q", got.LastError)
		}
		for _, leak := range []string{"127.0.0.1", "SSH", "OpenSSH", "internal-box", itoa(port)} {
			if strings.Contains(got.LastError, leak) {
				t.Fatalf("lastError %q reveals %q", got.LastError, leak)
			}
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Fatalf("the refused address got %d connections", n)
	}
}

// A transcoded camera registered by name: ffmpeg is given the address the
// checked RTSP session connected to, never the name, and the source works.
func TestTranscoderGetsCheckedAddress(t *testing.T) {
	cam := rtspcam.Start(t, rtspcam.Options{Codec: "h265"})
	m, _ := newTestManager(t)
	byName := strings.Replace(cam.URL("", ""), "127.0.0.1", "localhost", 1)
	info, err := m.Add("named", SourceConfig{URL: byName, Transport: TransportTCP})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(cam.URL("", ""))
	if err != nil {
		t.Fatal(err)
	}
	var cmdline string
	testenv.WaitFor(t, 25*time.Second, "ffmpeg to start", func() bool {
		cmdline = ffmpegCmdline(u.Port())
		return cmdline != ""
	})
	if strings.Contains(cmdline, "localhost") || !strings.Contains(cmdline, cam.URL("", "")) {
		t.Fatalf("ffmpeg input is not the checked address: %q", cmdline)
	}
	waitState(t, m, "named", info.ID, StateLive)
}

// ffmpegCmdline returns the command line of this process's ffmpeg child
// whose arguments mention the camera's port, "" if none runs.
func ffmpegCmdline(port string) string {
	self := itoa(os.Getpid())
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		stat, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) < 2 || fields[1] != self {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(raw), "\x00", " ")
		if strings.Contains(cmd, "-i rtsp://") && strings.Contains(cmd, ":"+port+"/") {
			return cmd
		}
	}
	return ""
}

// A SETUP answer naming a refused source address (where UDP would be sent)
// is refused; an allowed one or none passes.
func TestTransportSourceChecked(t *testing.T) {
	m, _ := newTestManager(t)
	s := &Source{m: m}
	for _, tc := range []struct {
		header string
		ok     bool
	}{
		{"RTP/AVP;unicast;client_port=5000-5001;server_port=6000-6001", true},
		{"RTP/AVP;unicast;client_port=5000-5001;server_port=6000-6001;source=10.0.0.7", true},
		{"RTP/AVP;unicast;client_port=5000-5001;server_port=6000-6001;source=169.254.169.254", false},
		{"RTP/AVP;unicast;client_port=5000-5001;server_port=6000-6001;source=8.8.8.8", false},
	} {
		res := &base.Response{StatusCode: base.StatusOK, Header: base.Header{"Transport": base.HeaderValue{tc.header}}}
		err := s.checkTransportSource(res)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.header, err)
		}
		if err != nil && (strings.Contains(err.Error(), "169.254") || strings.Contains(err.Error(), "8.8.8.8")) {
			t.Errorf("error names the address: %v", err)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
