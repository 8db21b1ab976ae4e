package engine

import (
	"testing"
	"time"

	"github.com/hopguard/hopguard/policy"
)

func TestCheckRetry(t *testing.T) {
	mesh := attempts{mesh: 2, app: 1}
	app := attempts{mesh: 1, app: 2}
	both := attempts{mesh: 2, app: 2}
	tests := []struct {
		name      string
		mod       func(*policy.Route)
		a         attempts
		remaining time.Duration
		want      Reason
		wantLayer Layer
	}{
		{"mesh retry at mesh authority", nil, mesh, time.Second, ReasonNone, LayerMesh},
		{"app retry at mesh authority", nil, app, time.Second, ReasonRetryNotAuthority, LayerApp},
		{"both layers at mesh authority", nil, both, time.Second, ReasonRetryNotAuthority, LayerApp},
		{"app retry at app authority", authority(policy.AuthorityApp), app, time.Second, ReasonNone, LayerApp},
		{"mesh retry at app authority", authority(policy.AuthorityApp), mesh, time.Second, ReasonRetryNotAuthority, LayerMesh},
		{"both layers at app authority", authority(policy.AuthorityApp), both, time.Second, ReasonRetryNotAuthority, LayerMesh},
		{"authority none refuses mesh", authority(policy.AuthorityNone), mesh, time.Second, ReasonRetryNotAuthority, LayerMesh},
		{"authority none refuses app", authority(policy.AuthorityNone), app, time.Second, ReasonRetryNotAuthority, LayerApp},
		{"remaining below threshold", nil, mesh, 99 * time.Millisecond, ReasonRetryDeadlineInsufficient, LayerMesh},
		{"remaining at threshold", nil, mesh, 100 * time.Millisecond, ReasonNone, LayerMesh},
		{"authority checked before remaining", nil, app, time.Millisecond, ReasonRetryNotAuthority, LayerApp},
		{"last declared attempt", nil, attempts{mesh: 3, app: 1}, time.Second, ReasonNone, LayerMesh},
		{"beyond declared attempts", nil, attempts{mesh: 4, app: 1}, time.Second, ReasonRetryBudgetExhausted, LayerMesh},
		{"beyond declared attempts (app)", authority(policy.AuthorityApp), attempts{mesh: 1, app: 4}, time.Second, ReasonRetryBudgetExhausted, LayerApp},
		{"ratio budget spent", func(r *policy.Route) { r.Retry.BudgetRatio, r.Retry.BudgetMinPerSecond = 0, 0 }, mesh, time.Second, ReasonRetryBudgetExhausted, LayerMesh},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testRoute("M")
			if tt.mod != nil {
				tt.mod(&p)
			}
			st := &sideState{}
			got, layer := checkRetry(t0, &p, tt.a, tt.remaining, st)
			if got != tt.want || layer != tt.wantLayer {
				t.Errorf("checkRetry = %v, %v; want %v, %v", got, layer, tt.want, tt.wantLayer)
			}
			_, admitted := st.budget.window(t0)
			if wantAdmitted := uint64(b2i(tt.want == ReasonNone)); admitted != wantAdmitted {
				t.Errorf("budget counted %d retries, want %d (only admitted ones)", admitted, wantAdmitted)
			}
		})
	}
}

func authority(a policy.Authority) func(*policy.Route) {
	return func(r *policy.Route) { r.Retry.Authority = a }
}

func TestRetryThreshold_Auto(t *testing.T) {
	p := testRoute("M", func(r *policy.Route) { r.Retry.MinRemainingAuto = true })
	st := &sideState{}
	// Fewer than 20 samples: deadline.minRemaining.
	for range minLatencySamples - 1 {
		st.latency.observe(t0, 300*time.Millisecond)
	}
	if got := retryThreshold(t0, &p, st); got != p.Deadline.MinRemaining {
		t.Errorf("threshold with %d samples = %v, want %v", minLatencySamples-1, got, p.Deadline.MinRemaining)
	}
	st.latency.observe(t0, 300*time.Millisecond)
	got := retryThreshold(t0, &p, st)
	if got < 300*time.Millisecond || got > 340*time.Millisecond {
		t.Errorf("threshold with %d samples of 300ms = %v, want ≈300ms (one bucket)", minLatencySamples, got)
	}
	if r, _ := checkRetry(t0, &p, attempts{mesh: 2, app: 1}, 250*time.Millisecond, st); r != ReasonRetryDeadlineInsufficient {
		t.Errorf("retry with 250ms left under a 300ms p90 = %v, want %v", r, ReasonRetryDeadlineInsufficient)
	}

	// Never below deadline.minRemaining, however fast the route.
	fast := &sideState{}
	for range 100 {
		fast.latency.observe(t0, time.Millisecond)
	}
	if got := retryThreshold(t0, &p, fast); got != p.Deadline.MinRemaining {
		t.Errorf("threshold of a 1ms route = %v, want floor %v", got, p.Deadline.MinRemaining)
	}
}

func TestRetryThreshold_Fixed(t *testing.T) {
	p := testRoute("M")
	st := &sideState{}
	for range 100 {
		st.latency.observe(t0, time.Second)
	}
	if got := retryThreshold(t0, &p, st); got != p.Retry.MinRemaining {
		t.Errorf("fixed threshold = %v, want %v", got, p.Retry.MinRemaining)
	}
}

func TestMaxRetries(t *testing.T) {
	tests := []struct {
		name      string
		authority policy.Authority
		attempts  int
		perTry    time.Duration
		remaining time.Duration
		want      int
	}{
		{"all retries fit", policy.AuthorityMesh, 3, 250 * time.Millisecond, 2 * time.Second, 2},
		// 2 tries + 1 backoff = 525ms ≤ 600ms; 3 tries + 2 backoffs = 800ms > 600ms.
		{"one retry fits", policy.AuthorityMesh, 3, 250 * time.Millisecond, 600 * time.Millisecond, 1},
		{"exactly fits", policy.AuthorityMesh, 3, 250 * time.Millisecond, 800 * time.Millisecond, 2},
		{"just short", policy.AuthorityMesh, 3, 250 * time.Millisecond, 800*time.Millisecond - 1, 1},
		{"first try does not fit", policy.AuthorityMesh, 3, 250 * time.Millisecond, 100 * time.Millisecond, 0},
		{"no per-try timeout", policy.AuthorityMesh, 4, 0, time.Millisecond, 3},
		{"app authority", policy.AuthorityApp, 3, 250 * time.Millisecond, 2 * time.Second, 0},
		{"no authority", policy.AuthorityNone, 3, 0, 2 * time.Second, 0},
		{"single attempt", policy.AuthorityMesh, 1, 250 * time.Millisecond, 2 * time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := policy.Retry{Authority: tt.authority, Attempts: tt.attempts, PerTryTimeout: tt.perTry, BackoffBase: 25 * time.Millisecond}
			if got := maxRetries(&r, tt.remaining); got != tt.want {
				t.Errorf("maxRetries = %d, want %d", got, tt.want)
			}
		})
	}
}
