// Command abuse measures what one token and one address can take from a
// Podium node (docs/SECURITY.md): it opens WHEP sessions with a single
// viewer token until told to stop, then holds idle TCP connections from one
// address, and reports what the server refused and what it cost (resident
// memory and open descriptors from /proc, goroutines from /metrics), and
// whether another address was still served meanwhile.
//
//	go run ./bench/abuse --server http://127.0.0.1:8080 --token <viewer token of a live lesson> \
//	    --lesson demo --sessions 3000 --idle 1100 --pid $(pgrep -f 'podium serve')
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

func main() {
	server := flag.String("server", "http://127.0.0.1:8080", "node base URL")
	token := flag.String("token", "", "one viewer token of the lesson")
	lesson := flag.String("lesson", "demo", "a live lesson whose teacher sends camera and microphone")
	sessions := flag.Int("sessions", 3000, "WHEP sessions to try with the one token")
	idle := flag.Int("idle", 1100, "idle TCP connections to open from this address")
	pid := flag.Int("pid", 0, "server process id (for RSS and descriptors)")
	other := flag.String("other-addr", "127.0.0.2", "another local address to check the node still answers")
	flag.Parse()
	if *token == "" {
		fmt.Fprintln(os.Stderr, "abuse: --token is required")
		os.Exit(2)
	}
	offer, err := recvOffer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "abuse:", err)
		os.Exit(1)
	}
	report := func(stage string) {
		fmt.Printf("%-28s rss %6.1f MiB  fds %5d  goroutines %s\n", stage, rssMiB(*pid), fds(*pid), metric(*server, "go_goroutines"))
	}
	report("before")

	// One token, many WHEP sessions.
	start := time.Now()
	status := map[int]int{}
	var locations []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan struct{})
	client := &http.Client{Timeout: 20 * time.Second}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				req, _ := http.NewRequest("POST", *server+"/whep/"+*lesson, strings.NewReader(offer))
				req.Header.Set("Content-Type", "application/sdp")
				req.Header.Set("Authorization", "Bearer "+*token)
				resp, err := client.Do(req)
				code := 0
				if err == nil {
					code = resp.StatusCode
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				mu.Lock()
				status[code]++
				if code == http.StatusCreated {
					locations = append(locations, resp.Header.Get("Location"))
				}
				mu.Unlock()
			}
		}()
	}
	for range *sessions {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	fmt.Printf("WHEP with one viewer token: %d tries in %.1f s -> %v (status: count)\n", *sessions, time.Since(start).Seconds(), status)
	report("after WHEP sessions")

	// Idle connections from one address.
	host := strings.TrimPrefix(strings.TrimPrefix(*server, "http://"), "https://")
	var conns []net.Conn
	dialErrs := 0
	for range *idle {
		c, err := net.DialTimeout("tcp", host, 2*time.Second)
		if err != nil {
			dialErrs++
			continue
		}
		conns = append(conns, c)
	}
	refused := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		b := make([]byte, 64)
		if n, _ := c.Read(b); n > 0 && strings.Contains(string(b[:n]), " 429 ") {
			refused++
		}
	}
	fmt.Printf("idle connections from one address: %d opened, %d answered 429 and closed, %d dial errors\n", len(conns), refused, dialErrs)
	healthz := "no answer"
	oc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP(*other)}}).DialContext}}
	if resp, err := oc.Get(*server + "/healthz"); err == nil {
		healthz = resp.Status
		resp.Body.Close()
	} else {
		healthz = err.Error()
	}
	fmt.Printf("/healthz from %s meanwhile: %s\n", *other, healthz)
	report("with idle connections")
	for _, c := range conns {
		c.Close()
	}
	for _, loc := range locations {
		req, _ := http.NewRequest("DELETE", *server+loc, nil)
		req.Header.Set("Authorization", "Bearer "+*token)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	time.Sleep(2 * time.Second)
	report("after cleanup")
}

// recvOffer makes a browser-like WHEP offer (receive video and audio).
func recvOffer() (string, error) {
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return "", err
	}
	defer pc.Close()
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return "", err
		}
	}
	o, err := pc.CreateOffer(nil)
	if err != nil {
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(o); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	select {
	case <-gathered:
	case <-ctx.Done():
	}
	return pc.LocalDescription().SDP, nil
}

func rssMiB(pid int) float64 {
	if pid == 0 {
		return 0
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kb float64
		if _, err := fmt.Sscanf(sc.Text(), "VmRSS: %f kB", &kb); err == nil {
			return kb / 1024
		}
	}
	return 0
}

func fds(pid int) int {
	if pid == 0 {
		return 0
	}
	m, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	return len(m)
}

func metric(server, name string) string {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}).DialContext}}
	resp, err := c.Get(server + "/metrics")
	if err != nil {
		return "?"
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return v
		}
	}
	return "?"
}
