// Package redistest runs a real redis-server for tests: on 127.0.0.1 with a
// free port, its files in t.TempDir(), stopped by t.Cleanup. Tests that
// need Redis fail (never skip) when redis-server is not installed, naming
// the Debian package that provides it, so a CI without Redis cannot pass
// by silently testing nothing.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
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

// Binary is where the Debian package redis-server installs the server.
const Binary = "/usr/bin/redis-server"

// startTimeout bounds how long Start and Restart wait for the server to
// answer PING (loading an append-only file included).
const startTimeout = 15 * time.Second

// Options configure a Server. The zero value is an in-memory server with
// persistence off.
type Options struct {
	// AppendOnly turns on the append-only file with appendfsync always: every
	// acknowledged write is on disk before the reply, so a restart (even
	// after SIGKILL) loses nothing that was acknowledged.
	AppendOnly bool
	// Password sets requirepass when not empty.
	Password string
}

// Server is one redis-server process and its data directory. Its methods
// are safe for concurrent use; the process it runs is owned by the test
// that started it and is killed by t.Cleanup at the latest.
type Server struct {
	t    testing.TB
	opts Options
	dir  string
	port int

	mu  sync.Mutex
	cmd *exec.Cmd
	// done is closed when cmd has been waited for.
	done chan struct{}
}

// Start runs a redis-server for t and waits until it answers PING. It fails
// t (t.Fatal) when redis-server is missing or does not come up.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Fatalf("redistest: %s not found (%v): install the Debian package redis-server (apt-get install redis-server)", Binary, err)
	}
	s := &Server{t: t, opts: opts, dir: t.TempDir()}
	t.Cleanup(func() { s.stop(syscall.SIGKILL) })
	var errs []error
	for range 3 { // a free port can be taken between probe and bind
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		s.port = port
		if err := s.launch(); err != nil {
			errs = append(errs, err)
			s.stop(syscall.SIGKILL)
			continue
		}
		return s
	}
	t.Fatalf("redistest: redis-server did not start: %v", errors.Join(errs...))
	return nil
}

// Addr returns "127.0.0.1:PORT"; it stays the same across restarts.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL returns the redis:// URL of database 0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Dir returns the server's data directory.
func (s *Server) Dir() string { return s.dir }

// Kill stops the server with SIGKILL (no shutdown save, no goodbye to
// clients) and waits until the process is gone.
func (s *Server) Kill() { s.stop(syscall.SIGKILL) }

// Stop stops the server with SIGTERM (a clean shutdown) and waits until the
// process is gone, killing it if it takes more than 10s.
func (s *Server) Stop() { s.stop(syscall.SIGTERM) }

// Restart starts the server again on the same port and directory (after a
// Kill or Stop; a running server is killed first) and waits until it
// answers PING, the append-only file loaded. It fails the test on error.
func (s *Server) Restart() {
	s.t.Helper()
	s.stop(syscall.SIGKILL)
	deadline := time.Now().Add(startTimeout)
	var err error
	for time.Now().Before(deadline) {
		// The old socket may linger briefly; retry the bind.
		if err = s.launch(); err == nil {
			return
		}
		s.stop(syscall.SIGKILL)
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("redistest: restart: %v", err)
}

// Running reports whether the server process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// launch starts the process and waits for PING.
func (s *Server) launch() error {
	args := []string{
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(s.port),
		"--dir", s.dir,
		"--save", "",
		"--daemonize", "no",
		"--protected-mode", "yes",
		"--logfile", filepath.Join(s.dir, "redis.log"),
	}
	if s.opts.AppendOnly {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	if s.opts.Password != "" {
		args = append(args, "--requirepass", s.opts.Password)
	}
	cmd := exec.Command(Binary, args...)
	cmd.Dir = s.dir
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redistest: start %s: %w", Binary, err)
	}
	done := make(chan struct{})
	go func() { // owned by the Server: ends when the process does
		_ = cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	deadline := time.Now().Add(startTimeout)
	var err error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("redistest: redis-server exited: %s", s.logTail())
		default:
		}
		if err = s.ping(); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("redistest: redis-server on %s not ready after %s: %w; log: %s", s.Addr(), startTimeout, err, s.logTail())
}

// ping sends one PING over a raw connection and expects +PONG (a server
// still loading its append-only file answers -LOADING).
func (s *Server) ping() error {
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	cmd := "*1\r\n$4\r\nPING\r\n"
	if pw := s.opts.Password; pw != "" {
		cmd = fmt.Sprintf("*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(pw), pw) + cmd
	}
	if _, err := c.Write([]byte(cmd)); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "+PONG":
			return nil
		case strings.HasPrefix(line, "-"):
			return errors.New(line)
		}
	}
}

// stop signals the process, waits for it (10s, then SIGKILL) and forgets it.
func (s *Server) stop(sig syscall.Signal) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// logTail returns the end of the server log, for error messages.
func (s *Server) logTail() string {
	b, err := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// freePort returns a TCP port free on 127.0.0.1 at the time of the call.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("redistest: probe free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
