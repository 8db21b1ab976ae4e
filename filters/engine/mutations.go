package engine

import "github.com/hopguard/hopguard/policy"

// mutationsFor returns the header changes of an allowed, enforced request
// (DESIGN.md §4): the effective deadline is stamped on every hop so the next
// one inherits it; on the outbound side the router's timeouts are clamped to
// what remains and x-envoy-max-retries is set to the retries the remaining
// deadline affords when the mesh is the retry authority (0 when it is not, so
// Envoy never retries behind another layer's back). Retry-request headers
// from callers are always stripped: only the policy decides retries.
func mutationsFor(side Side, p *policy.Route, d *Decision) Mutations {
	m := Mutations{Deadline: d.Deadline, StripRetryHeaders: true}
	if side != Outbound {
		return m
	}
	m.UpstreamTimeout = d.Remaining
	if p.Retry.PerTryTimeout > 0 {
		m.PerTryTimeout = min(p.Retry.PerTryTimeout, d.Remaining)
	}
	m.SetMaxRetries = true
	m.MaxRetries = maxRetries(&p.Retry, d.Remaining)
	return m
}
