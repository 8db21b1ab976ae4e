package interceptor

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/hopguard/hopguard/filters/engine"
	"github.com/hopguard/hopguard/internal/testutil/fakes"
	"github.com/hopguard/hopguard/policy"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// memStore is the shared map-backed store.
type memStore = fakes.Store

func newMemStore() *memStore { return fakes.NewStore() }

// Route IDs of the fixtures (grpc.testing.TestService methods).
const (
	routeUnary  = "test/unary-call"
	routeEmpty  = "test/empty-call"
	routeStream = "test/streaming-output-call"
	testService = "grpc.testing.TestService"
)

func route(id, method string) policy.Route {
	return policy.Route{
		ID: id, Service: "test",
		Match: policy.Match{GRPCService: testService, GRPCMethod: method},
		Deadline: policy.Deadline{
			Default: 800 * time.Millisecond, Max: 2 * time.Second, MinRemaining: 20 * time.Millisecond,
		},
		Retry: policy.Retry{
			Authority: policy.AuthorityMesh, Attempts: 3, On: []string{"unavailable"},
			PerTryTimeout: 250 * time.Millisecond, BackoffBase: 25 * time.Millisecond, BackoffMax: 250 * time.Millisecond,
			MinRemaining: 500 * time.Millisecond, BudgetRatio: 1, BudgetMinPerSecond: 100,
		},
		Idempotency: policy.Idempotency{Require: policy.RequireNever, Header: "idempotency-key", TTL: time.Hour},
	}
}

// testBundle: UnaryCall has side effects and needs keys (mesh authority,
// retries need 500ms left); EmptyCall has authority none; StreamingOutputCall
// needs keys; CacheableUnaryCall has no route.
func testBundle() *policy.Bundle {
	unary := route(routeUnary, "UnaryCall")
	unary.SideEffects, unary.Idempotency.Require = true, policy.RequireAlways
	empty := route(routeEmpty, "EmptyCall")
	empty.Retry.Authority = policy.AuthorityNone
	stream := route(routeStream, "StreamingOutputCall")
	stream.SideEffects, stream.Idempotency.Require = true, policy.RequireAlways
	return &policy.Bundle{Mesh: policy.Mesh{ClockSkew: 10 * time.Millisecond}, Routes: []policy.Route{unary, empty, stream}}
}

// backend is a TestService that counts the calls reaching its handlers and
// records the deadline they saw. UnaryCall ends with the request's
// response_status when set.
type backend struct {
	testgrpc.UnimplementedTestServiceServer
	calls    atomic.Int64
	mu       sync.Mutex
	deadline time.Time
}

func (b *backend) saw(ctx context.Context) {
	b.calls.Add(1)
	dl, _ := ctx.Deadline()
	b.mu.Lock()
	b.deadline = dl
	b.mu.Unlock()
}

func (b *backend) lastDeadline() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.deadline
}

func (b *backend) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	b.saw(ctx)
	if rs := req.GetResponseStatus(); rs != nil {
		return nil, status.Error(codes.Code(rs.GetCode()), rs.GetMessage())
	}
	return &testgrpc.SimpleResponse{}, nil
}

func (b *backend) EmptyCall(ctx context.Context, _ *testgrpc.Empty) (*testgrpc.Empty, error) {
	b.saw(ctx)
	return &testgrpc.Empty{}, nil
}

func (b *backend) CacheableUnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	b.saw(ctx)
	return &testgrpc.SimpleResponse{}, nil
}

func (b *backend) StreamingOutputCall(_ *testgrpc.StreamingOutputCallRequest, s testgrpc.TestService_StreamingOutputCallServer) error {
	b.saw(s.Context())
	return s.Send(&testgrpc.StreamingOutputCallResponse{})
}

// fixture is a guarded backend on loopback and a client for it.
type fixture struct {
	backend *backend
	store   *memStore
	client  testgrpc.TestServiceClient
}

// newFixture serves the backend behind an interceptor whose engine has
// testBundle, changed by mods.
func newFixture(t *testing.T, mods ...func(*policy.Bundle)) *fixture {
	t.Helper()
	fx := &fixture{backend: &backend{}, store: newMemStore()}
	e := engine.New(engine.Options{Store: fx.store})
	b := testBundle()
	for _, m := range mods {
		m(b)
	}
	for i := range b.Routes {
		if err := b.Routes[i].Validate(); err != nil {
			t.Fatalf("fixture: %v", err)
		}
	}
	e.SetBundle(b)
	ic := New(e, Options{})

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.UnaryInterceptor(ic.Unary()), grpc.StreamInterceptor(ic.Stream()))
	testgrpc.RegisterTestServiceServer(gs, fx.backend)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cc.Close()
		gs.GracefulStop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	fx.client = testgrpc.NewTestServiceClient(cc)
	return fx
}
