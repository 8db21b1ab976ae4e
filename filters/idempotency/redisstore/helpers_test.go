package redisstore

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/hopguard/hopguard/filters/idempotency"
	"github.com/hopguard/hopguard/internal/testutil/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// t0 is the fake clock's origin in these tests.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// scope returns a scope of route "shop/create" on the inbound side.
func scope(key string) idempotency.Scope {
	return idempotency.Scope{Route: "shop/create", Side: "inbound", Principal: "spiffe://shop/web", Key: key}
}

// newClient returns a client of srv built by ParseURL, closed by t.Cleanup.
func newClient(t testing.TB, srv *redistest.Server) *redis.Client {
	t.Helper()
	o, err := ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	o.DialTimeout = 200 * time.Millisecond
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// newStore starts a redis-server and returns a store on it.
func newStore(t testing.TB, opts Options) (*Store, *redistest.Server, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t, redistest.Options{})
	c := newClient(t, srv)
	if opts.Timeout == 0 {
		opts.Timeout = time.Second // the shared CI cores are busy
	}
	return New(c, opts), srv, c
}

// pair is a (from, to) transition as the Observer sees it.
type pair struct{ From, To idempotency.State }

// recObserver counts Observer calls; safe for concurrent use.
type recObserver struct {
	mu          sync.Mutex
	transitions map[pair]int
	rejected    map[pair]int
	expired     map[idempotency.State]int
}

var _ idempotency.Observer = (*recObserver)(nil)

func newRecObserver() *recObserver {
	return &recObserver{transitions: map[pair]int{}, rejected: map[pair]int{}, expired: map[idempotency.State]int{}}
}

func (o *recObserver) Transition(from, to idempotency.State) {
	o.mu.Lock()
	o.transitions[pair{from, to}]++
	o.mu.Unlock()
}

func (o *recObserver) TransitionRejected(from, to idempotency.State) {
	o.mu.Lock()
	o.rejected[pair{from, to}]++
	o.mu.Unlock()
}

func (o *recObserver) Expired(s idempotency.State) {
	o.mu.Lock()
	o.expired[s]++
	o.mu.Unlock()
}

func (o *recObserver) Evicted(idempotency.State)      {}
func (o *recObserver) Records(idempotency.State, int) {}

// silentServer accepts connections and never answers: a Redis that hangs.
// It is closed by t.Cleanup, which also ends its accept goroutine.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String()
}
