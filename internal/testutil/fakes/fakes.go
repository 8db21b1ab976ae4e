// Package fakes has the test doubles the filters' tests share: a settable
// clock and a map-backed idempotency store, each safe for concurrent use.
// The store follows the state machine of idempotency.Store without the
// production stores' code, so a test of an adapter does not depend on it.
package fakes

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/hopguard/hopguard/filters/idempotency"
)

// Clock is a settable clock.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock that reads start until advanced.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Store is a map-backed idempotency.Store, atomic under one mutex, with a
// log of the calls made and an injectable Claim error. Tokens count up
// from 1.
type Store struct {
	mu       sync.Mutex
	recs     map[idempotency.Scope]idempotency.Record
	token    uint64
	claimErr error
	calls    []string
}

var _ idempotency.Store = (*Store)(nil)

// NewStore returns an empty store.
func NewStore() *Store { return &Store{recs: map[idempotency.Scope]idempotency.Record{}} }

// live returns sc's record unless it expired by now (then it is removed).
func (s *Store) live(sc idempotency.Scope, now time.Time) (idempotency.Record, bool) {
	r, ok := s.recs[sc]
	if ok && !now.Before(r.ExpiresAt) {
		delete(s.recs, sc)
		return idempotency.Record{}, false
	}
	return r, ok
}

// Claim implements idempotency.Store; it fails with the error of
// SetClaimErr when one is set.
func (s *Store) Claim(_ context.Context, sc idempotency.Scope, fp uint64, now time.Time, inFlightFor time.Duration) (idempotency.ClaimResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "claim")
	if s.claimErr != nil {
		return idempotency.ClaimResult{}, s.claimErr
	}
	if r, ok := s.live(sc, now); ok {
		r.Token = 0 // a token is the claimer's alone
		return idempotency.ClaimResult{Existing: r}, nil
	}
	s.token++
	s.recs[sc] = idempotency.Record{State: idempotency.InFlight, Fingerprint: fp, Token: s.token, GRPCStatus: -1, ExpiresAt: now.Add(inFlightFor)}
	return idempotency.ClaimResult{Claimed: true, Token: s.token}, nil
}

// Complete implements idempotency.Store.
func (s *Store) Complete(_ context.Context, sc idempotency.Scope, token uint64, out idempotency.Outcome, now time.Time, ttl time.Duration) error {
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

// Release implements idempotency.Store.
func (s *Store) Release(_ context.Context, sc idempotency.Scope, token uint64, now time.Time) error {
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

// Get implements idempotency.Store.
func (s *Store) Get(_ context.Context, sc idempotency.Scope, now time.Time) (idempotency.Record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.live(sc, now)
	r.Token = 0
	return r, ok, nil
}

// SetClaimErr makes every Claim fail with err (nil: answer again).
func (s *Store) SetClaimErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.claimErr = err
}

// Calls returns the operations called so far, in order ("claim",
// "complete", "release"; Get is not logged).
func (s *Store) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Record returns sc's record as stored (token included, expired or not).
func (s *Store) Record(sc idempotency.Scope) (idempotency.Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[sc]
	return r, ok
}

// State returns the state of a record whose key is key (Absent when none).
func (s *Store) State(key string) idempotency.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sc, r := range s.recs {
		if sc.Key == key {
			return r.State
		}
	}
	return idempotency.Absent
}

// Records returns a copy of every stored record, expired or not.
func (s *Store) Records() map[idempotency.Scope]idempotency.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.recs)
}
