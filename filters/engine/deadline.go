package engine

import (
	"time"

	"github.com/hopguard/hopguard/policy"
)

// effectiveDeadline returns the absolute deadline of a request decided at
// now: the earliest of the deadlines the request carries, clamped to
// now+p.Max, or now+p.Default when it carries none.
//
// x-hopguard-deadline was stamped by another host, whose clock may run ahead
// of ours: it is trusted up to skew, i.e. moved skew later, so a sender's
// fast clock does not refuse requests that still have time. Relative
// deadlines (grpc-timeout, x-envoy-expected-rq-timeout-ms) and the stream
// deadline are measured by this host's clock and need no tolerance.
func effectiveDeadline(now time.Time, p *policy.Deadline, skew time.Duration, f *Facts) time.Time {
	var dl time.Time
	found := false
	earliest := func(t time.Time) {
		if !found || t.Before(dl) {
			dl, found = t, true
		}
	}
	if !f.HopguardDeadline.IsZero() {
		earliest(f.HopguardDeadline.Add(skew))
	}
	if f.GRPCTimeout > 0 {
		earliest(now.Add(f.GRPCTimeout))
	}
	if f.EnvoyExpectedTimeout > 0 {
		earliest(now.Add(f.EnvoyExpectedTimeout))
	}
	if !f.StreamDeadline.IsZero() {
		earliest(f.StreamDeadline)
	}
	if !found {
		return now.Add(p.Default)
	}
	if limit := now.Add(p.Max); dl.After(limit) {
		return limit
	}
	return dl
}

// deadlineExhausted reports whether a request with remaining time left
// cannot finish: remaining ≤ deadline.minRemaining (a deadline already past
// has remaining ≤ 0 and is exhausted too).
func deadlineExhausted(remaining time.Duration, p *policy.Deadline) bool {
	return remaining <= p.MinRemaining
}
