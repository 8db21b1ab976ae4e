package v1alpha1

import (
	"fmt"
	"strings"
)

// perAttemptHeaders are headers whose values differ between the attempts
// of one request (attempt counts, deadlines, timeouts, request ids, trace
// spans) or are set by the mesh itself: never part of an idempotency
// fingerprint.
var perAttemptHeaders = map[string]bool{
	"x-envoy-attempt-count": true, "grpc-previous-rpc-attempts": true, "x-hopguard-attempt": true,
	"x-envoy-is-timeout-retry": true, "x-hopguard-deadline": true, "grpc-timeout": true,
	"x-envoy-expected-rq-timeout-ms": true, "x-envoy-upstream-rq-timeout-ms": true,
	"x-envoy-upstream-rq-per-try-timeout-ms": true, "x-request-id": true,
	"x-hopguard-route": true, "x-hopguard-policy": true, "x-hopguard-side": true,
	"traceparent": true, "tracestate": true, "b3": true, "x-b3-traceid": true, "x-b3-spanid": true,
	"x-b3-parentspanid": true, "x-b3-sampled": true, "x-b3-flags": true, "grpc-trace-bin": true,
	"x-ot-span-context": true, "x-cloud-trace-context": true,
}

func (v *validator) idempotency(d docRef, sp RouteBudgetSpec) {
	id := sp.Idempotency
	switch id.Require {
	case RequireAlways, RequireRetries, RequireNever:
	default:
		v.errorf(d, "spec.idempotency.require", "unknown value %q (want always, retries or never)", id.Require)
	}
	switch id.OnDuplicate {
	case DuplicateReject, DuplicateReplay:
	default:
		v.errorf(d, "spec.idempotency.onDuplicate", "unknown value %q (want reject or replay)", id.OnDuplicate)
	}
	switch id.OnStoreFailure {
	case StoreFailureClosed, StoreFailureOpen:
	default:
		v.errorf(d, "spec.idempotency.onStoreFailure", "unknown value %q (want closed or open)", id.OnStoreFailure)
	}
	if !tokenRE.MatchString(id.Header) {
		v.errorf(d, "spec.idempotency.header", "invalid header name %q (want an HTTP token)", id.Header)
	}
	if id.TTL <= 0 {
		v.errorf(d, "spec.idempotency.ttl", "must be greater than 0")
	}
	if n := len(id.Fingerprint.Headers); n > MaxFingerprintHeaders {
		v.errorf(d, "spec.idempotency.fingerprint.headers", "%d headers, at most %d", n, MaxFingerprintHeaders)
	}
	seen := map[string]bool{}
	for i, h := range id.Fingerprint.Headers {
		p := fmt.Sprintf("spec.idempotency.fingerprint.headers[%d]", i)
		lh := strings.ToLower(h)
		switch {
		case !tokenRE.MatchString(h):
			v.errorf(d, p, "invalid header name %q (want an HTTP token)", h)
		case seen[lh]:
			v.errorf(d, p, "header %q is listed twice", h)
		case strings.EqualFold(h, id.Header):
			v.errorf(d, p, "%q is the idempotency key header itself: the key already scopes the record", h)
		case perAttemptHeaders[lh]:
			v.errorf(d, p, "%q changes from one attempt to the next: every retry would look like another request", h)
		}
		seen[lh] = true
	}
	r := sp.Retry
	if sp.SideEffects != nil && *sp.SideEffects && r.Attempts > 1 && r.Authority != AuthorityNone && id.Require == RequireNever {
		if note, skip := v.quoted(d, sp, "sideEffects", "retry.attempts"); !skip {
			v.errorf(d, "spec.idempotency.require", "a route with side effects and retries (attempts %d) must require an idempotency key (always or retries), or set sideEffects: false or attempts: 1%s", r.Attempts, note)
		}
	}
}
