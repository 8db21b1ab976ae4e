package tcpproxy

import (
	"io"
	"net"
	"testing"
	"time"
)

// echo serves an echo on loopback until the test ends.
func echo(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return lis.Addr().String()
}

func roundTrip(t *testing.T, c net.Conn, wait time.Duration) error {
	t.Helper()
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4)
	_, err := io.ReadFull(c, buf)
	return err
}

func TestProxy_DelayAndSilence(t *testing.T) {
	p := Start(t, echo(t), Options{ReplyDelay: 100 * time.Millisecond})
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if err := roundTrip(t, c, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Errorf("the reply came after %v, before the 100ms delay", took)
	}

	p.Silence()
	if err := roundTrip(t, c, 500*time.Millisecond); err == nil {
		t.Error("a silenced connection still answered")
	}
	fresh, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if err := roundTrip(t, fresh, 5*time.Second); err != nil {
		t.Errorf("a connection made after Silence: %v", err)
	}
}
