package engine

import (
	"testing"

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
	base := idempotency.Fingerprint(m, p)

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
