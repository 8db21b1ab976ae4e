package engine

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hopguard/hopguard/internal/testutil/fakes"
	"github.com/hopguard/hopguard/policy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// t0 is the fake clock's start: a round second, so budget buckets and
// latency windows start at a boundary.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeClock and fakeStore are the shared test doubles; the clock starts at t0.
type (
	fakeClock = fakes.Clock
	fakeStore = fakes.Store
)

func newFakeClock() *fakeClock { return fakes.NewClock(t0) }

func newFakeStore() *fakeStore { return fakes.NewStore() }

// testRoute returns a valid gRPC route "shop/<name>" for shop.Orders/<name>
// with mesh authority, 3 attempts, no side effects; mods adjust it.
func testRoute(name string, mods ...func(*policy.Route)) policy.Route {
	r := policy.Route{
		ID:      "shop/" + name,
		Service: "orders",
		Match:   policy.Match{GRPCService: "shop.Orders", GRPCMethod: name},
		Deadline: policy.Deadline{
			Default:      800 * time.Millisecond,
			Max:          2 * time.Second,
			MinRemaining: 20 * time.Millisecond,
		},
		Retry: policy.Retry{
			Authority:          policy.AuthorityMesh,
			Attempts:           3,
			On:                 []string{"unavailable"},
			PerTryTimeout:      250 * time.Millisecond,
			BackoffBase:        25 * time.Millisecond,
			BackoffMax:         250 * time.Millisecond,
			MinRemaining:       100 * time.Millisecond,
			BudgetRatio:        0.1,
			BudgetMinPerSecond: 5,
		},
		Idempotency: policy.Idempotency{Require: policy.RequireAlways, Header: "idempotency-key", TTL: time.Hour},
	}
	for _, m := range mods {
		m(&r)
	}
	return r
}

// testEngine returns an engine on a fake clock and store with routes installed.
func testEngine(t testing.TB, routes ...policy.Route) (*Engine, *fakeClock, *fakeStore) {
	t.Helper()
	for i := range routes {
		if err := routes[i].Validate(); err != nil {
			t.Fatalf("test route invalid: %v", err)
		}
	}
	clk, st := newFakeClock(), newFakeStore()
	e := New(Options{Clock: clk, Store: st})
	e.SetBundle(&policy.Bundle{Mesh: policy.Mesh{ClockSkew: 10 * time.Millisecond}, Routes: routes})
	return e, clk, st
}

// mustRoute returns the installed route id or fails the test.
func mustRoute(t testing.TB, e *Engine, id string) *Route {
	t.Helper()
	r := e.Route(id)
	if r == nil {
		t.Fatalf("route %q not installed", id)
	}
	return r
}
