package subscribe

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hopguard/hopguard/controlplane/bundles"
)

// silencer proxies loopback connections to addr. Silence drops every
// byte of the connections open at that moment, in both directions, while
// keeping them open: a flow a middlebox lost, or a peer that hangs, which
// no FIN or RST reveals. Connections made afterwards work.
type silencer struct {
	lis   net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []*silenceable
}

// silenceable is one proxied connection.
type silenceable struct {
	down, up net.Conn
	silent   atomic.Bool
}

func newSilencer(t *testing.T, addr string) *silencer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silencer{lis: lis}
	s.wg.Go(func() {
		for {
			down, err := lis.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", addr)
			if err != nil {
				_ = down.Close()
				continue
			}
			c := &silenceable{down: down, up: up}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Go(func() { c.pipe(up, down) })
			s.wg.Go(func() { c.pipe(down, up) })
		}
	})
	t.Cleanup(func() {
		_ = lis.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			_ = c.down.Close()
			_ = c.up.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// silence silences the connections open now.
func (s *silencer) silence() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.silent.Store(true)
	}
}

// pipe copies from src to dst unless silenced; when src ends, dst is
// closed, so an end on one side reaches the other.
func (c *silenceable) pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !c.silent.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestRun_SilentControlPlaneIsDetected: with the keepalive settings the
// filter uses (at grpc-go's 10 s floor, to keep the test short), a
// connection that goes silent without closing (a flow a middlebox lost)
// is noticed: the stream is reported down and the subscription
// reconnects, getting the bundle published meanwhile.
func TestRun_SilentControlPlaneIsDetected(t *testing.T) {
	cp := &controlPlane{t: t, addr: "127.0.0.1:0", pub: bundles.New(nil)}
	cp.start()
	defer cp.stop()
	cp.pub.Publish([]byte("gen-1"))
	proxy := newSilencer(t, cp.addr)

	ka := bundles.ClientKeepalive
	ka.Time, ka.Timeout = 10*time.Second, time.Second // grpc-go raises any Time below 10 s to 10 s
	conn, err := grpc.NewClient(proxy.lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithKeepaliveParams(ka))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Conn: conn, Subscriber: "test", Accept: rec.accept, Metrics: m,
			Reason: func(error) string { return "bad" }, BackoffBase: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
	}()
	waitFor(t, "first bundle", func() bool { return rec.last() == "gen-1" })

	proxy.silence()
	cp.pub.Publish([]byte("gen-2")) // lost in the silence
	// Keepalive gives up after 10 s + 1 s; the subscription then
	// reconnects on a new connection and gets gen-2.
	deadline := time.Now().Add(30 * time.Second)
	for rec.last() != "gen-2" {
		if time.Now().After(deadline) {
			t.Fatal("the bundle published during the silence has not arrived 30 s into it: the silent stream was not noticed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := testutil.ToFloat64(m.Reconnects); n < 1 {
		t.Errorf("reconnects = %v, want ≥ 1", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v after cancel", err)
	}
}
