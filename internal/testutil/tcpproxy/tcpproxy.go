// Package tcpproxy is a loopback TCP proxy for tests of network trouble
// that no error reveals: replies that arrive late, and connections that go
// silent while staying open.
package tcpproxy

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Options shape what the proxy does to the bytes it passes.
type Options struct {
	// ReplyDelay holds every chunk from the upstream this long before it
	// is passed on; requests go through at once.
	ReplyDelay time.Duration
}

// Proxy passes connections to one upstream address. It stops, closing
// every connection, when the test ends.
type Proxy struct {
	lis  net.Listener
	opts Options
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns []*conn
}

// conn is one proxied connection.
type conn struct {
	down, up net.Conn
	silent   atomic.Bool
}

// Start proxies 127.0.0.1:port connections to upstream.
func Start(t testing.TB, upstream string, opts Options) *Proxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{lis: lis, opts: opts}
	p.wg.Go(func() {
		for {
			down, err := lis.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", upstream)
			if err != nil {
				_ = down.Close()
				continue
			}
			c := &conn{down: down, up: up}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			p.wg.Go(func() { c.pipe(up, down, 0) })
			p.wg.Go(func() { c.pipe(down, up, opts.ReplyDelay) })
		}
	})
	t.Cleanup(func() {
		_ = lis.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.down.Close()
			_ = c.up.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// Addr is the address clients dial.
func (p *Proxy) Addr() string { return p.lis.Addr().String() }

// Silence drops, from now on, every byte of the connections open now, in
// both directions, leaving them open. Later connections work.
func (p *Proxy) Silence() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.silent.Store(true)
	}
}

// pipe copies src to dst, each chunk delay late, dropping chunks while
// silenced; when src ends dst is closed, so an end on one side reaches the
// other.
func (c *conn) pipe(dst, src net.Conn, delay time.Duration) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			time.Sleep(delay)
			if !c.silent.Load() {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}
