package redistest

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// do sends one inline command to addr and returns the first reply line.
func do(t *testing.T, addr, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

func TestServer_AppendOnlySurvivesKill(t *testing.T) {
	s := Start(t, Options{AppendOnly: true})
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") || s.URL() != "redis://"+s.Addr()+"/0" {
		t.Errorf("Addr %q, URL %q: want loopback", s.Addr(), s.URL())
	}
	if got := do(t, s.Addr(), "SET k v"); got != "+OK" {
		t.Fatalf("SET = %q", got)
	}
	addr := s.Addr()
	s.Kill()
	if s.Running() {
		t.Fatal("Running after Kill")
	}
	if _, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
		t.Fatal("server still accepts connections after Kill")
	}
	s.Restart()
	if !s.Running() || s.Addr() != addr {
		t.Fatalf("after Restart: running %v, addr %q (was %q)", s.Running(), s.Addr(), addr)
	}
	if got := do(t, s.Addr(), "GET k"); got != "$1" {
		t.Errorf("GET after kill -9 and restart = %q, want the acknowledged value ($1)", got)
	}
}

func TestServer_VolatileLosesDataOnRestart(t *testing.T) {
	s := Start(t, Options{})
	if got := do(t, s.Addr(), "SET k v"); got != "+OK" {
		t.Fatalf("SET = %q", got)
	}
	s.Stop()
	s.Restart()
	if got := do(t, s.Addr(), "GET k"); got != "$-1" {
		t.Errorf("GET after restart without persistence = %q, want nil ($-1)", got)
	}
}
