package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hopguard/hopguard/filters/idempotency"
	"github.com/hopguard/hopguard/filters/metrics"
	"github.com/hopguard/hopguard/policy"
)

// onStoreFailure sets a route's idempotency.onStoreFailure.
func onStoreFailure(f policy.StoreFailure) func(*policy.Route) {
	return func(r *policy.Route) { r.Idempotency.OnStoreFailure = f }
}

func TestIdempotency_OnStoreFailure(t *testing.T) {
	storeErr := errors.Join(idempotency.ErrUnavailable, errors.New("redis: i/o timeout"))
	tests := []struct {
		name       string
		route      policy.Route
		want       Reason
		wantAction string
	}{
		{"side effects, default: closed", testRoute("Pay", sideEffects(policy.RequireAlways)),
			ReasonIdempotencyStoreUnavailable, metrics.StoreActionRejected},
		{"side effects, open", testRoute("Pay", sideEffects(policy.RequireAlways), onStoreFailure(policy.StoreFailureOpen)),
			ReasonNone, metrics.StoreActionAllowed},
		{"no side effects, default: open", testRoute("Get"), ReasonNone, metrics.StoreActionAllowed},
		{"no side effects, closed", testRoute("Get", onStoreFailure(policy.StoreFailureClosed)),
			ReasonIdempotencyStoreUnavailable, metrics.StoreActionRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.route.Validate(); err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			m, err := metrics.New(reg)
			if err != nil {
				t.Fatal(err)
			}
			st := newFakeStore()
			st.SetClaimErr(storeErr)
			e := New(Options{Clock: newFakeClock(), Store: st, Metrics: m})
			e.SetBundle(&policy.Bundle{Mesh: policy.Mesh{ClockSkew: 10 * time.Millisecond}, Routes: []policy.Route{tt.route}})
			d := e.Decide(context.Background(), mustRoute(t, e, tt.route.ID), &Facts{HasKey: true, Key: "k"})
			if d.Reason != tt.want || d.Claim != nil {
				t.Errorf("Decide = %v (claim %v), want %v without claim", d.Reason, d.Claim != nil, tt.want)
			}
			if got := testutil.ToFloat64(m.StoreErrors(tt.route.ID, "claim", tt.wantAction)); got != 1 {
				t.Errorf("store errors {op=claim, action=%s} = %v, want 1", tt.wantAction, got)
			}
			if got := storeSamples(t, reg); got["claim"] != 1 || got["complete"]+got["release"] != 0 {
				t.Errorf("store duration samples by op = %v, want one claim", got)
			}
		})
	}
}

func TestIdempotency_FinishStoreFailureIsCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	st := &failingComplete{fakeStore: newFakeStore()}
	p := testRoute("Pay", sideEffects(policy.RequireAlways))
	e := New(Options{Clock: newFakeClock(), Store: st, Metrics: m})
	e.SetBundle(&policy.Bundle{Mesh: policy.Mesh{ClockSkew: 10 * time.Millisecond}, Routes: []policy.Route{p}})
	r := mustRoute(t, e, p.ID)
	ctx := context.Background()
	d := e.Decide(ctx, r, &Facts{HasKey: true, Key: "k"})
	if d.Claim == nil {
		t.Fatalf("Decide = %v without a claim", d.Reason)
	}
	e.Finish(ctx, r, &d, t0, Outcome{HTTPStatus: 200, GRPCStatus: 0})
	if got := testutil.ToFloat64(m.StoreErrors(p.ID, "complete", metrics.StoreActionIgnored)); got != 1 {
		t.Errorf("store errors {op=complete, action=ignored} = %v, want 1", got)
	}
	if got := storeSamples(t, reg); got["claim"] != 1 || got["complete"] != 1 {
		t.Errorf("store duration samples by op = %v, want one claim and one complete", got)
	}
}

// storeSamples returns the sample count of each op's store duration
// histogram.
func storeSamples(t *testing.T, reg *prometheus.Registry) map[string]uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "hopguard_idempotency_store_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "op" {
					out[l.GetValue()] = m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return out
}

// failingComplete is a fakeStore whose Complete fails as a store that went
// down after the claim.
type failingComplete struct{ *fakeStore }

func (failingComplete) Complete(context.Context, idempotency.Scope, uint64, idempotency.Outcome, time.Time, time.Duration) error {
	return errors.Join(idempotency.ErrUnavailable, errors.New("redis: connection reset"))
}

func TestPolicyIdempotency_FailClosed(t *testing.T) {
	tests := []struct {
		f           policy.StoreFailure
		sideEffects bool
		want        bool
	}{
		{"", true, true}, {"", false, false},
		{policy.StoreFailureClosed, false, true}, {policy.StoreFailureOpen, true, false},
	}
	for _, tt := range tests {
		if got := (policy.Idempotency{OnStoreFailure: tt.f}).FailClosed(tt.sideEffects); got != tt.want {
			t.Errorf("FailClosed(%q, sideEffects %v) = %v, want %v", tt.f, tt.sideEffects, got, tt.want)
		}
	}
}
