package engine

import (
	"time"

	"github.com/hopguard/hopguard/policy"
)

// minLatencySamples is how many latency samples retry.minRemaining: auto
// waits for before it trusts the p90 estimate; until then the threshold is
// deadline.minRemaining.
const minLatencySamples = 20

// retryQuantile is the latency quantile retry.minRemaining: auto uses.
const retryQuantile = 0.9

// checkRetry decides a retry (a.number() > 1) of route st at now with
// remaining deadline left, in the order of DESIGN.md §4: authority, remaining
// deadline against the retry threshold, then the budgets. It returns
// ReasonNone when the retry is admitted, and the layer the decision reports
// (the offending layer for retry-not-authority).
//
// Only an admitted retry is counted in the retry budget window.
func checkRetry(now time.Time, p *policy.Route, a attempts, remaining time.Duration, st *sideState) (Reason, Layer) {
	r := &p.Retry
	layer := a.layer()
	// Authority: exactly one layer may retry; a retry indicated by any other
	// layer is the layered-retry amplification this filter exists to stop,
	// even when the authority layer retried too.
	switch r.Authority {
	case policy.AuthorityMesh:
		if a.retried(LayerApp) {
			return ReasonRetryNotAuthority, LayerApp
		}
	case policy.AuthorityApp:
		if a.retried(LayerMesh) {
			return ReasonRetryNotAuthority, LayerMesh
		}
	default:
		return ReasonRetryNotAuthority, layer
	}
	if remaining < retryThreshold(now, p, st) {
		return ReasonRetryDeadlineInsufficient, layer
	}
	// The declared attempt budget: retry.attempts counts every try, the first
	// included, so an attempt number above it means the authority layer has
	// spent its budget (a misconfigured data plane or a caller ignoring the
	// policy). It is refused as retry-budget-exhausted, like the ratio budget.
	n := a.mesh
	if r.Authority == policy.AuthorityApp {
		n = a.app
	}
	if n > r.Attempts {
		return ReasonRetryBudgetExhausted, layer
	}
	if !st.budget.admitRetry(now, r.BudgetRatio, r.BudgetMinPerSecond) {
		return ReasonRetryBudgetExhausted, layer
	}
	return ReasonNone, layer
}

// retryThreshold is the remaining deadline a retry of p needs: retry.minRemaining,
// or with minRemaining: auto the route's observed p90 latency, never below
// deadline.minRemaining, and deadline.minRemaining until the estimate has
// minLatencySamples samples.
func retryThreshold(now time.Time, p *policy.Route, st *sideState) time.Duration {
	if !p.Retry.MinRemainingAuto {
		return p.Retry.MinRemaining
	}
	q, n := st.latency.quantile(now, retryQuantile)
	if n < minLatencySamples {
		return p.Deadline.MinRemaining
	}
	return max(q, p.Deadline.MinRemaining)
}

// maxRetries is the number of retries the remaining deadline affords at the
// authority hop: the largest n ≤ attempts−1 with
// (n+1)·perTry + n·backoffBase ≤ remaining; attempts−1 without a per-try
// timeout (each try may then use what is left). 0 when the mesh is not the
// authority.
func maxRetries(r *policy.Retry, remaining time.Duration) int {
	limit := r.MeshRetries()
	if limit == 0 || r.PerTryTimeout <= 0 {
		return limit
	}
	// (n+1)·perTry + n·base ≤ remaining  ⇔  n ≤ (remaining − perTry) / (perTry + base)
	if remaining < r.PerTryTimeout {
		return 0
	}
	n := int64(remaining-r.PerTryTimeout) / int64(r.PerTryTimeout+r.BackoffBase)
	return int(min(n, int64(limit)))
}
