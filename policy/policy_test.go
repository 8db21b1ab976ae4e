package policy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func validRoute() Route {
	return Route{
		ID:      "shop/create-charge",
		Service: "payments",
		Match:   Match{GRPCService: "shop.Payments", GRPCMethod: "CreateCharge"},
		Deadline: Deadline{
			Default: 800 * time.Millisecond, Max: 2 * time.Second, MinRemaining: 20 * time.Millisecond,
		},
		Retry: Retry{
			Authority: AuthorityMesh, Attempts: 3, On: []string{"unavailable"},
			PerTryTimeout: 250 * time.Millisecond, BackoffBase: 25 * time.Millisecond, BackoffMax: 250 * time.Millisecond,
			MinRemainingAuto: true, BudgetRatio: 0.1, BudgetMinPerSecond: 5,
		},
		SideEffects: true,
		Idempotency: Idempotency{Require: RequireAlways, Header: "idempotency-key", TTL: 24 * time.Hour},
	}
}

func TestRouteValidate_Success(t *testing.T) {
	r := validRoute()
	if err := r.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestRouteValidate_Errors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Route)
		want   string
	}{
		{"no match", func(r *Route) { r.Match = Match{} }, "exactly one of"},
		{"two matches", func(r *Route) { r.Match.Path = "/x" }, "exactly one of"},
		{"grpc without method", func(r *Route) { r.Match.GRPCMethod = "" }, "without method"},
		{"default above max", func(r *Route) { r.Deadline.Default = 3 * time.Second }, "minRemaining < default ≤ max"},
		{"minRemaining at default", func(r *Route) { r.Deadline.MinRemaining = r.Deadline.Default }, "minRemaining < default ≤ max"},
		{"zero attempts", func(r *Route) { r.Retry.Attempts = 0 }, "attempts 0 < 1"},
		{"unknown authority", func(r *Route) { r.Retry.Authority = "sidecar" }, `unknown retry authority "sidecar"`},
		{"backoff inverted", func(r *Route) { r.Retry.BackoffMax = time.Millisecond }, "backoff"},
		{"budget ratio above 1", func(r *Route) { r.Retry.BudgetRatio = 1.5 }, "budget"},
		{"unknown require", func(r *Route) { r.Idempotency.Require = "sometimes" }, "unknown idempotency requirement"},
		{"empty header", func(r *Route) { r.Idempotency.Header = "" }, "empty idempotency header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := validRoute()
			tc.mutate(&r)
			err := r.Validate()
			if err == nil {
				t.Fatal("Validate: got nil, want an error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Validate: %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate: %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestDigestIsStableAndSensitive(t *testing.T) {
	a, b := validRoute(), validRoute()
	if a.Digest() != b.Digest() {
		t.Fatalf("equal routes have different digests %s and %s", a.Digest(), b.Digest())
	}
	if len(a.Digest()) != 16 {
		t.Errorf("digest %q: want 16 hex digits", a.Digest())
	}
	b.Retry.Attempts = 2
	if a.Digest() == b.Digest() {
		t.Error("routes that differ in attempts share a digest")
	}
}

func TestMeshRetries(t *testing.T) {
	for _, tc := range []struct {
		auth     Authority
		attempts int
		want     int
	}{
		{AuthorityMesh, 3, 2},
		{AuthorityMesh, 1, 0},
		{AuthorityApp, 3, 0},
		{AuthorityNone, 3, 0},
	} {
		r := Retry{Authority: tc.auth, Attempts: tc.attempts}
		if got := r.MeshRetries(); got != tc.want {
			t.Errorf("MeshRetries(%s, %d) = %d, want %d", tc.auth, tc.attempts, got, tc.want)
		}
	}
}

func TestMatchHTTPPath(t *testing.T) {
	for _, tc := range []struct {
		m          Match
		wantPath   string
		wantPrefix bool
	}{
		{Match{GRPCService: "shop.Payments", GRPCMethod: "CreateCharge"}, "/shop.Payments/CreateCharge", false},
		{Match{GRPCService: "shop.Payments", GRPCMethod: "*"}, "/shop.Payments/", true},
		{Match{Path: "/checkout"}, "/checkout", false},
		{Match{PathPrefix: "/api/"}, "/api/", true},
	} {
		p, prefix := tc.m.HTTPPath()
		if p != tc.wantPath || prefix != tc.wantPrefix {
			t.Errorf("HTTPPath(%+v) = %q, %v; want %q, %v", tc.m, p, prefix, tc.wantPath, tc.wantPrefix)
		}
	}
}
