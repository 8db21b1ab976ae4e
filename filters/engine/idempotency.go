package engine

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/hopguard/hopguard/filters/idempotency"
	"github.com/hopguard/hopguard/filters/metrics"
	"github.com/hopguard/hopguard/policy"
)

// inFlightGrace is added to a request's remaining deadline to bound its
// in-flight claim: a claim whose response never arrives (a crashed adapter)
// frees the key once the caller has surely given up.
const inFlightGrace = time.Second

// checkIdempotency is the idempotency step of a request that passed the
// deadline and retry checks. It applies to routes with side effects, and to
// any route whose request carries a key unless the route says require: never.
// On success it may set d.Claim (the request now owns the key) or d.Replay
// (a completed duplicate under onDuplicate: replay, returned with
// ReasonIdempotencyCompleted so the request is not forwarded).
func (e *Engine) checkIdempotency(ctx context.Context, now time.Time, r *Route, f *Facts, d *Decision) Reason {
	p := &r.Policy
	req := p.Idempotency.Require
	if !p.SideEffects && (!f.HasKey || req == policy.RequireNever) {
		return ReasonNone
	}
	if !f.HasKey {
		if req == policy.RequireAlways || (req == policy.RequireRetries && d.Attempt > 1) {
			return ReasonIdempotencyKeyMissing
		}
		return ReasonNone
	}
	if !idempotency.ValidKey(f.Key) {
		return ReasonIdempotencyKeyInvalid
	}
	scope := idempotency.Scope{Route: p.ID, Side: f.Side.String(), Principal: f.Principal, Key: f.Key}
	fp := f.Fingerprint
	if fp == 0 && f.FingerprintFunc != nil {
		fp = f.FingerprintFunc()
	}
	if fp == 0 {
		fp = plainFingerprint(f.Method, f.Path)
	}
	start := time.Now()
	res, err := e.store.Claim(ctx, scope, fp, now, e.claimFor(p, d)+inFlightGrace)
	e.metrics.StoreDuration("claim").Observe(time.Since(start).Seconds())
	if err != nil {
		// The route says (by default: side effects fail closed, since without
		// the store a duplicate cannot be told apart; other routes only
		// de-duplicate opportunistically and fail open).
		if p.Idempotency.FailClosed(p.SideEffects) {
			e.storeFailed(p.ID, "claim", storeActionRejected, err)
			return ReasonIdempotencyStoreUnavailable
		}
		e.storeFailed(p.ID, "claim", storeActionAllowed, err)
		return ReasonNone
	}
	if res.Claimed {
		d.Claim = &Claim{Scope: scope, Token: res.Token, TTL: p.Idempotency.TTL}
		return ReasonNone
	}
	switch rec := res.Existing; {
	case idempotency.Reused(rec.Fingerprint, fp):
		return ReasonIdempotencyKeyReused
	case rec.State == idempotency.Completed:
		if p.Idempotency.Replay {
			d.Replay = &rec
		}
		return ReasonIdempotencyCompleted
	default:
		return ReasonIdempotencyInFlight
	}
}

// claimFor is how long a request may hold its key in flight (before
// inFlightGrace): its remaining deadline. A dry-run route does not bound
// the request (the interceptor leaves the handler the caller's deadline),
// so its claim lasts at least deadline.max, the longest any data plane
// the control plane configures lets a call run (route timeouts and
// grpc_timeout_header_max); a caller past the mesh may hold its call
// longer than its claim.
func (e *Engine) claimFor(p *policy.Route, d *Decision) time.Duration {
	left := max(d.Remaining, 0)
	if p.DryRun {
		return max(left, p.Deadline.Max)
	}
	return left
}

// finishClaim completes or releases claim c after a request ended with out:
// a retryable failure or an abort frees the key for the retry, anything else
// is the final answer to the key and is kept for the claim's TTL.
func (e *Engine) finishClaim(ctx context.Context, now time.Time, route string, c *Claim, out *Outcome) {
	var err error
	op := "complete"
	start := time.Now()
	if out.Aborted || retryableFailure(out) {
		op = "release"
		err = e.store.Release(ctx, c.Scope, c.Token, now)
		if !out.Unknown {
			// A known failure: the next request with this key is a retry.
			e.released.note(c.Scope, now, c.TTL)
		}
	} else {
		err = e.store.Complete(ctx, c.Scope, c.Token,
			idempotency.Outcome{HTTPStatus: out.HTTPStatus, GRPCStatus: out.GRPCStatus}, now, c.TTL)
	}
	e.metrics.StoreDuration(op).Observe(time.Since(start).Seconds())
	if err != nil {
		e.storeError(route, op, err)
	}
}

// retryableFailure reports whether out is a failure a retry may fix, so the
// idempotency key must be released rather than completed:
//
//   - HTTP 5xx except 501 Not Implemented (which no retry changes);
//   - gRPC CANCELLED (1), DEADLINE_EXCEEDED (4), RESOURCE_EXHAUSTED (8),
//     ABORTED (10), INTERNAL (13) and UNAVAILABLE (14): the codes a server
//     or the transport uses when the call did not run to a decision.
//
// 2xx, 4xx and every other gRPC code (OK, INVALID_ARGUMENT, NOT_FOUND,
// ALREADY_EXISTS, FAILED_PRECONDITION, UNIMPLEMENTED, ...) are final: the
// server decided, and a retry with the same key gets the same answer.
func retryableFailure(out *Outcome) bool {
	if out.HTTPStatus >= 500 && out.HTTPStatus <= 599 && out.HTTPStatus != 501 {
		return true
	}
	switch out.GRPCStatus {
	case 1, 4, 8, 10, 13, 14:
		return true
	}
	return false
}

// What a failed store call did to the request (the action label of
// hopguard_idempotency_store_errors_total).
const (
	storeActionRejected = metrics.StoreActionRejected
	storeActionAllowed  = metrics.StoreActionAllowed
	storeActionIgnored  = metrics.StoreActionIgnored
)

// storeError reports a failed complete or release (op), which no longer
// changes the request's fate: the record expires by itself.
func (e *Engine) storeError(route, op string, err error) {
	e.storeFailed(route, op, storeActionIgnored, err)
}

// storeFailed logs a failed store call and counts it, unless it is an
// illegal transition (a late complete of an expired claim, say), which the
// store's Observer already counts as a rejected transition.
func (e *Engine) storeFailed(route, op, action string, err error) {
	if !errors.Is(err, idempotency.ErrIllegalTransition) {
		e.metrics.StoreErrors(route, op, action).Inc()
	}
	if ce := e.log.Check(zap.WarnLevel, "engine: idempotency store failed"); ce != nil {
		ce.Write(zap.String("route", route), zap.String("op", op), zap.String("action", action), zap.Error(err),
			zap.Bool("unavailable", errors.Is(err, idempotency.ErrUnavailable)))
	}
}
