package engine

import (
	"context"
	"testing"
	"time"

	"github.com/hopguard/hopguard/policy"
)

func TestEffectiveDeadline_Success(t *testing.T) {
	p := policy.Deadline{Default: 800 * time.Millisecond, Max: 2 * time.Second, MinRemaining: 20 * time.Millisecond}
	const skew = 10 * time.Millisecond
	now := t0
	tests := []struct {
		name  string
		facts Facts
		want  time.Time
	}{
		{"none present: default", Facts{}, now.Add(800 * time.Millisecond)},
		{"grpc-timeout", Facts{GRPCTimeout: 300 * time.Millisecond}, now.Add(300 * time.Millisecond)},
		{"envoy expected timeout", Facts{EnvoyExpectedTimeout: 400 * time.Millisecond}, now.Add(400 * time.Millisecond)},
		{"stream deadline", Facts{StreamDeadline: now.Add(500 * time.Millisecond)}, now.Add(500 * time.Millisecond)},
		{"hopguard deadline trusted up to skew", Facts{HopguardDeadline: now.Add(600 * time.Millisecond)}, now.Add(610 * time.Millisecond)},
		{"earliest wins: grpc-timeout", Facts{
			GRPCTimeout: 100 * time.Millisecond, EnvoyExpectedTimeout: 400 * time.Millisecond,
			StreamDeadline: now.Add(500 * time.Millisecond), HopguardDeadline: now.Add(600 * time.Millisecond),
		}, now.Add(100 * time.Millisecond)},
		{"earliest wins: hopguard with skew", Facts{
			GRPCTimeout: 300 * time.Millisecond, HopguardDeadline: now.Add(250 * time.Millisecond),
		}, now.Add(260 * time.Millisecond)},
		{"earliest wins: stream", Facts{
			GRPCTimeout: 300 * time.Millisecond, StreamDeadline: now.Add(50 * time.Millisecond),
		}, now.Add(50 * time.Millisecond)},
		{"clamped to max", Facts{GRPCTimeout: time.Hour}, now.Add(2 * time.Second)},
		{"past hopguard deadline stays past", Facts{HopguardDeadline: now.Add(-time.Second)}, now.Add(-990 * time.Millisecond)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := effectiveDeadline(now, &p, skew, &tt.facts); !got.Equal(tt.want) {
				t.Errorf("effectiveDeadline = %v, want %v (diff %v)", got, tt.want, got.Sub(tt.want))
			}
		})
	}
}

func TestDeadlineExhausted(t *testing.T) {
	p := policy.Deadline{MinRemaining: 20 * time.Millisecond}
	tests := []struct {
		remaining time.Duration
		want      bool
	}{
		{-time.Second, true},
		{0, true},
		{20 * time.Millisecond, true},
		{20*time.Millisecond + 1, false},
		{time.Second, false},
	}
	for _, tt := range tests {
		if got := deadlineExhausted(tt.remaining, &p); got != tt.want {
			t.Errorf("deadlineExhausted(%v) = %v, want %v", tt.remaining, got, tt.want)
		}
	}
}

// A deadline that arrived in x-hopguard-deadline is stamped onward as it
// came: the skew tolerance must not grow it at every hop.
func TestStampedDeadlineDoesNotGrowWithSkew(t *testing.T) {
	clock := newFakeClock()
	now := clock.Now()
	e := New(Options{Clock: clock})
	p := policy.Route{
		ID: "shop/r", Service: "s", Match: policy.Match{Path: "/r"},
		Deadline:    policy.Deadline{Default: time.Second, Max: 5 * time.Second, MinRemaining: time.Millisecond},
		Retry:       policy.Retry{Authority: policy.AuthorityMesh, Attempts: 1, BackoffBase: time.Millisecond, BackoffMax: time.Millisecond},
		Idempotency: policy.Idempotency{Require: policy.RequireNever, Header: "idempotency-key"},
	}
	e.SetBundle(&policy.Bundle{Mesh: policy.Mesh{ClockSkew: 10 * time.Millisecond}, Routes: []policy.Route{p}})
	in := now.Add(time.Second)
	stamp := in
	for hop := range 5 {
		d := e.Decide(context.Background(), e.Route("shop/r"), &Facts{Side: Inbound, Method: "GET", Path: "/r", HopguardDeadline: stamp})
		if d.Reject {
			t.Fatalf("hop %d rejected: %v", hop, d.Reason)
		}
		stamp = d.Mutations.Deadline
	}
	if !stamp.Equal(in) {
		t.Errorf("after 5 hops the stamped deadline is %v, want %v unchanged", stamp.Sub(now), in.Sub(now))
	}
}
