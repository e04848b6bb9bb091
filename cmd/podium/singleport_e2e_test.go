package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"podium/clients/goclient"
	"podium/internal/testenv"
	"podium/internal/testmedia"
)

// TestSinglePortE2E runs `podium serve --single-port` with TLS and reaches
// everything through the HTTP port alone, as a school whose firewall lets
// only TCP 443 out: the classroom page and the websocket over HTTPS, one
// classroom over ICE-TCP, one relayed by TURN over TCP and one by TURN
// over TLS; each decodes the teacher's video.
func TestSinglePortE2E(t *testing.T) {
	node := testenv.StartPodiumWith(t, testenv.PodiumOptions{TLS: true, Args: []string{"--single-port", "--record=false"}})
	// pion checks a TURN-over-TLS server against the system roots only
	// (pion/webrtc has no setting for it), and gorilla's default dialer
	// does too: point them at the node's certificate. Go reads the
	// variable when it first loads the roots, which no test of this
	// package does before.
	t.Setenv("SSL_CERT_FILE", node.CertFile)
	u, err := url.Parse(node.URL)
	if err != nil {
		t.Fatal(err)
	}
	port := u.Port()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("page over https on the port", func(t *testing.T) {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: node.RootCAs}}}
		defer client.CloseIdleConnections()
		resp, err := client.Get(node.URL + "/classroom.html")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "<html") || resp.TLS == nil {
			t.Fatalf("classroom page: %d, tls %v, %d bytes", resp.StatusCode, resp.TLS != nil, len(body))
		}
	})

	files := testmedia.ForTest(t)
	teacher, err := goclient.Dial(ctx, node.URL, node.Token("one-port", "teacher", "Ms Rivera"), goclient.Options{})
	if err != nil {
		t.Fatalf("websocket over wss on the port: %v", err)
	}
	defer teacher.Close()
	j, err := teacher.Join(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	// The join reply names the shared port for TURN over TCP and TLS.
	var urls []string
	for _, s := range j.ICEServers {
		urls = append(urls, s.URLs...)
	}
	turnTCP := "turn:127.0.0.1:" + port + "?transport=tcp"
	turnTLS := "turns:127.0.0.1:" + port + "?transport=tcp"
	if !slices.Contains(urls, turnTCP) || !slices.Contains(urls, turnTLS) {
		t.Fatalf("join reply ICE servers %v lack %s and %s", urls, turnTCP, turnTLS)
	}
	defer publishTestCamera(ctx, t, teacher, "teacher", files.VP8[1])()

	for _, tc := range []struct {
		name string
		// turnURL is the one TURN URL the classroom keeps, with the relay
		// forced; "" keeps none (ICE-TCP to the node's own candidates).
		turnURL string
		// network is what the classroom gathers on. A relayed one gathers
		// UDP only, for its relay candidate (a relayed address is UDP):
		// pion still tries ICE-TCP to the node's TCP candidates under the
		// relay policy, so with TCP4 it would skip the relay. Its only way
		// to the node is then TCP to the one TURN URL it keeps.
		network webrtc.NetworkType
	}{
		{"ice-tcp", "", webrtc.NetworkTypeTCP4},
		{"turn over tcp", turnTCP, webrtc.NetworkTypeUDP4},
		{"turn over tls", turnTLS, webrtc.NetworkTypeUDP4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api, err := goclient.NewLoopbackAPIOn(tc.network)
			if err != nil {
				t.Fatal(err)
			}
			video := newVideoReceiver(t, strings.ReplaceAll(tc.name, " ", "-"))
			c, err := goclient.Dial(ctx, node.URL, node.Token("one-port", "classroom", tc.name), goclient.Options{
				API: api, OnTrack: video.onTrack,
				AdjustICE: func(cfg *webrtc.Configuration) {
					var kept []webrtc.ICEServer
					for _, s := range cfg.ICEServers {
						if tc.turnURL != "" && slices.Contains(s.URLs, tc.turnURL) {
							s.URLs = []string{tc.turnURL}
							kept = append(kept, s)
						}
					}
					cfg.ICEServers = kept
					if tc.turnURL != "" {
						cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
					}
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { c.Close(); video.wg.Wait() }()
			if _, err := c.Join(ctx, true); err != nil {
				t.Fatal(err)
			}
			testenv.WaitFor(t, 60*time.Second, tc.name+" frames of the teacher", func() bool { return video.frames.Load() > 60 })
			pair := c.ReceivePair()
			if pair == nil {
				t.Fatal("no selected candidate pair")
			}
			remote := net.JoinHostPort(pair.Remote.Address, fmt.Sprint(pair.Remote.Port))
			switch {
			case tc.turnURL == "" && (pair.Local.Protocol != webrtc.ICEProtocolTCP || pair.Remote.Port != uint16(mustAtoi(t, port))):
				t.Errorf("ICE-TCP classroom's pair %s → %s (%s), want TCP to the shared port %s", pair.Local.Address, remote, pair.Local.Protocol, port)
			case tc.turnURL != "" && pair.Local.Typ != webrtc.ICECandidateTypeRelay:
				t.Errorf("relayed classroom's local candidate is %s, want relay", pair.Local.Typ)
			}
			frames, size := video.decodedFrames(t)
			if frames < 30 || size != "640,360" {
				t.Errorf("%s decoded %d frames of %s, want at least 30 of 640,360", tc.name, frames, size)
			}
			t.Logf("%s: pair %s %s:%d → %s, %d frames of %s decoded", tc.name, pair.Local.Typ, pair.Local.Address, pair.Local.Port, remote, frames, size)
		})
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("%q is not a number: %v", s, err)
	}
	return n
}
