package engine

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hopguard/hopguard/filters/idempotency"
	"github.com/hopguard/hopguard/policy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// t0 is the fake clock's start: a round second, so budget buckets and
// latency windows start at a boundary.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeClock is a settable Clock, safe for concurrent use.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fakeStore is a map-backed idempotency.Store with error injection and a
// call log, safe for concurrent use.
type fakeStore struct {
	mu    sync.Mutex
	recs  map[idempotency.Scope]idempotency.Record
	next  uint64
	err   error
	calls []string
}

var _ idempotency.Store = (*fakeStore)(nil)

func newFakeStore() *fakeStore { return &fakeStore{recs: map[idempotency.Scope]idempotency.Record{}} }

func (s *fakeStore) live(sc idempotency.Scope, now time.Time) (idempotency.Record, bool) {
	r, ok := s.recs[sc]
	if ok && !now.Before(r.ExpiresAt) {
		delete(s.recs, sc)
		return idempotency.Record{}, false
	}
	return r, ok
}

func (s *fakeStore) Claim(_ context.Context, sc idempotency.Scope, fp uint64, now time.Time, inFlightFor time.Duration) (idempotency.ClaimResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "claim")
	if s.err != nil {
		return idempotency.ClaimResult{}, s.err
	}
	if r, ok := s.live(sc, now); ok {
		return idempotency.ClaimResult{Existing: r}, nil
	}
	s.next++
	s.recs[sc] = idempotency.Record{State: idempotency.InFlight, Fingerprint: fp, Token: s.next, GRPCStatus: -1, ExpiresAt: now.Add(inFlightFor)}
	return idempotency.ClaimResult{Claimed: true, Token: s.next}, nil
}

func (s *fakeStore) Complete(_ context.Context, sc idempotency.Scope, token uint64, out idempotency.Outcome, now time.Time, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "complete")
	r, ok := s.live(sc, now)
	if !ok || r.State != idempotency.InFlight || r.Token != token {
		return idempotency.ErrIllegalTransition
	}
	r.State, r.HTTPStatus, r.GRPCStatus, r.ExpiresAt = idempotency.Completed, out.HTTPStatus, out.GRPCStatus, now.Add(ttl)
	s.recs[sc] = r
	return nil
}

func (s *fakeStore) Release(_ context.Context, sc idempotency.Scope, token uint64, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "release")
	r, ok := s.live(sc, now)
	if !ok || r.State != idempotency.InFlight || r.Token != token {
		return idempotency.ErrIllegalTransition
	}
	delete(s.recs, sc)
	return nil
}

func (s *fakeStore) Get(_ context.Context, sc idempotency.Scope, now time.Time) (idempotency.Record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.live(sc, now)
	return r, ok, nil
}

func (s *fakeStore) record(sc idempotency.Scope) (idempotency.Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[sc]
	return r, ok
}

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
