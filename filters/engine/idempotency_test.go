package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hopguard/hopguard/filters/idempotency"
	"github.com/hopguard/hopguard/filters/metrics"
	"github.com/hopguard/hopguard/policy"
)

func TestIdempotency_ClaimAndDuplicates(t *testing.T) {
	p := testRoute("Pay", sideEffects(policy.RequireAlways))
	e, clk, st := testEngine(t, p)
	r := mustRoute(t, e, p.ID)
	ctx := context.Background()
	f := Facts{Method: "POST", Path: "/shop.Orders/Pay", HasKey: true, Key: "key-1", Principal: "alice", GRPCTimeout: 500 * time.Millisecond}

	first := e.Decide(ctx, r, &f)
	wantScope := idempotency.Scope{Route: p.ID, Side: "inbound", Principal: "alice", Key: "key-1"}
	if first.Reject || first.Claim == nil {
		t.Fatalf("first request = %+v, want allowed with a claim", first)
	}
	if diff := cmp.Diff(*first.Claim, Claim{Scope: wantScope, Token: 1, TTL: time.Hour}); diff != "" {
		t.Errorf("claim (-got +want):\n%s", diff)
	}
	rec, _ := st.Record(wantScope)
	if want := t0.Add(500*time.Millisecond + inFlightGrace); !rec.ExpiresAt.Equal(want) || rec.Fingerprint != plainFingerprint("POST", "/shop.Orders/Pay") {
		t.Errorf("in-flight record = %+v, want expiry %v and the method/path fingerprint", rec, want)
	}

	if d := e.Decide(ctx, r, &f); d.Reason != ReasonIdempotencyInFlight || !d.Reject {
		t.Errorf("concurrent duplicate = %v, want %v", d.Reason, ReasonIdempotencyInFlight)
	}
	other := f
	other.Path = "/shop.Orders/Refund"
	if d := e.Decide(ctx, r, &other); d.Reason != ReasonIdempotencyKeyReused {
		t.Errorf("reuse with another request = %v, want %v", d.Reason, ReasonIdempotencyKeyReused)
	}
	// Other principal or side: another scope, claims independently.
	bob := f
	bob.Principal = "bob"
	if d := e.Decide(ctx, r, &bob); d.Claim == nil {
		t.Errorf("another principal's key = %+v, want a claim", d)
	}
	out := f
	out.Side = Outbound
	if d := e.Decide(ctx, r, &out); d.Claim == nil {
		t.Errorf("the same key outbound = %+v, want a claim", d)
	}

	clk.Advance(50 * time.Millisecond)
	e.Finish(ctx, r, &first, t0, Outcome{HTTPStatus: 200, GRPCStatus: 0, HeadersAt: clk.Now()})
	if first.Claim != nil {
		t.Error("Finish left the claim on the decision")
	}
	rec, _ = st.Record(wantScope)
	if rec.State != idempotency.Completed || rec.GRPCStatus != 0 || rec.HTTPStatus != 200 || !rec.ExpiresAt.Equal(clk.Now().Add(time.Hour)) {
		t.Errorf("record after Finish = %+v, want completed for the TTL", rec)
	}
	if d := e.Decide(ctx, r, &f); d.Reason != ReasonIdempotencyCompleted || d.Replay != nil {
		t.Errorf("duplicate after completion = %v (replay %v), want %v without replay", d.Reason, d.Replay, ReasonIdempotencyCompleted)
	}
	if d := e.Decide(ctx, r, &other); d.Reason != ReasonIdempotencyKeyReused {
		t.Errorf("reuse of a completed key = %v, want %v (checked first)", d.Reason, ReasonIdempotencyKeyReused)
	}
}

// TestIdempotency_FingerprintSettingsChange: records made before a change
// to what a route fingerprints answer a retry by key alone (the recorded
// outcome, never a refusal as reuse and never a second execution); records
// made after it tell reuse apart again.
func TestIdempotency_FingerprintSettingsChange(t *testing.T) {
	p := testRoute("Pay", sideEffects(policy.RequireAlways))
	e, _, _ := testEngine(t, p)
	r := mustRoute(t, e, p.ID)
	ctx := context.Background()
	// The route as it reads after the change: x-amount is fingerprinted.
	after := &Route{Policy: testRoute("Pay", sideEffects(policy.RequireAlways), func(r *policy.Route) {
		r.Idempotency.FingerprintHeaders = []string{"x-amount"}
	})}
	const m, path = "POST", "/shop.Orders/Pay"
	amount := func(v string) func(string) (string, bool) {
		return func(name string) (string, bool) { return v, name == "x-amount" }
	}
	facts := func(key string, fp uint64) *Facts {
		return &Facts{Method: m, Path: path, HasKey: true, Key: key, Fingerprint: fp}
	}

	// Completed before the change, under method+path alone.
	old := e.Decide(ctx, r, facts("before", 0))
	if old.Claim == nil {
		t.Fatalf("first request = %+v, want a claim", old)
	}
	e.Finish(ctx, r, &old, t0, Outcome{HTTPStatus: 201, GRPCStatus: -1})
	if d := e.Decide(ctx, r, facts("before", RequestFingerprint(after, m, path, amount("10"), nil, false))); d.Reason != ReasonIdempotencyCompleted {
		t.Errorf("retry after the change of a key completed before it = %v, want %v", d.Reason, ReasonIdempotencyCompleted)
	}
	// In flight before the change: still in flight, not a reuse.
	if d := e.Decide(ctx, r, facts("in-flight", 0)); d.Claim == nil {
		t.Fatalf("in-flight request = %+v, want a claim", d)
	}
	if d := e.Decide(ctx, r, facts("in-flight", RequestFingerprint(after, m, path, amount("10"), nil, false))); d.Reason != ReasonIdempotencyInFlight {
		t.Errorf("duplicate after the change of a key in flight before it = %v, want %v", d.Reason, ReasonIdempotencyInFlight)
	}

	// Claimed after the change: another amount under the same key is a reuse,
	// the same amount a duplicate, and so is an old filter's method+path
	// fingerprint (it cannot tell).
	d := e.Decide(ctx, r, facts("after", RequestFingerprint(after, m, path, amount("10"), nil, false)))
	if d.Claim == nil {
		t.Fatalf("request after the change = %+v, want a claim", d)
	}
	e.Finish(ctx, r, &d, t0, Outcome{HTTPStatus: 201, GRPCStatus: -1})
	for _, c := range []struct {
		name string
		fp   uint64
		want Reason
	}{
		{"another amount", RequestFingerprint(after, m, path, amount("20"), nil, false), ReasonIdempotencyKeyReused},
		{"the same amount", RequestFingerprint(after, m, path, amount("10"), nil, false), ReasonIdempotencyCompleted},
		{"a filter on the old policy", 0, ReasonIdempotencyCompleted},
	} {
		if got := e.Decide(ctx, r, facts("after", c.fp)); got.Reason != c.want {
			t.Errorf("%s = %v, want %v", c.name, got.Reason, c.want)
		}
	}
}

func TestIdempotency_Replay(t *testing.T) {
	p := testRoute("Pay", sideEffects(policy.RequireAlways), func(r *policy.Route) { r.Idempotency.Replay = true })
	e, _, _ := testEngine(t, p)
	r := mustRoute(t, e, p.ID)
	ctx := context.Background()
	f := Facts{HasKey: true, Key: "k", Fingerprint: 42}
	d := e.Decide(ctx, r, &f)
	e.Finish(ctx, r, &d, t0, Outcome{HTTPStatus: 201, GRPCStatus: -1})
	dup := e.Decide(ctx, r, &f)
	if !dup.Reject || dup.Reason != ReasonIdempotencyCompleted || dup.Replay == nil {
		t.Fatalf("replayed duplicate = %+v, want Reject with Replay", dup)
	}
	if dup.Replay.HTTPStatus != 201 || dup.Replay.Fingerprint != 42 {
		t.Errorf("replay record = %+v, want status 201 of fingerprint 42", dup.Replay)
	}
}

func TestIdempotency_FinishReleasesRetryableFailures(t *testing.T) {
	tests := []struct {
		name        string
		out         Outcome
		wantRelease bool
	}{
		{"ok", Outcome{HTTPStatus: 200, GRPCStatus: 0}, false},
		{"http 201", Outcome{HTTPStatus: 201, GRPCStatus: -1}, false},
		{"http 400 is final", Outcome{HTTPStatus: 400, GRPCStatus: -1}, false},
		{"http 429 is final", Outcome{HTTPStatus: 429, GRPCStatus: -1}, false},
		{"http 501 is final", Outcome{HTTPStatus: 501, GRPCStatus: -1}, false},
		{"http 500", Outcome{HTTPStatus: 500, GRPCStatus: -1}, true},
		{"http 503", Outcome{HTTPStatus: 503, GRPCStatus: -1}, true},
		{"grpc invalid argument is final", Outcome{HTTPStatus: 200, GRPCStatus: 3}, false},
		{"grpc already exists is final", Outcome{HTTPStatus: 200, GRPCStatus: 6}, false},
		{"grpc unimplemented is final", Outcome{HTTPStatus: 200, GRPCStatus: 12}, false},
		{"grpc cancelled", Outcome{HTTPStatus: 200, GRPCStatus: 1}, true},
		{"grpc deadline exceeded", Outcome{HTTPStatus: 200, GRPCStatus: 4}, true},
		{"grpc resource exhausted", Outcome{HTTPStatus: 200, GRPCStatus: 8}, true},
		{"grpc aborted", Outcome{HTTPStatus: 200, GRPCStatus: 10}, true},
		{"grpc internal", Outcome{HTTPStatus: 200, GRPCStatus: 13}, true},
		{"grpc unavailable", Outcome{HTTPStatus: 200, GRPCStatus: 14}, true},
		{"stream aborted", Outcome{Aborted: true, GRPCStatus: -1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testRoute("Pay", sideEffects(policy.RequireAlways))
			e, _, st := testEngine(t, p)
			r := mustRoute(t, e, p.ID)
			ctx := context.Background()
			f := Facts{HasKey: true, Key: "k"}
			d := e.Decide(ctx, r, &f)
			e.Finish(ctx, r, &d, t0, tt.out)
			e.Finish(ctx, r, &d, t0, tt.out) // a second call must not reach the store
			wantCalls := []string{"claim", "complete"}
			if tt.wantRelease {
				wantCalls = []string{"claim", "release"}
			}
			if diff := cmp.Diff(st.Calls(), wantCalls); diff != "" {
				t.Errorf("store calls (-got +want):\n%s", diff)
			}
			// A released key can be claimed by the retry; a completed one cannot.
			retry := e.Decide(ctx, r, &Facts{HasKey: true, Key: "k", EnvoyAttemptCount: 2})
			if got := retry.Claim != nil; got != tt.wantRelease {
				t.Errorf("retry claimed = %v (%v), want %v", got, retry.Reason, tt.wantRelease)
			}
		})
	}
}

func TestIdempotency_Applicability(t *testing.T) {
	tests := []struct {
		name      string
		route     policy.Route
		facts     Facts
		want      Reason
		wantClaim bool
	}{
		{"side effects, require always, key", testRoute("Pay", sideEffects(policy.RequireAlways)), Facts{HasKey: true, Key: "k"}, ReasonNone, true},
		{"side effects, require retries, first without key", testRoute("Pay", sideEffects(policy.RequireRetries)), Facts{}, ReasonNone, false},
		{"side effects, require retries, first with key", testRoute("Pay", sideEffects(policy.RequireRetries)), Facts{HasKey: true, Key: "k"}, ReasonNone, true},
		{"side effects, require never, no key", testRoute("Pay", sideEffects(policy.RequireNever), func(r *policy.Route) { r.Retry.Attempts = 1 }), Facts{}, ReasonNone, false},
		{"side effects, require never, key de-duplicates", testRoute("Pay", sideEffects(policy.RequireNever), func(r *policy.Route) { r.Retry.Attempts = 1 }), Facts{HasKey: true, Key: "k"}, ReasonNone, true},
		{"no side effects, require always, no key", testRoute("Get"), Facts{}, ReasonNone, false},
		{"no side effects, key de-duplicates", testRoute("Get"), Facts{HasKey: true, Key: "k"}, ReasonNone, true},
		{"no side effects, require never, key ignored", testRoute("Get", func(r *policy.Route) { r.Idempotency.Require = policy.RequireNever }), Facts{HasKey: true, Key: "bad\x00"}, ReasonNone, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _, _ := testEngine(t, tt.route)
			d := e.Decide(context.Background(), mustRoute(t, e, tt.route.ID), &tt.facts)
			if d.Reason != tt.want || (d.Claim != nil) != tt.wantClaim {
				t.Errorf("Decide = %v (claim %v), want %v (claim %v)", d.Reason, d.Claim != nil, tt.want, tt.wantClaim)
			}
		})
	}
}

func TestIdempotency_StoreUnavailable(t *testing.T) {
	storeErr := errors.Join(idempotency.ErrUnavailable, errors.New("redis: connection refused"))
	tests := []struct {
		name  string
		route policy.Route
		want  Reason
	}{
		{"side effects fail closed", testRoute("Pay", sideEffects(policy.RequireAlways)), ReasonIdempotencyStoreUnavailable},
		{"other routes fail open", testRoute("Get"), ReasonNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _, st := testEngine(t, tt.route)
			st.SetClaimErr(storeErr)
			d := e.Decide(context.Background(), mustRoute(t, e, tt.route.ID), &Facts{HasKey: true, Key: "k"})
			if d.Reason != tt.want || d.Claim != nil {
				t.Errorf("Decide = %v (claim %v), want %v without claim", d.Reason, d.Claim != nil, tt.want)
			}
		})
	}
}

func TestIdempotency_DefaultStoreIsLRU(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	e := New(Options{Clock: newFakeClock(), Metrics: m})
	p := testRoute("Pay", sideEffects(policy.RequireAlways))
	e.SetBundle(&policy.Bundle{Routes: []policy.Route{p}})
	r := mustRoute(t, e, p.ID)
	ctx := context.Background()
	f := Facts{HasKey: true, Key: "k"}
	d := e.Decide(ctx, r, &f)
	if d.Claim == nil {
		t.Fatalf("default store: Decide = %v without a claim", d.Reason)
	}
	if dup := e.Decide(ctx, r, &f); dup.Reason != ReasonIdempotencyInFlight {
		t.Errorf("duplicate = %v, want %v", dup.Reason, ReasonIdempotencyInFlight)
	}
	e.Finish(ctx, r, &d, t0, Outcome{HTTPStatus: 200, GRPCStatus: 0})
	if dup := e.Decide(ctx, r, &f); dup.Reason != ReasonIdempotencyCompleted {
		t.Errorf("duplicate after completion = %v, want %v", dup.Reason, ReasonIdempotencyCompleted)
	}
	// The store reports to the engine's metrics.
	if got := testutil.ToFloat64(m.Decisions(p.ID, "inbound", metrics.DecisionReject, "idempotency-completed")); got != 1 {
		t.Errorf("completed rejections = %v, want 1", got)
	}
	if n := testutil.CollectAndCount(reg, "hopguard_idempotency_transitions_total"); n < 2 {
		t.Errorf("transition series = %d, want ≥ 2 (claim, complete)", n)
	}
}

// TestIdempotency_DryRunClaimLastsDeadlineMax: a dry-run route does not
// bound the request, so its key stays claimed for at least deadline.max
// (the longest the mesh lets a call run), not the shorter default an
// enforcing route would cut the request at; never for a caller's
// arbitrarily long deadline.
func TestIdempotency_DryRunClaimLastsDeadlineMax(t *testing.T) {
	for _, tc := range []struct {
		dryRun  bool
		timeout time.Duration
		want    time.Duration
	}{
		{false, 0, 800 * time.Millisecond},                // deadline.default
		{true, 0, 2 * time.Second},                        // deadline.max
		{false, 10 * time.Second, 2 * time.Second},        // clamped to deadline.max
		{true, 10 * time.Second, 2 * time.Second},         // still deadline.max
		{true, time.Duration(1<<63 - 1), 2 * time.Second}, // no overflow
	} {
		p := testRoute("Pay", sideEffects(policy.RequireAlways), func(r *policy.Route) { r.DryRun = tc.dryRun })
		e, _, st := testEngine(t, p)
		r := mustRoute(t, e, p.ID)
		f := Facts{Method: "POST", Path: "/shop.Orders/Pay", HasKey: true, Key: "k", GRPCTimeout: tc.timeout}
		if d := e.Decide(context.Background(), r, &f); d.Claim == nil {
			t.Fatalf("%+v: no claim: %+v", tc, d)
		}
		rec, _ := st.Record(idempotency.Scope{Route: p.ID, Side: "inbound", Key: "k"})
		if want := t0.Add(tc.want + inFlightGrace); !rec.ExpiresAt.Equal(want) {
			t.Errorf("dry-run %v, caller timeout %v: claim expires %v after the request, want %v",
				tc.dryRun, tc.timeout, rec.ExpiresAt.Sub(t0), want.Sub(t0))
		}
	}
}
