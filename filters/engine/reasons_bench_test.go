package engine

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/hopguard/hopguard/filters/idempotency"
	"github.com/hopguard/hopguard/filters/metrics"
	"github.com/hopguard/hopguard/policy"
)

// BenchmarkDecide_RejectMore covers the rejection paths BenchmarkDecide_Reject
// leaves out, so every Reason has a benchmark: the idempotency outcomes that
// need a record in the store, a store that cannot answer, and the
// operator overrides (freeze, drift quarantine).
func BenchmarkDecide_RejectMore(b *testing.B) {
	pay := testRoute("Pay", sideEffects(policy.RequireAlways))
	f := Facts{HasKey: true, Key: "k", Method: "POST", Path: "/shop.Orders/Pay", GRPCTimeout: time.Hour}
	cases := []struct {
		name string
		// setup prepares the engine and store, and returns the facts to decide.
		setup func(b *testing.B, e *Engine, st *fakeStore) Facts
		want  Reason
	}{
		{"idempotency-key-reused", func(b *testing.B, e *Engine, _ *fakeStore) Facts {
			claim(b, e, f)
			other := f
			other.Path = "/shop.Orders/Refund"
			return other
		}, ReasonIdempotencyKeyReused},
		{"idempotency-completed", func(b *testing.B, e *Engine, _ *fakeStore) Facts {
			d := claim(b, e, f)
			e.Finish(context.Background(), e.Route(pay.ID), &d, time.Now(), Outcome{HTTPStatus: 200, GRPCStatus: 0, HeadersAt: time.Now()})
			return f
		}, ReasonIdempotencyCompleted},
		{"idempotency-store-unavailable", func(_ *testing.B, _ *Engine, st *fakeStore) Facts {
			st.SetClaimErr(errors.Join(idempotency.ErrUnavailable, errors.New("bench: down")))
			return f
		}, ReasonIdempotencyStoreUnavailable},
		{"frozen", func(_ *testing.B, e *Engine, _ *fakeStore) Facts {
			installMesh(e, policy.Mesh{Frozen: true}, pay)
			return f
		}, ReasonFrozen},
		{"policy-drift", func(_ *testing.B, e *Engine, _ *fakeStore) Facts {
			installMesh(e, policy.Mesh{DriftQuarantine: true}, pay)
			drifted := f
			drifted.PolicyDigest = "0123456789abcdef"
			return drifted
		}, ReasonPolicyDrift},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			st := newFakeStore()
			e := benchEngine(b, st, pay)
			facts := c.setup(b, e, st)
			r := e.Route(pay.ID)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if d := e.Decide(ctx, r, &facts); d.Reason != c.want {
					b.Fatal(d.Reason)
				}
			}
		})
	}
}

// claim decides f once and fails unless it claims its key.
func claim(b *testing.B, e *Engine, f Facts) Decision {
	b.Helper()
	d := e.Decide(context.Background(), e.Route("shop/Pay"), &f)
	if d.Claim == nil {
		b.Fatalf("no claim: %v", d.Reason)
	}
	return d
}

// BenchmarkDecide_IdempotencyClaimLRU is the claim alone (no completion)
// through the default LRU store with fresh keys: what a side-effecting
// request costs before it is forwarded.
func BenchmarkDecide_IdempotencyClaimLRU(b *testing.B) {
	e := New(Options{Metrics: metrics.Discard()})
	e.SetBundle(&policy.Bundle{Routes: []policy.Route{testRoute("Pay", sideEffects(policy.RequireAlways))}})
	r := e.Route("shop/Pay")
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = "key-" + strconv.Itoa(i)
	}
	f := Facts{HasKey: true, Method: "POST", Path: "/shop.Orders/Pay", GRPCTimeout: time.Second}
	ctx := context.Background()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		f.Key = keys[i%len(keys)]
		f.Principal = strconv.Itoa(i / len(keys)) // a new scope every time
		i++
		if d := e.Decide(ctx, r, &f); d.Claim == nil {
			b.Fatal(d.Reason)
		}
	}
}
