package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/hopguard/hopguard/controlplane"
	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/filters/engine"
	"github.com/hopguard/hopguard/filters/extproc"
	"github.com/hopguard/hopguard/filters/interceptor"
	"github.com/hopguard/hopguard/filters/metrics"
)

// guardedBackend is a TestService behind hopguard's server interceptor: the
// callee side of a proxyless call. Its handlers count the calls that reach
// them.
type guardedBackend struct {
	testgrpc.UnimplementedTestServiceServer
	addr    string
	calls   atomic.Int64
	empties atomic.Int64
	// delay is how long UnaryCall works; fail makes it end with UNAVAILABLE.
	delay atomic.Int64
	fail  atomic.Bool
}

// EmptyCall counts its calls in empties and always succeeds.
func (b *guardedBackend) EmptyCall(context.Context, *testgrpc.Empty) (*testgrpc.Empty, error) {
	b.empties.Add(1)
	return &testgrpc.Empty{}, nil
}

func (b *guardedBackend) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	b.calls.Add(1)
	select {
	case <-time.After(time.Duration(b.delay.Load())):
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if b.fail.Load() {
		return nil, status.Error(codes.Unavailable, "backend: told to fail")
	}
	return &testgrpc.SimpleResponse{}, nil
}

// enforcedMesh is a control plane whose accepted policies feed two engines:
// the caller side's ext_proc server and the callee side's interceptor, as
// two separate hopguard processes would be fed.
type enforcedMesh struct {
	*mesh
	extProcAddr string
	backend     *guardedBackend
}

// startEnforcedMesh starts the ext_proc server, a guarded backend, and a
// control plane serving budgetsYAML (with %[1]s for the backend address and
// %[2]s for the ext_proc address).
func startEnforcedMesh(t *testing.T, budgetsYAML string, opts ...func(*controlplane.Options)) *enforcedMesh {
	t.Helper()
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	newEngine := func() *engine.Engine {
		m, err := metrics.New(prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		return engine.New(engine.Options{Metrics: m, Logger: log})
	}
	caller, callee := newEngine(), newEngine()

	epLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	eps := grpc.NewServer()
	extproc.New(extproc.Options{Engine: caller, Logger: log}).Register(eps)
	go func() { _ = eps.Serve(epLis) }()
	t.Cleanup(eps.Stop)

	beLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &guardedBackend{addr: beLis.Addr().String()}
	ic := interceptor.New(callee, interceptor.Options{Logger: log})
	bes := grpc.NewServer(grpc.UnaryInterceptor(ic.Unary()), grpc.StreamInterceptor(ic.Stream()))
	testgrpc.RegisterTestServiceServer(bes, b)
	go func() { _ = bes.Serve(beLis) }()
	t.Cleanup(bes.Stop)

	dir := t.TempDir()
	writeFile(t, dir+"/mesh.yaml", fmt.Sprintf(budgetsYAML, b.addr, epLis.Addr().String()))
	ctx, cancel := context.WithCancel(context.Background())
	o := controlplane.Options{
		ConfigDir: dir, XDSAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		Logger: log, Registry: prometheus.NewRegistry(), Debounce: 50 * time.Millisecond,
		OnApply: func(m *ir.Mesh) {
			caller.SetBundle(m.Bundle())
			callee.SetBundle(m.Bundle())
		},
	}
	for _, f := range opts {
		f(&o)
	}
	cp, err := controlplane.Start(ctx, o)
	if err != nil {
		cancel()
		t.Fatalf("controlplane.Start: %v", err)
	}
	t.Cleanup(func() {
		cp.Stop()
		cancel()
		_ = cp.Wait()
	})
	return &enforcedMesh{mesh: &mesh{dir: dir, cp: cp}, extProcAddr: epLis.Addr().String(), backend: b}
}

// paymentsMesh is the MeshConfig and the two Services (checkout calling
// payments) every budget fixture below shares, with %[1]s for the backend
// address and %[2]s for the ext_proc address; fixtures append their routes.
const paymentsMesh = `apiVersion: hopguard.dev/v1alpha1
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
  endpoints: [{address: %[1]q}]
---
`

const chargeBudgets = paymentsMesh + `apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: create-charge, namespace: shop}
spec:
  service: payments
  match: {grpcMethod: grpc.testing.TestService/UnaryCall}
  deadline: {default: 2s, max: 4s, minRemaining: 200ms}
  retry: {authority: app, attempts: 2}
  sideEffects: true
  idempotency: {require: always}
`

func withKey(ctx context.Context, key string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "idempotency-key", key)
}

func TestEnforcedDeadlineAndIdempotency(t *testing.T) {
	m := startEnforcedMesh(t, chargeBudgets)
	client := testgrpc.NewTestServiceClient(m.dial(t, "checkout-1", "checkout", "payments", m.extProcAddr))
	call := func(ctx context.Context) error {
		_, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		return err
	}
	eventually(t, 10*time.Second, "the first keyed call to pass", func() bool {
		ctx, cancel := context.WithTimeout(withKey(context.Background(), fmt.Sprint("warm-", time.Now().UnixNano())), 3*time.Second)
		defer cancel()
		return call(ctx) == nil
	})
	b := m.backend

	t.Run("too little deadline left is refused before the backend", func(t *testing.T) {
		before := b.calls.Load()
		ctx, cancel := context.WithTimeout(withKey(context.Background(), "short-deadline"), 150*time.Millisecond)
		defer cancel()
		if err := call(ctx); status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("call with 150ms left (minRemaining 200ms): got %v, want DEADLINE_EXCEEDED", err)
		}
		if got := b.calls.Load() - before; got != 0 {
			t.Errorf("backend ran %d times for a refused call, want 0", got)
		}
	})

	t.Run("a side effect without a key is refused", func(t *testing.T) {
		before := b.calls.Load()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		err := call(ctx)
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("call without idempotency-key: got %v, want INVALID_ARGUMENT", err)
		}
		if got := b.calls.Load() - before; got != 0 {
			t.Errorf("backend ran %d times for a refused call, want 0", got)
		}
	})

	t.Run("a failed call frees its key, a completed one keeps it", func(t *testing.T) {
		before := b.calls.Load()
		b.fail.Store(true)
		ctx, cancel := context.WithTimeout(withKey(context.Background(), "charge-7"), 3*time.Second)
		defer cancel()
		if err := call(ctx); status.Code(err) != codes.Unavailable {
			t.Fatalf("first call: got %v, want UNAVAILABLE from the backend", err)
		}
		b.fail.Store(false)
		if err := call(ctx); err != nil {
			t.Fatalf("retry with the same key after a failure: %v, want it to run", err)
		}
		if err := call(ctx); status.Code(err) != codes.AlreadyExists {
			t.Errorf("third call with a completed key: got %v, want ALREADY_EXISTS", err)
		}
		// The caller resending a failed key is its own retry: within
		// attempts: 2 above, refused beyond it.
		b.fail.Store(true)
		for i, want := range []codes.Code{codes.Unavailable, codes.Unavailable, codes.ResourceExhausted} {
			ctx, cancel := context.WithTimeout(withKey(context.Background(), "charge-8"), 3*time.Second)
			err := call(ctx)
			cancel()
			if status.Code(err) != want {
				t.Errorf("attempt %d with a failing key: got %v, want %v", i+1, err, want)
			}
		}
		b.fail.Store(false)
		if got := b.calls.Load() - before; got != 4 {
			t.Errorf("backend ran %d times, want 4 (a failure and its retry, then two failing attempts of another key)", got)
		}
	})

	t.Run("100 concurrent calls with one key run once", func(t *testing.T) {
		b.delay.Store(int64(300 * time.Millisecond))
		defer b.delay.Store(0)
		before := b.calls.Load()
		var wg sync.WaitGroup
		var ok, refused atomic.Int64
		codesSeen := sync.Map{}
		for range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(withKey(context.Background(), "charge-42"), 3*time.Second)
				defer cancel()
				err := call(ctx)
				if err == nil {
					ok.Add(1)
					return
				}
				codesSeen.Store(status.Code(err), true)
				refused.Add(1)
			}()
		}
		wg.Wait()
		if got := b.calls.Load() - before; got != 1 {
			t.Errorf("backend ran %d times for 100 calls with one key, want exactly 1", got)
		}
		if ok.Load() != 1 || refused.Load() != 99 {
			t.Errorf("%d calls passed and %d were refused, want 1 and 99", ok.Load(), refused.Load())
		}
		codesSeen.Range(func(k, _ any) bool {
			if c := k.(codes.Code); c != codes.Aborted && c != codes.AlreadyExists {
				t.Errorf("a duplicate was refused with %v, want ABORTED (in flight) or ALREADY_EXISTS (completed)", c)
			}
			return true
		})
	})
}

const retryBudgets = paymentsMesh + `apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: get-charge, namespace: shop}
spec:
  service: payments
  match: {grpcMethod: grpc.testing.TestService/UnaryCall}
  deadline: {default: 1s, max: 2s}
  retry:
    authority: mesh
    attempts: 3
    on: [unavailable]
    backoff: {base: 5ms, max: 10ms}
    minRemaining: 800ms
  sideEffects: false
`

func TestEnforcedMeshRetryNeedsDeadline(t *testing.T) {
	m := startEnforcedMesh(t, retryBudgets)
	client := testgrpc.NewTestServiceClient(m.dial(t, "checkout-2", "checkout", "payments", m.extProcAddr))
	b := m.backend
	eventually(t, 10*time.Second, "a first call to pass", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		return err == nil
	})
	b.fail.Store(true)
	b.delay.Store(int64(300 * time.Millisecond))

	// With 2s (the route max) the retries have time: all 3 attempts run.
	before := b.calls.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
	cancel()
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("call with 2s: got %v, want UNAVAILABLE after every attempt", err)
	}
	if got := b.calls.Load() - before; got != 3 {
		t.Errorf("with 2s the handler ran %d times, want 3 (attempts: 3)", got)
	}

	// With 1s the first attempt leaves ~0.7s: below the retry's 800ms, so
	// the interceptor drops the mesh retry before the handler runs.
	before = b.calls.Load()
	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	var trailer metadata.MD
	_, err = client.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.Trailer(&trailer))
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("call with 1s: got %v, want DEADLINE_EXCEEDED from the dropped retry", err)
	}
	if got := b.calls.Load() - before; got != 1 {
		t.Errorf("with 1s the handler ran %d times, want 1 (the retry is dropped)", got)
	}
	if got := trailer.Get("x-hopguard-reason"); len(got) != 1 || got[0] != "retry-deadline-insufficient" {
		t.Errorf("x-hopguard-reason trailer = %v, want [retry-deadline-insufficient]", got)
	}
}

const noRetryBudgets = `apiVersion: hopguard.dev/v1alpha1
kind: MeshConfig
metadata: {name: default}
spec:
  extProc: {address: %[2]q}
---
apiVersion: hopguard.dev/v1alpha1
kind: Service
metadata: {name: payments, namespace: shop}
spec:
  port: 9001
  endpoints: [{address: %[1]q}]
---
apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: refund, namespace: shop}
spec:
  service: payments
  match: {grpcMethod: grpc.testing.TestService/UnaryCall}
  deadline: {default: 2s, max: 4s}
  retry: {authority: none, attempts: 1}
  sideEffects: false
`

func TestInterceptorRejectsRetryWithoutAuthority(t *testing.T) {
	m := startEnforcedMesh(t, noRetryBudgets)
	b := m.backend
	b.fail.Store(true)
	// The caller's own gRPC library retries (a service-config retry policy):
	// its second attempt carries grpc-previous-rpc-attempts.
	const serviceConfig = `{"methodConfig": [{"name": [{"service": "grpc.testing.TestService"}],
	  "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.01s", "maxBackoff": "0.05s",
	                  "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]}`
	cc, err := grpc.NewClient(b.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(serviceConfig))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := testgrpc.NewTestServiceClient(cc)
	// The policies were installed before the control plane's Start returned.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var trailer metadata.MD
	_, err = client.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("retried call to an authority: none route: got %v, want FAILED_PRECONDITION (retry-not-authority)", err)
	}
	if got := b.calls.Load(); got != 1 {
		t.Errorf("the handler ran %d times, want 1: the library's retry must be refused", got)
	}
	if got := trailer.Get("x-hopguard-reason"); len(got) != 1 || got[0] != "retry-not-authority" {
		t.Errorf("x-hopguard-reason trailer = %v, want [retry-not-authority]", got)
	}
}

// fingerprintBudgets is chargeBudgets with x-amount in the fingerprint
// (the request body is in it by default).
var fingerprintBudgets = strings.Replace(chargeBudgets, "idempotency: {require: always}",
	"idempotency: {require: always, fingerprint: {headers: [x-amount]}}", 1)

// TestKeyReusedForAnotherRequest: a key sent again with another amount (a
// fingerprint header) is refused as key reuse by the caller's ext_proc
// filter, through grpc-go's own ext_proc client; a key sent again with
// another request message is refused by the callee's interceptor, which
// sees the message. Either way the second request never runs, and is not
// mistaken for a duplicate of the first.
func TestKeyReusedForAnotherRequest(t *testing.T) {
	if !strings.Contains(fingerprintBudgets, "fingerprint:") {
		t.Fatal("chargeBudgets no longer has the idempotency line fingerprintBudgets extends")
	}
	m := startEnforcedMesh(t, fingerprintBudgets)
	b := m.backend
	call := func(client testgrpc.TestServiceClient, key string, size int32, kv ...string) error {
		ctx, cancel := context.WithTimeout(withKey(context.Background(), key), 3*time.Second)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, kv...)
		_, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: size})
		return err
	}

	meshed := testgrpc.NewTestServiceClient(m.dial(t, "checkout-1", "checkout", "payments", m.extProcAddr))
	eventually(t, 10*time.Second, "the first keyed call through the mesh to pass", func() bool {
		return call(meshed, fmt.Sprint("warm-", time.Now().UnixNano()), 1, "x-amount", "1") == nil
	})
	// reuse makes the first call, then a changed one under the same key
	// (refused as reuse), then the first again (the completed duplicate):
	// the backend runs once.
	reuse := func(name string, first, changed func() error) {
		t.Helper()
		before := b.calls.Load()
		if err := first(); err != nil {
			t.Fatalf("%s: first call: %v", name, err)
		}
		if err := changed(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "idempotency-key-reused") {
			t.Errorf("%s: same key, changed request: %v, want INVALID_ARGUMENT idempotency-key-reused", name, err)
		}
		if err := first(); status.Code(err) != codes.AlreadyExists {
			t.Errorf("%s: same key, same request: %v, want ALREADY_EXISTS", name, err)
		}
		if got := b.calls.Load() - before; got != 1 {
			t.Errorf("%s: backend ran %d times, want 1", name, got)
		}
	}
	reuse("another amount, through the mesh",
		func() error { return call(meshed, "charge-1", 1, "x-amount", "1999") },
		func() error { return call(meshed, "charge-1", 1, "x-amount", "2999") })

	// A client calling the backend directly: the interceptor is the first
	// to see the key, and it fingerprints the request message too.
	cc, err := grpc.NewClient(b.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	direct := testgrpc.NewTestServiceClient(cc)
	reuse("another message, direct",
		func() error { return call(direct, "charge-2", 1, "x-amount", "1999") },
		func() error { return call(direct, "charge-2", 2, "x-amount", "1999") })
}

// TestReplayOfCompletedCall: under onDuplicate: replay, the duplicate of a
// call that completed OK, sent through the mesh, comes back as
// ALREADY_EXISTS marked x-hopguard-replayed, and the backend runs once.
// The response message was not recorded, and a bare OK would reach the
// client as INTERNAL (a unary OK needs a message). grpc-go's ext_proc
// client sends the caller's filter no response phase, so that filter
// releases its claim and the callee's interceptor answers; behind Envoy,
// the ext_proc filter answers the same way (see extproc's
// TestReplayResponse_Success).
func TestReplayOfCompletedCall(t *testing.T) {
	budgets := strings.Replace(chargeBudgets, "idempotency: {require: always}", "idempotency: {require: always, onDuplicate: replay}", 1)
	if budgets == chargeBudgets {
		t.Fatal("chargeBudgets no longer has the idempotency line this test extends")
	}
	m := startEnforcedMesh(t, budgets)
	client := testgrpc.NewTestServiceClient(m.dial(t, "checkout-1", "checkout", "payments", m.extProcAddr))
	call := func(key string, trailer *metadata.MD) error {
		ctx, cancel := context.WithTimeout(withKey(context.Background(), key), 3*time.Second)
		defer cancel()
		_, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.Trailer(trailer))
		return err
	}
	eventually(t, 10*time.Second, "the first keyed call to pass", func() bool {
		return call(fmt.Sprint("warm-", time.Now().UnixNano()), new(metadata.MD)) == nil
	})
	b := m.backend
	before := b.calls.Load()
	if err := call("pay-once", new(metadata.MD)); err != nil {
		t.Fatalf("first call: %v", err)
	}
	var trailer metadata.MD
	err := call("pay-once", &trailer)
	if status.Code(err) != codes.AlreadyExists {
		t.Errorf("duplicate of a completed call: %v, want ALREADY_EXISTS", err)
	}
	if got := trailer.Get(extproc.HeaderReplayed); len(got) != 1 || got[0] != "true" {
		t.Errorf("duplicate's trailer %v, want %s: true", trailer, extproc.HeaderReplayed)
	}
	if got := b.calls.Load() - before; got != 1 {
		t.Errorf("backend ran %d times, want 1", got)
	}
}
