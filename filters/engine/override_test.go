package engine

import (
	"context"
	"testing"
	"time"

	"github.com/hopguard/hopguard/policy"
)

// installMesh replaces the engine's mesh settings, keeping its routes.
func installMesh(e *Engine, m policy.Mesh, routes ...policy.Route) {
	m.ClockSkew = 10 * time.Millisecond
	e.SetBundle(&policy.Bundle{Mesh: m, Routes: routes})
}

func critical(r *policy.Route) { r.Critical = true }

func TestDecide_Frozen(t *testing.T) {
	pay := testRoute("Pay", sideEffects(policy.RequireAlways))
	refund := testRoute("Refund", sideEffects(policy.RequireAlways), critical)
	get := testRoute("Get")
	tests := []struct {
		name   string
		route  policy.Route
		frozen bool
		want   Reason
	}{
		{"non-critical side effect refused while frozen", pay, true, ReasonFrozen},
		{"critical side effect allowed while frozen", refund, true, ReasonNone},
		{"read allowed while frozen", get, true, ReasonNone},
		{"side effect allowed when not frozen", pay, false, ReasonNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _, st := testEngine(t)
			installMesh(e, policy.Mesh{Frozen: tt.frozen}, pay, refund, get)
			d := e.Decide(context.Background(), mustRoute(t, e, tt.route.ID), &Facts{HasKey: true, Key: "k-1"})
			if d.Reason != tt.want || d.Reject != (tt.want != ReasonNone) {
				t.Fatalf("Decide = reject %v reason %v, want %v", d.Reject, d.Reason, tt.want)
			}
			if tt.want == ReasonFrozen && len(st.Calls()) != 0 {
				t.Errorf("a frozen request touched the idempotency store: %v", st.Calls())
			}
		})
	}
}

func TestDecide_DriftQuarantine(t *testing.T) {
	pay := testRoute("Pay", sideEffects(policy.RequireAlways))
	get := testRoute("Get")
	tests := []struct {
		name       string
		route      policy.Route
		quarantine bool
		digest     func(r *Route) string
		want       Reason
	}{
		{"drifted side effect refused under quarantine", pay, true, func(*Route) string { return "0123456789abcdef" }, ReasonPolicyDrift},
		{"drifted side effect only counted under alert", pay, false, func(*Route) string { return "0123456789abcdef" }, ReasonNone},
		{"drifted read allowed under quarantine", get, true, func(*Route) string { return "0123456789abcdef" }, ReasonNone},
		{"matching digest allowed under quarantine", pay, true, func(r *Route) string { return r.Digest }, ReasonNone},
		{"no digest allowed under quarantine", pay, true, func(*Route) string { return "" }, ReasonNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _, _ := testEngine(t)
			installMesh(e, policy.Mesh{DriftQuarantine: tt.quarantine}, pay, get)
			r := mustRoute(t, e, tt.route.ID)
			d := e.Decide(context.Background(), r, &Facts{HasKey: true, Key: "k-2", PolicyDigest: tt.digest(r)})
			if d.Reason != tt.want || d.Reject != (tt.want != ReasonNone) {
				t.Fatalf("Decide = reject %v reason %v, want %v", d.Reject, d.Reason, tt.want)
			}
		})
	}
}

func TestReasonStatuses_NewReasons(t *testing.T) {
	for _, r := range []Reason{ReasonPolicyDrift, ReasonFrozen} {
		if r.HTTPStatus() != 409 || r.GRPCCode() != 9 {
			t.Errorf("%v: http %d grpc %d, want 409 and FAILED_PRECONDITION (9): not retryable", r, r.HTTPStatus(), r.GRPCCode())
		}
	}
	if ReasonFrozen.String() != "frozen" || ReasonPolicyDrift.String() != "policy-drift" {
		t.Errorf("names: %q %q", ReasonFrozen, ReasonPolicyDrift)
	}
}
