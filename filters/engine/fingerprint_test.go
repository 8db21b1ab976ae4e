package engine

import (
	"context"
	"testing"
	"time"

	"github.com/hopguard/hopguard/filters/idempotency"
	"github.com/hopguard/hopguard/policy"
)

func TestRequestFingerprint(t *testing.T) {
	plain := &Route{Policy: testRoute("Charge")}
	withHeaders := &Route{Policy: testRoute("Charge", func(r *policy.Route) {
		r.Idempotency.FingerprintHeaders = []string{"x-amount", "x-account"}
	})}
	withBody := &Route{Policy: testRoute("Charge", func(r *policy.Route) { r.Idempotency.FingerprintBody = true })}
	headers := func(kv map[string]string) func(string) (string, bool) {
		return func(name string) (string, bool) { v, ok := kv[name]; return v, ok }
	}
	const m, p = "POST", "/shop.Orders/Charge"
	base := plainFingerprint(m, p)

	if got := RequestFingerprint(plain, m, p, headers(map[string]string{"x-amount": "1"}), []byte("body"), true); got != base {
		t.Errorf("route without fingerprint headers or body: %x, want the method+path fingerprint %x", got, base)
	}
	if got := RequestFingerprint(withBody, m, p, nil, nil, false); got != base {
		t.Errorf("body route without a body: %x, want %x", got, base)
	}

	a10 := RequestFingerprint(withHeaders, m, p, headers(map[string]string{"x-amount": "10", "x-account": "a"}), nil, false)
	distinct := map[string]uint64{
		"amount 10":         a10,
		"amount 20":         RequestFingerprint(withHeaders, m, p, headers(map[string]string{"x-amount": "20", "x-account": "a"}), nil, false),
		"other account":     RequestFingerprint(withHeaders, m, p, headers(map[string]string{"x-amount": "10", "x-account": "b"}), nil, false),
		"amount absent":     RequestFingerprint(withHeaders, m, p, headers(map[string]string{"x-account": "a"}), nil, false),
		"amount empty":      RequestFingerprint(withHeaders, m, p, headers(map[string]string{"x-amount": "", "x-account": "a"}), nil, false),
		"values swapped":    RequestFingerprint(withHeaders, m, p, headers(map[string]string{"x-amount": "a", "x-account": "10"}), nil, false),
		"other path":        RequestFingerprint(withHeaders, m, "/shop.Orders/Refund", headers(map[string]string{"x-amount": "10", "x-account": "a"}), nil, false),
		"method+path only":  base,
		"body one":          RequestFingerprint(withBody, m, p, nil, []byte{1}, true),
		"body two":          RequestFingerprint(withBody, m, p, nil, []byte{2}, true),
		"empty body (sent)": RequestFingerprint(withBody, m, p, nil, nil, true),
	}
	seen := map[uint64]string{}
	for name, fp := range distinct {
		if other, dup := seen[fp]; dup {
			t.Errorf("%q and %q share fingerprint %x", name, other, fp)
		}
		seen[fp] = name
	}
	if again := RequestFingerprint(withHeaders, m, p, headers(map[string]string{"x-account": "a", "x-amount": "10", "x-other": "z"}), nil, false); again != a10 {
		t.Errorf("same selected headers (and an unselected one): %x, want %x", again, a10)
	}
	// Each route setting is its own scheme: fingerprints compare within one.
	if !idempotency.Reused(a10, distinct["amount 20"]) || !idempotency.Reused(distinct["body one"], distinct["body two"]) {
		t.Error("fingerprints of one scheme and different requests are not a reuse")
	}
	if idempotency.Reused(base, a10) || idempotency.Reused(a10, distinct["body one"]) || idempotency.Reused(base, distinct["body one"]) {
		t.Error("fingerprints of different route settings compare as a reuse; want them not comparable")
	}
	if again := RequestFingerprint(withBody, m, p, nil, []byte{1}, true); again != distinct["body one"] {
		t.Errorf("same body: %x, want %x", again, distinct["body one"])
	}
}

func BenchmarkRequestFingerprint_Headers(b *testing.B) {
	r := &Route{Policy: testRoute("Charge", func(r *policy.Route) {
		r.Idempotency.FingerprintHeaders = []string{"x-amount", "x-account"}
	})}
	kv := map[string]string{"x-amount": "1999", "x-account": "acct-42"}
	header := func(name string) (string, bool) { v, ok := kv[name]; return v, ok }
	b.ReportAllocs()
	for b.Loop() {
		RequestFingerprint(r, "POST", "/shop.Orders/Charge", header, nil, false)
	}
}

// TestDecide_FingerprintFuncOnlyWhenDeduplicating: the adapter's
// fingerprint (which may hash a body) is computed only when the request
// reaches the idempotency check, and is what the record is claimed with.
func TestDecide_FingerprintFuncOnlyWhenDeduplicating(t *testing.T) {
	sideEffects := testRoute("Charge", func(r *policy.Route) { r.SideEffects = true })
	readOnly := testRoute("Get", func(r *policy.Route) { r.Idempotency.Require = policy.RequireNever })
	e, _, store := testEngine(t, sideEffects, readOnly)
	calls := 0
	facts := func(key string, grpcTimeout time.Duration) *Facts {
		return &Facts{Method: "POST", Path: "/shop.Orders/Charge", HasKey: true, Key: key, GRPCTimeout: grpcTimeout,
			FingerprintFunc: func() uint64 { calls++; return 42 }}
	}
	if d := e.Decide(context.Background(), mustRoute(t, e, sideEffects.ID), facts("k1", time.Millisecond)); d.Reason != ReasonDeadlineExhausted {
		t.Fatalf("1ms left: %v, want %v", d.Reason, ReasonDeadlineExhausted)
	}
	if d := e.Decide(context.Background(), mustRoute(t, e, readOnly.ID), facts("k2", time.Second)); d.Reject || d.Claim != nil {
		t.Fatalf("read-only route: %+v, want allowed without a claim", d)
	}
	if calls != 0 {
		t.Errorf("fingerprint computed %d times for requests never de-duplicated, want 0", calls)
	}
	d := e.Decide(context.Background(), mustRoute(t, e, sideEffects.ID), facts("k3", time.Second))
	if d.Reject || d.Claim == nil || calls != 1 {
		t.Fatalf("keyed side effect: %+v after %d fingerprint calls, want a claim after 1", d, calls)
	}
	if rec, ok := store.Record(d.Claim.Scope); !ok || rec.Fingerprint != 42 {
		t.Errorf("claimed record %+v, want fingerprint 42", rec)
	}
}
