// Package idempotency keeps the records behind Idempotency-Key enforcement:
// one record per (route, side, principal, key), moving through an explicit
// state machine whose legal transitions live in one table, and stored behind
// a small Store interface so the in-process LRU and a shared store can be
// swapped.
//
//	absent ──claim──► in_flight ──final response (2xx/4xx)──► completed ──ttl──► absent
//	                     │
//	                     └──retryable failure / stream aborted / in-flight timeout──► absent
package idempotency

import (
	"context"
	"errors"
	"time"
)

// State is the state of a record.
type State uint8

// States. Absent is the state of a key with no record.
const (
	Absent State = iota
	InFlight
	Completed
)

// Scope identifies a record: keys are scoped per route, hop side and caller.
type Scope struct {
	// Route is the route id ("namespace/name").
	Route string
	// Side is "inbound" or "outbound": both hops of one call keep separate records.
	Side string
	// Principal identifies the caller (empty when unknown).
	Principal string
	// Key is the Idempotency-Key value, already validated.
	Key string
}

// Record is what a store keeps for one scope.
type Record struct {
	// State is InFlight or Completed (a stored record is never Absent).
	State State
	// Fingerprint identifies the request that claimed the key; a request with
	// the same key and another fingerprint is a reuse.
	Fingerprint uint64
	// Token identifies the claim; Complete and Release must present it, so a
	// late response of an expired claim cannot touch a newer one. A token is
	// the claimer's capability: records a store hands to anyone else
	// (ClaimResult.Existing, Get) carry Token 0.
	Token uint64
	// HTTPStatus and GRPCStatus are the recorded outcome of a completed record
	// (GRPCStatus -1 when not gRPC).
	HTTPStatus int
	GRPCStatus int
	// ExpiresAt is when the record goes away: claim time + in-flight limit for
	// InFlight, completion time + TTL for Completed.
	ExpiresAt time.Time
}

// ClaimResult is the outcome of a Claim.
type ClaimResult struct {
	// Claimed is true when the caller now owns the key (the record is InFlight
	// with the returned Token).
	Claimed bool
	// Existing is the record that prevented the claim (when Claimed is false).
	Existing Record
	// Token is the new claim's token (when Claimed is true).
	Token uint64
}

// Outcome is the final result of a claimed request.
type Outcome struct {
	// HTTPStatus is the response status (0 when unknown).
	HTTPStatus int
	// GRPCStatus is the gRPC status code (-1 when not gRPC or unknown).
	GRPCStatus int
}

// Sentinel errors callers branch on.
var (
	// ErrIllegalTransition is returned (wrapped) when an operation would move a
	// record along a transition the state machine does not allow, e.g.
	// completing a record that is not in flight or presenting a stale token.
	ErrIllegalTransition = errors.New("idempotency: illegal transition")
	// ErrUnavailable is returned (wrapped) when the store cannot answer (a
	// shared store that is down or slow).
	ErrUnavailable = errors.New("idempotency: store unavailable")
)

// Store keeps records. Every method is atomic per scope and safe for
// concurrent use. Expired records behave as absent.
type Store interface {
	// Claim moves scope from Absent to InFlight for fingerprint, expiring
	// after inFlightFor, unless a live record exists, which it returns.
	Claim(ctx context.Context, s Scope, fingerprint uint64, now time.Time, inFlightFor time.Duration) (ClaimResult, error)
	// Complete moves the claim (InFlight with token) to Completed with the
	// outcome, kept for ttl.
	Complete(ctx context.Context, s Scope, token uint64, out Outcome, now time.Time, ttl time.Duration) error
	// Release moves the claim (InFlight with token) back to Absent, so a retry
	// can claim the key again.
	Release(ctx context.Context, s Scope, token uint64, now time.Time) error
	// Get returns the live record of scope, or ok=false when absent.
	Get(ctx context.Context, s Scope, now time.Time) (rec Record, ok bool, err error)
}
