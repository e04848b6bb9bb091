package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// StartRedis runs a real redis-server on a free 127.0.0.1 port with its own
// temporary directory and no persistence, waits until it answers PING, and
// returns its address ("127.0.0.1:port"). The server is stopped when the
// test ends; its log is printed with t.Log when the test failed. It skips
// (or, in CI, fails) the test when redis-server is missing.
func StartRedis(t testing.TB) (addr string) {
	t.Helper()
	bin := RequireBinary(t, "redis-server")
	dir := t.TempDir()
	port := FreePort(t)
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	logPath := filepath.Join(dir, "redis.log")
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", logPath)
	cmd.SysProcAttr = childAttr(nil)
	done, logTail := startServer(t, cmd, "redis-server", logPath)
	// Registered after TempDir, so the server is gone before its directory
	// is removed.
	t.Cleanup(func() {
		terminate(cmd.Process, done, 10*time.Second)
		if t.Failed() {
			t.Logf("redis-server %s log:\n%s", addr, logTail())
		}
	})

	waitServing(t, "redis-server on "+addr, "answer PING", 30*time.Second, done, func() error { return redisPing(addr) }, logTail)
	return addr
}

// redisPing sends one PING over RESP and expects +PONG.
func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return err
	}
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return fmt.Errorf("send PING: %w", err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read PING reply: %w", err)
	}
	if line != "+PONG\r\n" {
		return errors.New("PING answered " + strconv.Quote(line))
	}
	return nil
}
