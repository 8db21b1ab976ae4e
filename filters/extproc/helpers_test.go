package extproc

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hopguard/hopguard/filters/engine"
	"github.com/hopguard/hopguard/filters/idempotency"
	"github.com/hopguard/hopguard/filters/metrics"
	"github.com/hopguard/hopguard/policy"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeClock is a settable clock shared by the engine and the server.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// memStore is a map-backed idempotency.Store, atomic under one mutex, so
// these tests do not depend on the production store's implementation.
type memStore struct {
	mu    sync.Mutex
	recs  map[idempotency.Scope]idempotency.Record
	token uint64
}

var _ idempotency.Store = (*memStore)(nil)

func newMemStore() *memStore { return &memStore{recs: map[idempotency.Scope]idempotency.Record{}} }

func (s *memStore) live(sc idempotency.Scope, now time.Time) (idempotency.Record, bool) {
	r, ok := s.recs[sc]
	if ok && !now.Before(r.ExpiresAt) {
		delete(s.recs, sc)
		return idempotency.Record{}, false
	}
	return r, ok
}

func (s *memStore) Claim(_ context.Context, sc idempotency.Scope, fp uint64, now time.Time, inFlightFor time.Duration) (idempotency.ClaimResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.live(sc, now); ok {
		return idempotency.ClaimResult{Existing: r}, nil
	}
	s.token++
	s.recs[sc] = idempotency.Record{State: idempotency.InFlight, Fingerprint: fp, Token: s.token, GRPCStatus: -1, ExpiresAt: now.Add(inFlightFor)}
	return idempotency.ClaimResult{Claimed: true, Token: s.token}, nil
}

func (s *memStore) Complete(_ context.Context, sc idempotency.Scope, token uint64, out idempotency.Outcome, now time.Time, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.live(sc, now)
	if !ok || r.State != idempotency.InFlight || r.Token != token {
		return idempotency.ErrIllegalTransition
	}
	r.State, r.HTTPStatus, r.GRPCStatus, r.ExpiresAt = idempotency.Completed, out.HTTPStatus, out.GRPCStatus, now.Add(ttl)
	s.recs[sc] = r
	return nil
}

func (s *memStore) Release(_ context.Context, sc idempotency.Scope, token uint64, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.live(sc, now)
	if !ok || r.State != idempotency.InFlight || r.Token != token {
		return idempotency.ErrIllegalTransition
	}
	delete(s.recs, sc)
	return nil
}

func (s *memStore) Get(_ context.Context, sc idempotency.Scope, now time.Time) (idempotency.Record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.live(sc, now)
	return r, ok, nil
}

// state returns the state of the only record whose key is key (Absent when none).
func (s *memStore) state(key string) idempotency.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sc, r := range s.recs {
		if sc.Key == key {
			return r.State
		}
	}
	return idempotency.Absent
}

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
