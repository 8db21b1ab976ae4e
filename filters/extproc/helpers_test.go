package extproc

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hopguard/hopguard/filters/engine"
	"github.com/hopguard/hopguard/filters/idempotency"
	"github.com/hopguard/hopguard/filters/metrics"
	"github.com/hopguard/hopguard/internal/testutil/fakes"
	"github.com/hopguard/hopguard/policy"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeClock and memStore are the shared test doubles.
type (
	fakeClock = fakes.Clock
	memStore  = fakes.Store
)

func newFakeClock(t time.Time) *fakeClock { return fakes.NewClock(t) }

func newMemStore() *memStore { return fakes.NewStore() }

// downStore is a store that cannot answer.
type downStore struct{ memStore }

func (*downStore) Claim(context.Context, idempotency.Scope, uint64, time.Time, time.Duration) (idempotency.ClaimResult, error) {
	return idempotency.ClaimResult{}, errors.Join(idempotency.ErrUnavailable, errors.New("test: down"))
}

// Route IDs and paths of the fixtures.
const (
	routeCharge   = "shop/create-charge"
	pathCharge    = "/shop.Payments/CreateCharge"
	routeGet      = "shop/get-order"
	pathGet       = "/shop.Orders/GetOrder"
	routeOrdersH  = "shop/orders-http"
	pathOrdersH   = "/v1/orders"
	principalHdr  = "x-client-id"
	idemHeaderKey = "idempotency-key"
)

// baseRoute is a valid route: gRPC method match, deadline 800ms/2s/20ms,
// mesh authority with 3 attempts and a fixed retry threshold, no side effects.
func baseRoute(id, path string) policy.Route {
	r := policy.Route{
		ID:      id,
		Service: "payments",
		Deadline: policy.Deadline{
			Default: 800 * time.Millisecond, Max: 2 * time.Second, MinRemaining: 20 * time.Millisecond,
		},
		Retry: policy.Retry{
			Authority: policy.AuthorityMesh, Attempts: 3, On: []string{"unavailable"},
			PerTryTimeout: 250 * time.Millisecond, BackoffBase: 25 * time.Millisecond, BackoffMax: 250 * time.Millisecond,
			MinRemaining: 100 * time.Millisecond, BudgetRatio: 1, BudgetMinPerSecond: 100,
		},
		Idempotency: policy.Idempotency{Require: policy.RequireNever, Header: idemHeaderKey, TTL: time.Hour},
	}
	if path[len(path)-1] == '/' {
		r.Match.PathPrefix = path
	} else {
		r.Match.Path = path
	}
	return r
}

// chargeRoute is a side-effecting gRPC route requiring idempotency keys.
func chargeRoute() policy.Route {
	r := baseRoute(routeCharge, pathCharge)
	r.Match = policy.Match{GRPCService: "shop.Payments", GRPCMethod: "CreateCharge"}
	r.SideEffects = true
	r.Idempotency.Require = policy.RequireAlways
	return r
}

// testBundle holds the fixtures: create-charge (side effects), get-order
// (none) and an HTTP prefix route with side effects.
func testBundle(mod func(*policy.Bundle)) *policy.Bundle {
	get := baseRoute(routeGet, pathGet)
	get.Match = policy.Match{GRPCService: "shop.Orders", GRPCMethod: "GetOrder"}
	orders := baseRoute(routeOrdersH, pathOrdersH+"/")
	orders.SideEffects = true
	orders.Idempotency.Require = policy.RequireAlways
	b := &policy.Bundle{
		Mesh:   policy.Mesh{Environment: "test", ClockSkew: 10 * time.Millisecond, PrincipalHeader: principalHdr},
		Routes: []policy.Route{chargeRoute(), get, orders},
	}
	if mod != nil {
		mod(b)
	}
	return b
}

// routeByID returns the fixture route id of b for modification.
func routeByID(t testing.TB, b *policy.Bundle, id string) *policy.Route {
	t.Helper()
	for i := range b.Routes {
		if b.Routes[i].ID == id {
			return &b.Routes[i]
		}
	}
	t.Fatalf("no route %q", id)
	return nil
}

// newTestEngine returns an engine with b installed, deciding at clock with store.
func newTestEngine(t testing.TB, clock engine.Clock, store idempotency.Store, b *policy.Bundle) *engine.Engine {
	t.Helper()
	return newTestEngineWithMetrics(t, clock, store, nil, b)
}

// newTestEngineWithMetrics is newTestEngine with metrics m (nil: discarded).
func newTestEngineWithMetrics(t testing.TB, clock engine.Clock, store idempotency.Store, m *metrics.Filter, b *policy.Bundle) *engine.Engine {
	t.Helper()
	for i := range b.Routes {
		if err := b.Routes[i].Validate(); err != nil {
			t.Fatalf("fixture: %v", err)
		}
	}
	e := engine.New(engine.Options{Clock: clock, Store: store, Metrics: m})
	e.SetBundle(b)
	return e
}
