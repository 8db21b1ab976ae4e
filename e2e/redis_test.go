package e2e

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/hopguard/hopguard/controlplane"
	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/filters/engine"
	"github.com/hopguard/hopguard/filters/extproc"
	"github.com/hopguard/hopguard/filters/idempotency/redisstore"
	"github.com/hopguard/hopguard/filters/interceptor"
	"github.com/hopguard/hopguard/filters/metrics"
	"github.com/hopguard/hopguard/internal/testutil/redistest"
)

// keyedBackend is the upstream side effect: it counts its executions per
// Idempotency-Key.
type keyedBackend struct {
	testgrpc.UnimplementedTestServiceServer
	addr  string
	delay atomic.Int64
	mu    sync.Mutex
	runs  map[string]int
}

func (b *keyedBackend) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	b.note(ctx)
	select {
	case <-time.After(time.Duration(b.delay.Load())):
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return &testgrpc.SimpleResponse{}, nil
}

func (b *keyedBackend) EmptyCall(ctx context.Context, _ *testgrpc.Empty) (*testgrpc.Empty, error) {
	b.note(ctx)
	return &testgrpc.Empty{}, nil
}

func (b *keyedBackend) note(ctx context.Context) {
	md, _ := metadata.FromIncomingContext(ctx)
	keys := md.Get("idempotency-key")
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range keys {
		b.runs[k]++
	}
}

// executions returns how often the backend ran for key.
func (b *keyedBackend) executions(key string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.runs[key]
}

func startKeyedBackend(t *testing.T) *keyedBackend {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &keyedBackend{addr: lis.Addr().String(), runs: map[string]int{}}
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, b)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return b
}

// sharedBudgets: one side-effecting route over the whole TestService, so
// UnaryCall and EmptyCall share idempotency scopes (same route) and differ
// in fingerprint (another path).
const sharedBudgets = paymentsMesh + `apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: charges, namespace: shop}
spec:
  service: payments
  match: {grpcMethod: grpc.testing.TestService/*}
  deadline: {default: 3s, max: 4s, minRemaining: 100ms}
  retry: {authority: app, attempts: 2}
  sideEffects: true
  idempotency: {require: always}
`

// replica is one hopguard filter process: an engine whose idempotency
// store is the shared Redis, its ext_proc server, the control plane that
// feeds it, and a proxyless client whose calls it filters.
type replica struct {
	client testgrpc.TestServiceClient
}

func startReplica(t *testing.T, name string, b *keyedBackend, redisURL string) *replica {
	t.Helper()
	log := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	o, err := redisstore.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	o.DialTimeout = 200 * time.Millisecond
	rc := redis.NewClient(o)
	t.Cleanup(func() { _ = rc.Close() })
	store := redisstore.New(rc, redisstore.Options{Timeout: 250 * time.Millisecond, Observer: engine.StoreObserver(m)})
	eng := engine.New(engine.Options{Metrics: m, Logger: log, Store: store})

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	extproc.New(extproc.Options{Engine: eng, Logger: log}).Register(gs)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)

	dir := t.TempDir()
	writeFile(t, dir+"/mesh.yaml", fmt.Sprintf(sharedBudgets, b.addr, lis.Addr().String()))
	ctx, cancel := context.WithCancel(context.Background())
	cp, err := controlplane.Start(ctx, controlplane.Options{
		ConfigDir: dir, XDSAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		Logger: log, Registry: prometheus.NewRegistry(), Debounce: 50 * time.Millisecond,
		OnApply: func(mesh *ir.Mesh) { eng.SetBundle(mesh.Bundle()) },
	})
	if err != nil {
		cancel()
		t.Fatalf("controlplane.Start: %v", err)
	}
	t.Cleanup(func() {
		cp.Stop()
		cancel()
		_ = cp.Wait()
	})
	mesh := &mesh{dir: dir, cp: cp}
	r := &replica{client: testgrpc.NewTestServiceClient(mesh.dial(t, name, "checkout", "payments", lis.Addr().String()))}
	eventually(t, 10*time.Second, name+": a first keyed call to pass", func() bool {
		return r.call(withKey(context.Background(), fmt.Sprint(name, "-warm-", time.Now().UnixNano()))) == outcomeExecuted
	})
	return r
}

// outcome is how a call ended, as the caller sees it.
type outcome string

const (
	outcomeExecuted         outcome = "executed"
	outcomeDuplicate        outcome = "rejected-duplicate"
	outcomeReused           outcome = "rejected-key-reused"
	outcomeStoreUnavailable outcome = "rejected-store-unavailable"
)

// call sends UnaryCall with ctx's metadata and classifies the result by
// the x-hopguard-reason trailer; anything else is returned as the error
// text, which no test expects.
func (r *replica) call(ctx context.Context) outcome {
	return classify(r.do(ctx, false))
}

// do sends UnaryCall, or EmptyCall (another request) when empty.
func (r *replica) do(ctx context.Context, empty bool) (error, metadata.MD) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var trailer metadata.MD
	var err error
	if empty {
		_, err = r.client.EmptyCall(ctx, &testgrpc.Empty{}, grpc.Trailer(&trailer))
	} else {
		_, err = r.client.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.Trailer(&trailer))
	}
	return err, trailer
}

func classify(err error, trailer metadata.MD) outcome {
	if err == nil {
		return outcomeExecuted
	}
	// The interceptor sends x-hopguard-reason as a trailer; grpc-go's
	// ext_proc filter turns an immediate response into a status whose
	// message is the reason.
	reason := status.Convert(err).Message()
	if r := trailer.Get("x-hopguard-reason"); len(r) == 1 {
		reason = r[0]
	}
	switch code := status.Code(err); {
	case reason == "idempotency-in-flight" && code == codes.Aborted,
		reason == "idempotency-completed" && code == codes.AlreadyExists:
		return outcomeDuplicate
	case reason == "idempotency-key-reused" && code == codes.InvalidArgument:
		return outcomeReused
	case reason == "idempotency-store-unavailable" && code == codes.Unavailable:
		return outcomeStoreUnavailable
	}
	return outcome(fmt.Sprintf("unexpected: %v (trailer %v)", err, trailer))
}

// tally counts outcomes; safe for concurrent use.
type tally struct {
	mu sync.Mutex
	n  map[outcome]int
}

func (c *tally) add(o outcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[outcome]int{}
	}
	c.n[o]++
}

func (c *tally) get() map[outcome]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[outcome]int{}
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

func TestRedisStore_TwoExtProcServers(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AppendOnly: true})
	b := startKeyedBackend(t)
	a := startReplica(t, "checkout-a", b, srv.URL())
	c := startReplica(t, "checkout-b", b, srv.URL())

	t.Run("100 concurrent calls with one key across two replicas run once", func(t *testing.T) {
		b.delay.Store(int64(300 * time.Millisecond))
		defer b.delay.Store(0)
		var wg sync.WaitGroup
		var got tally
		for i := range 100 {
			r := a
			if i%2 == 1 {
				r = c
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				got.add(r.call(withKey(context.Background(), "shared-1")))
			}()
		}
		wg.Wait()
		if n := b.executions("shared-1"); n != 1 {
			t.Errorf("backend ran %d times for 100 calls with one key, want exactly 1", n)
		}
		want := map[outcome]int{outcomeExecuted: 1, outcomeDuplicate: 99}
		if g := got.get(); fmt.Sprint(g) != fmt.Sprint(want) {
			t.Errorf("outcomes = %v, want %v", g, want)
		}
	})

	t.Run("key reuse with another request is detected across replicas", func(t *testing.T) {
		// A proxyless caller's filter cannot see the gRPC status (grpc-go
		// strips it), so its claims last while the call is in flight: the
		// reuse must arrive meanwhile.
		b.delay.Store(int64(500 * time.Millisecond))
		defer b.delay.Store(0)
		first := make(chan outcome, 1)
		go func() { first <- a.call(withKey(context.Background(), "reuse-1")) }()
		eventually(t, 5*time.Second, "the first call to reach the backend", func() bool { return b.executions("reuse-1") == 1 })
		if o := classify(c.do(withKey(context.Background(), "reuse-1"), true)); o != outcomeReused {
			t.Errorf("EmptyCall with UnaryCall's key on replica b: %s, want %s", o, outcomeReused)
		}
		if o := c.call(withKey(context.Background(), "reuse-1")); o != outcomeDuplicate {
			t.Errorf("the same UnaryCall on replica b: %s, want %s", o, outcomeDuplicate)
		}
		if o := <-first; o != outcomeExecuted {
			t.Errorf("first call on replica a: %s", o)
		}
		if n := b.executions("reuse-1"); n != 1 {
			t.Errorf("backend ran %d times for key reuse-1, want 1", n)
		}
	})
}

// calleeBudgets: the side-effecting route served by two replicas of
// payments, each behind hopguard's server interceptor. The caller's
// ext_proc server (%[2]s) only records.
const calleeBudgets = `apiVersion: hopguard.dev/v1alpha1
kind: MeshConfig
metadata: {name: default}
spec:
  environment: e2e
  extProc: {address: %[2]q, timeout: 1s}
---
apiVersion: hopguard.dev/v1alpha1
kind: Service
metadata: {name: checkout, namespace: shop}
spec:
  port: 9000
  endpoints: [{address: 127.0.0.1:9000}]
  dependsOn: [payments]
---
apiVersion: hopguard.dev/v1alpha1
kind: Service
metadata: {name: payments, namespace: shop}
spec:
  port: 9001
  endpoints: [{address: %[1]q}, {address: %[3]q}]
---
apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: charges, namespace: shop}
spec:
  service: payments
  match: {grpcMethod: grpc.testing.TestService/*}
  deadline: {default: 3s, max: 4s, minRemaining: 100ms}
  retry: {authority: app, attempts: 2}
  sideEffects: true
  idempotency: {require: always}
`

// startGuardedReplica serves b behind an interceptor whose engine keeps
// its records in the Redis at redisURL, and returns the engine and address.
func startGuardedReplica(t *testing.T, b *keyedBackend, redisURL string) (*engine.Engine, string) {
	t.Helper()
	log := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	o, err := redisstore.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	o.DialTimeout = 200 * time.Millisecond
	rc := redis.NewClient(o)
	t.Cleanup(func() { _ = rc.Close() })
	eng := engine.New(engine.Options{Metrics: m, Logger: log,
		Store: redisstore.New(rc, redisstore.Options{Timeout: 250 * time.Millisecond, Observer: engine.StoreObserver(m)})})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ic := interceptor.New(eng, interceptor.Options{Logger: log})
	gs := grpc.NewServer(grpc.UnaryInterceptor(ic.Unary()), grpc.StreamInterceptor(ic.Stream()))
	testgrpc.RegisterTestServiceServer(gs, b)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return eng, lis.Addr().String()
}

// TestRedisStore_RestartBehindTwoReplicas: two replicas of a side effect,
// each with its own filter engine, share one Redis (append-only, fsync on
// every write). The caller sends every key twice, so the second copy
// usually lands on the other replica, while Redis is killed (SIGKILL) and
// restarted. Every call must end in a counted outcome, no key may run
// twice, and every key completed before the kill must still be recorded
// after the restart.
func TestRedisStore_RestartBehindTwoReplicas(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AppendOnly: true})
	b := startKeyedBackend(t)
	e1, addr1 := startGuardedReplica(t, b, srv.URL())
	e2, addr2 := startGuardedReplica(t, b, srv.URL())
	ep := startExtProc(t)
	dir := t.TempDir()
	writeFile(t, dir+"/mesh.yaml", fmt.Sprintf(calleeBudgets, addr1, ep.addr, addr2))
	ctx, cancel := context.WithCancel(context.Background())
	cp, err := controlplane.Start(ctx, controlplane.Options{
		ConfigDir: dir, XDSAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)), Registry: prometheus.NewRegistry(), Debounce: 50 * time.Millisecond,
		OnApply: func(mesh *ir.Mesh) {
			e1.SetBundle(mesh.Bundle())
			e2.SetBundle(mesh.Bundle())
		},
	})
	if err != nil {
		cancel()
		t.Fatalf("controlplane.Start: %v", err)
	}
	t.Cleanup(func() {
		cp.Stop()
		cancel()
		_ = cp.Wait()
	})
	r := &replica{client: testgrpc.NewTestServiceClient((&mesh{dir: dir, cp: cp}).dial(t, "checkout-1", "checkout", "payments", ep.addr))}
	eventually(t, 10*time.Second, "a first keyed call to pass", func() bool {
		return r.call(withKey(context.Background(), fmt.Sprint("warm-", time.Now().UnixNano()))) == outcomeExecuted
	})

	const workers = 6
	var got tally
	var sent atomic.Int64
	var mu sync.Mutex
	var keys, beforeKill []string // beforeKill: keys executed and answered before the kill
	var killed atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("restart-%d-%d", w, i)
				mu.Lock()
				keys = append(keys, key)
				mu.Unlock()
				wasKilled := killed.Load()
				executed := false
				for range 2 { // the caller's retry of the same request
					o := r.call(withKey(context.Background(), key))
					sent.Add(1)
					got.add(o)
					executed = executed || o == outcomeExecuted
				}
				if executed && !wasKilled && !killed.Load() {
					mu.Lock()
					beforeKill = append(beforeKill, key)
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	killed.Store(true)
	srv.Kill()
	time.Sleep(300 * time.Millisecond)
	srv.Restart()
	// go-redis redials by itself; after a burst of failed dials its pool
	// retries once a second, so recovery takes up to about a second.
	start := time.Now()
	streak := 0
	eventually(t, 10*time.Second, "both replicas to reach Redis again", func() bool {
		if r.call(withKey(context.Background(), fmt.Sprint("probe-", time.Now().UnixNano()))) == outcomeExecuted {
			streak++
		} else {
			streak = 0
		}
		return streak >= 4
	})
	t.Logf("recovered %v after Redis answered again", time.Since(start).Round(time.Millisecond))
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	counts := got.get()
	sum := 0
	for o, n := range counts {
		switch o {
		case outcomeExecuted, outcomeDuplicate, outcomeStoreUnavailable:
		default:
			t.Errorf("%d calls ended unexpectedly: %s", n, o)
		}
		sum += n
	}
	if int64(sum) != sent.Load() {
		t.Errorf("outcomes sum to %d, want the %d calls sent", sum, sent.Load())
	}
	if counts[outcomeStoreUnavailable] == 0 {
		t.Errorf("outcomes %v: no call saw the store down, so Redis was not killed mid-run", counts)
	}
	if counts[outcomeExecuted] == 0 || counts[outcomeDuplicate] == 0 {
		t.Errorf("outcomes %v: want executions and duplicates", counts)
	}
	executed := 0
	for _, k := range keys {
		n := b.executions(k)
		if n > 1 {
			t.Errorf("key %s ran %d times", k, n)
		}
		executed += n
	}
	if executed != counts[outcomeExecuted] {
		t.Errorf("backend ran %d times but %d calls were answered as executed: a duplicate got through silently", executed, counts[outcomeExecuted])
	}
	// Every completion acknowledged before the kill was fsynced: it must
	// survive the restart.
	lost := 0
	for _, k := range beforeKill {
		for range 2 { // reach both replicas
			if o := r.call(withKey(context.Background(), k)); o != outcomeDuplicate {
				lost++
				t.Errorf("key %s completed before the kill, after the restart: %s, want %s", k, o, outcomeDuplicate)
			}
		}
	}
	if len(beforeKill) == 0 {
		t.Error("no key completed before the kill: the run proves nothing about persistence")
	}
	t.Logf("%d calls on %d keys: %v; %d keys completed before the kill, %d of them lost", sent.Load(), len(keys), counts, len(beforeKill), lost)
}
