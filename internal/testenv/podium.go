package testenv

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Podium is a `podium serve` process started by a test: the real binary on
// loopback ports with a temporary data dir and a known secret.
type Podium struct {
	URL     string // http://127.0.0.1:<port> (https:// with PodiumOptions.TLS)
	Secret  string
	DataDir string
	// Ports the node's media listens on.
	ICEUDPPort, ICETCPPort, TURNUDPPort, TURNTCPPort int
	// CertFile is the node's self-signed certificate and RootCAs a pool
	// trusting it, with PodiumOptions.TLS (else empty and nil).
	CertFile string
	RootCAs  *x509.CertPool

	t    testing.TB
	bin  string
	args []string
	env  []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error // the process's exit error once done
	log  *syncBuffer
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// PodiumBinary builds cmd/podium once per test process (without -race, so
// it starts fast) and returns its path.
func PodiumBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "podium-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "podium")
		cmd := exec.Command("go", "build", "-o", builtBin, "podium/cmd/podium")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build podium: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// freeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago.
// StartPodium runs `podium serve` on free loopback ports with a temporary
// data dir and a known secret, waits for /readyz, and stops it when the test
// ends. extraArgs are appended to serve's flags. The node's log is printed
// with t.Log when the test fails.
func StartPodium(t testing.TB, extraArgs ...string) *Podium {
	t.Helper()
	return StartPodiumWith(t, PodiumOptions{Args: extraArgs})
}

// PodiumOptions are what a test may choose about a node StartPodiumWith
// starts; the zero value is StartPodium's node.
type PodiumOptions struct {
	// Addr is the "127.0.0.1:port" the node serves HTTP on; empty picks a
	// free port. A test picks it (with FreeAddr) when it must know the
	// node's URL before the node starts, as for --cluster-advertise-url.
	Addr string
	// Secret signs the node's tokens (at least 16 characters); empty picks
	// a fresh one. The nodes of one cluster share one, so a token is valid
	// on every node.
	Secret string
	// Args are appended to serve's flags; a flag given here wins over
	// testenv's own.
	Args []string
	// TLS serves HTTPS with a fresh self-signed certificate for 127.0.0.1
	// and localhost (TestCert).
	TLS bool
}

// StartPodiumWith is StartPodium with the node's address and secret chosen
// by the test.
func StartPodiumWith(t testing.TB, opts PodiumOptions) *Podium {
	t.Helper()
	p := &Podium{
		t:           t,
		bin:         PodiumBinary(t),
		Secret:      opts.Secret,
		DataDir:     t.TempDir(),
		ICEUDPPort:  freeUDPPort(t),
		ICETCPPort:  FreePort(t),
		TURNUDPPort: freeUDPPort(t),
		TURNTCPPort: FreePort(t),
		log:         &syncBuffer{},
	}
	if p.Secret == "" {
		p.Secret = "testenv-secret-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	addr := opts.Addr
	if addr == "" {
		addr = FreeAddr(t)
	}
	p.URL = "http://" + addr
	var tlsArgs []string
	if opts.TLS {
		var keyFile string
		p.CertFile, keyFile, p.RootCAs = TestCert(t)
		p.URL = "https://" + addr
		tlsArgs = []string{"--tls-cert", p.CertFile, "--tls-key", keyFile}
	}
	p.args = append([]string{"serve",
		"--http-addr", addr,
		"--data-dir", p.DataDir,
		"--bind-ip", "127.0.0.1",
		"--ice-udp-port", strconv.Itoa(p.ICEUDPPort),
		"--ice-tcp-port", strconv.Itoa(p.ICETCPPort),
		"--turn-udp-port", strconv.Itoa(p.TURNUDPPort),
		"--turn-tcp-port", strconv.Itoa(p.TURNTCPPort),
		"--log-level", "debug",
	}, append(tlsArgs, opts.Args...)...)
	// Other parts' directories default relative to the working directory,
	// which is the data dir; the secret goes through the environment so it
	// does not show in process listings.
	p.env = append(os.Environ(), "PODIUM_SECRET="+p.Secret)
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("podium %s log:\n%s", p.URL, p.log.String())
		}
	})
	p.start()
	return p
}

func (p *Podium) start() {
	p.t.Helper()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Dir = p.DataDir
	cmd.Env = p.env
	cmd.Stdout = p.log
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start podium: %v", err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.err = cmd, done, nil
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	deadline := time.Now().Add(60 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.RootCAs}}}
	defer client.CloseIdleConnections()
	for {
		select {
		case <-done:
			p.t.Fatalf("podium exited before it was ready: %v\n%s", p.exitErr(), p.log.String())
		default:
		}
		resp, err := client.Get(p.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("podium not ready within 60 s\n%s", p.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *Podium) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Token mints a token for the node with `podium token`.
func (p *Podium) Token(room, role, name string) string {
	p.t.Helper()
	return p.mint("--room", room, "--role", role, "--name", name)
}

// StudentToken mints a student's replay token; grant is what it covers
// ("--course", "maths-7", "--lesson", "l1", "--all-lessons").
func (p *Podium) StudentToken(name string, grant ...string) string {
	p.t.Helper()
	return p.mint(append([]string{"--role", "student", "--name", name}, grant...)...)
}

func (p *Podium) mint(args ...string) string {
	p.t.Helper()
	cmd := exec.Command(p.bin, append([]string{"token", "--secret", p.Secret, "--ttl", "2h"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		p.t.Fatalf("podium token: %v: %s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// signal sends sig and waits for the process to exit (up to 60 s, then
// SIGKILL). It returns the exit error (nil for exit status 0).
func (p *Podium) signal(sig syscall.Signal) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return p.exitErr()
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return errors.New("podium did not exit within 60 s of " + sig.String())
	}
	return p.exitErr()
}

// Stop sends SIGTERM and waits for the graceful exit; it returns the exit
// error (nil when podium exited with status 0).
func (p *Podium) Stop() error { return p.signal(syscall.SIGTERM) }

// Kill kills the process (SIGKILL), as a crash would, and waits for it.
func (p *Podium) Kill() { _ = p.signal(syscall.SIGKILL) }

// Restart stops the node gracefully (unless it has exited already, as after
// Kill) and starts it again on the same ports and data dir.
func (p *Podium) Restart() {
	p.t.Helper()
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
	default:
		if err := p.Stop(); err != nil {
			p.t.Logf("podium stop before restart: %v", err)
		}
	}
	p.start()
}

// PID returns the process id of the node's current process.
func (p *Podium) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// Log returns what the node has logged so far.
func (p *Podium) Log() string { return p.log.String() }

// Wait waits for the process to exit by itself (or ctx).
func (p *Podium) Wait(ctx context.Context) error {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		return p.exitErr()
	case <-ctx.Done():
		return ctx.Err()
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(b)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
