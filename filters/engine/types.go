// Package engine is hopguard's decision engine: a pure function of (compiled
// route policy, request facts, clock, idempotency store) to a decision — let
// the request through with header mutations, or reject it with a reason.
//
// It speaks no protocol. The ext_proc adapter and the gRPC interceptor turn
// their messages into Facts and Decisions back into protocol responses, so
// the hot path can be tested and measured on plain values.
package engine

import (
	"time"

	"github.com/hopguard/hopguard/filters/idempotency"
)

// Side is the hop side a decision is made on.
type Side uint8

// Sides.
const (
	// Inbound is the callee's side: the request arrives at the service.
	Inbound Side = iota
	// Outbound is the caller's side: the request leaves for a dependency.
	Outbound
)

// String returns "inbound" or "outbound" (metric label values).
func (s Side) String() string {
	if s == Outbound {
		return "outbound"
	}
	return "inbound"
}

// Layer is who made an attempt.
type Layer uint8

// Layers.
const (
	// LayerFirst is a first attempt: nobody retried.
	LayerFirst Layer = iota
	// LayerMesh is a retry made by the data plane: Envoy's router
	// (x-envoy-attempt-count) or grpc-go's xDS retry seen by a proxyless
	// callee (grpc-previous-rpc-attempts).
	LayerMesh
	// LayerApp is a retry made by the caller's code or library
	// (x-hopguard-attempt, grpc-previous-rpc-attempts behind a sidecar, or a
	// repeated idempotency key).
	LayerApp
)

// String returns "first", "mesh" or "app" (metric label values).
func (l Layer) String() string {
	switch l {
	case LayerMesh:
		return "mesh"
	case LayerApp:
		return "app"
	default:
		return "first"
	}
}

// Facts are what an adapter extracted from one request. Zero values mean
// "absent"; adapters parse headers with this package's Parse functions and
// leave a field zero when its header is missing or malformed.
type Facts struct {
	// Side is the hop side of the filter that saw the request.
	Side Side
	// Proxyless is true when the data plane is grpc-go itself (no Envoy):
	// grpc-previous-rpc-attempts then counts mesh retries, not app retries.
	Proxyless bool
	// Method and Path are the HTTP method and path (gRPC: POST and /pkg.Svc/Method).
	Method string
	Path   string

	// HopguardDeadline is x-hopguard-deadline (absolute).
	HopguardDeadline time.Time
	// GRPCTimeout is grpc-timeout (relative to Now).
	GRPCTimeout time.Duration
	// EnvoyExpectedTimeout is x-envoy-expected-rq-timeout-ms (relative to Now).
	EnvoyExpectedTimeout time.Duration
	// StreamDeadline is the deadline of the ext_proc stream or of the
	// intercepted RPC (grpc-go carries the caller's deadline there).
	StreamDeadline time.Time

	// EnvoyAttemptCount is x-envoy-attempt-count (1 for a first attempt).
	EnvoyAttemptCount int
	// GRPCPreviousAttempts is grpc-previous-rpc-attempts (0 for a first attempt).
	GRPCPreviousAttempts int
	// HopguardAttempt is x-hopguard-attempt (1 for a first attempt).
	HopguardAttempt int

	// HasKey is true when the idempotency header was present; Key is its value.
	HasKey bool
	Key    string
	// Principal identifies the caller (the MeshConfig principal header).
	Principal string
	// Fingerprint identifies the request for key-reuse detection, tagged
	// with its scheme (see RequestFingerprint and idempotency.Tag); 0 lets
	// the engine compute it, with FingerprintFunc when set, else from Method
	// and Path.
	Fingerprint uint64
	// FingerprintFunc computes the fingerprint when the idempotency check
	// needs it, so a request refused earlier (or never de-duplicated) does
	// not pay for hashing its body.
	FingerprintFunc func() uint64

	// PolicyDigest is x-hopguard-policy as the data plane sent it ("" if none).
	PolicyDigest string
}

// Reason says why a request was (or, in dry-run, would have been) rejected.
type Reason uint8

// Reasons, in the order of DESIGN.md §4's status table.
const (
	ReasonNone Reason = iota
	ReasonDeadlineExhausted
	ReasonRetryDeadlineInsufficient
	ReasonRetryNotAuthority
	ReasonRetryBudgetExhausted
	ReasonIdempotencyKeyMissing
	ReasonIdempotencyKeyInvalid
	ReasonIdempotencyKeyReused
	ReasonIdempotencyInFlight
	ReasonIdempotencyCompleted
	ReasonIdempotencyStoreUnavailable
	ReasonPolicyDrift
	ReasonFrozen
	reasonCount
)

var reasonInfo = [reasonCount]struct {
	name string
	http int
	grpc int // google.golang.org/grpc/codes values, kept numeric so the engine imports no gRPC
}{
	ReasonNone:                        {"", 200, 0},
	ReasonDeadlineExhausted:           {"deadline-exhausted", 504, 4},
	ReasonRetryDeadlineInsufficient:   {"retry-deadline-insufficient", 504, 4},
	ReasonRetryNotAuthority:           {"retry-not-authority", 409, 9},
	ReasonRetryBudgetExhausted:        {"retry-budget-exhausted", 429, 8},
	ReasonIdempotencyKeyMissing:       {"idempotency-key-missing", 400, 3},
	ReasonIdempotencyKeyInvalid:       {"idempotency-key-invalid", 400, 3},
	ReasonIdempotencyKeyReused:        {"idempotency-key-reused", 422, 3},
	ReasonIdempotencyInFlight:         {"idempotency-in-flight", 409, 10},
	ReasonIdempotencyCompleted:        {"idempotency-completed", 409, 6},
	ReasonIdempotencyStoreUnavailable: {"idempotency-store-unavailable", 503, 14},
	// A side effect carrying another policy digest than the verified bundle
	// under drift.action: quarantine. 409/FAILED_PRECONDITION: a retry on
	// the same drifted node gets the same answer.
	ReasonPolicyDrift: {"policy-drift", 409, 9},
	// A side effect on a non-critical route while the mesh is frozen.
	ReasonFrozen: {"frozen", 409, 9},
}

// String returns the reason as it appears in x-hopguard-reason and metrics.
func (r Reason) String() string {
	if r >= reasonCount {
		return "unknown"
	}
	return reasonInfo[r].name
}

// HTTPStatus is the HTTP status of a rejection for this reason.
func (r Reason) HTTPStatus() int {
	if r >= reasonCount {
		return 500
	}
	return reasonInfo[r].http
}

// GRPCCode is the gRPC status code (numeric, as google.golang.org/grpc/codes)
// of a rejection for this reason.
func (r Reason) GRPCCode() int {
	if r >= reasonCount {
		return 13
	}
	return reasonInfo[r].grpc
}

// Reasons lists every rejection reason (not ReasonNone).
func Reasons() []Reason {
	out := make([]Reason, 0, reasonCount-1)
	for r := ReasonNone + 1; r < reasonCount; r++ {
		out = append(out, r)
	}
	return out
}

// Decision is the engine's answer for one request.
type Decision struct {
	// Reject is true when the request must be refused with Reason. In
	// dry-run mode Reject stays false and DryRunReason holds what would have
	// been refused.
	Reject bool
	// Reason is the rejection reason (ReasonNone on allow).
	Reason Reason
	// DryRunReason is the reason a dry-run route would have been rejected for.
	DryRunReason Reason

	// Deadline is the effective absolute deadline; Remaining is Deadline − now.
	Deadline  time.Time
	Remaining time.Duration
	// Attempt is the attempt number (1 = first) and Layer who made it.
	Attempt int
	Layer   Layer
	// Side is the hop side the request was decided on (Facts.Side).
	Side Side

	// Mutations are the header changes to apply on allow.
	Mutations Mutations

	// Claim is set when the request claimed an idempotency key: the adapter
	// must report the outcome with Engine.Finish (or abort with it) exactly once.
	Claim *Claim
	// Replay is set when a completed duplicate is answered with its recorded
	// outcome (onDuplicate: replay) instead of a rejection. It comes with
	// Reject=true and Reason=ReasonIdempotencyCompleted: the request must not
	// be forwarded; an adapter that replays answers with Replay's recorded
	// HTTPStatus/GRPCStatus, one that does not answers with the rejection.
	// Never set in dry-run.
	Replay *idempotency.Record
}

// Mutations are header changes for an allowed request. Zero values mean
// "leave alone"; header names are lower case.
type Mutations struct {
	// Deadline, when non-zero, is stamped as x-hopguard-deadline (unix ms).
	Deadline time.Time
	// UpstreamTimeout, when > 0, is set as x-envoy-upstream-rq-timeout-ms.
	UpstreamTimeout time.Duration
	// PerTryTimeout, when > 0, is set as x-envoy-upstream-rq-per-try-timeout-ms.
	PerTryTimeout time.Duration
	// SetMaxRetries asks for x-envoy-max-retries = MaxRetries.
	SetMaxRetries bool
	MaxRetries    int
	// StripRetryHeaders asks to remove caller-sent retry-request headers
	// (x-envoy-retry-on, x-envoy-retry-grpc-on, and x-envoy-max-retries unless
	// SetMaxRetries replaces it).
	StripRetryHeaders bool
}

// Claim is an idempotency claim held by an allowed request.
type Claim struct {
	// Scope and Token identify the claim in the store.
	Scope idempotency.Scope
	Token uint64
	// TTL is how long the completed record is kept.
	TTL time.Duration
}

// Outcome is how a request ended, reported to Engine.Finish.
type Outcome struct {
	// HTTPStatus is the response status (0 when unknown).
	HTTPStatus int
	// GRPCStatus is the gRPC status code, -1 when not gRPC or unknown.
	GRPCStatus int
	// Aborted is true when the stream ended without a final response.
	Aborted bool
	// Unknown is true when the request ended but its final status never
	// reached the filter (grpc-go's ext_proc filter does not forward
	// grpc-status). An unknown outcome releases an idempotency claim — the
	// callee's own records decide about duplicates — and is not counted in
	// hopguard_completions_total.
	Unknown bool
	// HeadersAt is when response headers arrived (zero if they did not): the
	// latency sample for retry.minRemaining: auto is HeadersAt − request start.
	HeadersAt time.Time
}

// Clock tells the time; tests inject a fake.
type Clock interface {
	Now() time.Time
}
