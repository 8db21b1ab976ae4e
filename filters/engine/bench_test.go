package engine

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/hopguard/hopguard/filters/metrics"
	"github.com/hopguard/hopguard/policy"
)

// benchEngine returns an engine on the system clock with routes, metrics
// registered nowhere, and no logger.
func benchEngine(b *testing.B, store *fakeStore, routes ...policy.Route) *Engine {
	b.Helper()
	e := New(Options{Store: store, Metrics: metrics.Discard()})
	e.SetBundle(&policy.Bundle{Routes: routes})
	return e
}

// BenchmarkDecide_Allow is the hot path: a first attempt on a route without
// side effects, outbound (all mutations computed).
func BenchmarkDecide_Allow(b *testing.B) {
	e := benchEngine(b, newFakeStore(), testRoute("Get"))
	r := e.Route("shop/Get")
	f := Facts{Side: Outbound, Method: "POST", Path: "/shop.Orders/Get", GRPCTimeout: time.Second, EnvoyAttemptCount: 1}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if d := e.Decide(ctx, r, &f); d.Reject {
			b.Fatal(d.Reason)
		}
	}
}

// BenchmarkDecide_AllowMatch adds route matching by path to the allow path.
func BenchmarkDecide_AllowMatch(b *testing.B) {
	routes := make([]policy.Route, 0, 100)
	for i := range 100 {
		routes = append(routes, testRoute("M"+strconv.Itoa(i)))
	}
	e := benchEngine(b, newFakeStore(), routes...)
	f := Facts{Method: "POST", Path: "/shop.Orders/M57", GRPCTimeout: time.Second}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if d := e.Decide(ctx, e.Match(f.Method, f.Path), &f); d.Reject {
			b.Fatal(d.Reason)
		}
	}
}

// BenchmarkDecide_Reject measures each rejection path (decision, metric,
// no logger).
func BenchmarkDecide_Reject(b *testing.B) {
	cases := []struct {
		name  string
		route policy.Route
		facts Facts
		want  Reason
	}{
		{"deadline-exhausted", testRoute("Get"), Facts{GRPCTimeout: time.Millisecond}, ReasonDeadlineExhausted},
		{"retry-not-authority", testRoute("Get"), Facts{HopguardAttempt: 2}, ReasonRetryNotAuthority},
		{"retry-deadline-insufficient", testRoute("Get"), Facts{EnvoyAttemptCount: 2, GRPCTimeout: 50 * time.Millisecond}, ReasonRetryDeadlineInsufficient},
		{"retry-budget-exhausted", testRoute("Get"), Facts{EnvoyAttemptCount: 9}, ReasonRetryBudgetExhausted},
		{"idempotency-key-missing", testRoute("Pay", sideEffects(policy.RequireAlways)), Facts{}, ReasonIdempotencyKeyMissing},
		{"idempotency-key-invalid", testRoute("Pay", sideEffects(policy.RequireAlways)), Facts{HasKey: true, Key: "\x01"}, ReasonIdempotencyKeyInvalid},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			e := benchEngine(b, newFakeStore(), c.route)
			r := e.Route(c.route.ID)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if d := e.Decide(ctx, r, &c.facts); d.Reason != c.want {
					b.Fatal(d.Reason)
				}
			}
		})
	}
}

// BenchmarkDecide_IdempotencyInFlight is a duplicate refused by the store.
func BenchmarkDecide_IdempotencyInFlight(b *testing.B) {
	e := benchEngine(b, newFakeStore(), testRoute("Pay", sideEffects(policy.RequireAlways)))
	r := e.Route("shop/Pay")
	f := Facts{HasKey: true, Key: "k", Method: "POST", Path: "/shop.Orders/Pay", GRPCTimeout: time.Hour}
	ctx := context.Background()
	if d := e.Decide(ctx, r, &f); d.Claim == nil {
		b.Fatal("no claim")
	}
	b.ReportAllocs()
	for b.Loop() {
		if d := e.Decide(ctx, r, &f); d.Reason != ReasonIdempotencyInFlight {
			b.Fatal(d.Reason)
		}
	}
}

// BenchmarkDecide_IdempotencyClaimFinish is a claim and its completion
// (through the test store; the store's own cost is measured in its package).
func BenchmarkDecide_IdempotencyClaimFinish(b *testing.B) {
	e := benchEngine(b, newFakeStore(), testRoute("Pay", sideEffects(policy.RequireAlways), func(r *policy.Route) { r.Idempotency.TTL = time.Nanosecond }))
	r := e.Route("shop/Pay")
	f := Facts{HasKey: true, Key: "k", Method: "POST", Path: "/shop.Orders/Pay"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		d := e.Decide(ctx, r, &f)
		if d.Claim == nil {
			b.Fatal(d.Reason)
		}
		e.Finish(ctx, r, &d, start, Outcome{HTTPStatus: 200, GRPCStatus: 0, HeadersAt: time.Now()})
	}
}

// BenchmarkDecide_IdempotencyClaimFinishLRU is a claim and its completion
// through the default LRU store (fresh keys, so the cache grows to its
// capacity and evicts, as under real traffic).
func BenchmarkDecide_IdempotencyClaimFinishLRU(b *testing.B) {
	e := New(Options{Metrics: metrics.Discard()})
	e.SetBundle(&policy.Bundle{Routes: []policy.Route{testRoute("Pay", sideEffects(policy.RequireAlways))}})
	r := e.Route("shop/Pay")
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = "key-" + strconv.Itoa(i)
	}
	f := Facts{HasKey: true, Method: "POST", Path: "/shop.Orders/Pay"}
	ctx := context.Background()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		f.Key = keys[i%len(keys)]
		f.Principal = strconv.Itoa(i / len(keys)) // a new scope every time
		i++
		start := time.Now()
		d := e.Decide(ctx, r, &f)
		if d.Claim == nil {
			b.Fatal(d.Reason)
		}
		e.Finish(ctx, r, &d, start, Outcome{HTTPStatus: 200, GRPCStatus: 0, HeadersAt: time.Now()})
	}
}

// BenchmarkBudget_AdmitRetry is the retry budget check alone.
func BenchmarkBudget_AdmitRetry(b *testing.B) {
	var bu budget
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		bu.countRequest(now)
		bu.admitRetry(now, 0.1, 5)
	}
}

// BenchmarkLatency_Quantile is the p90 lookup of minRemaining: auto.
func BenchmarkLatency_Quantile(b *testing.B) {
	var l latencyEstimator
	now := time.Now()
	for i := range 1000 {
		l.observe(now, time.Duration(i)*time.Millisecond)
	}
	b.ReportAllocs()
	for b.Loop() {
		l.quantile(now, 0.9)
	}
}

// BenchmarkDecide_AllowParallel is the allow path from all cores on one route.
func BenchmarkDecide_AllowParallel(b *testing.B) {
	e := benchEngine(b, newFakeStore(), testRoute("Get"))
	r := e.Route("shop/Get")
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		f := Facts{Side: Outbound, GRPCTimeout: time.Second}
		for pb.Next() {
			e.Decide(ctx, r, &f)
		}
	})
}
