// Package policy is the compiled form of hopguard's route budgets: plain Go
// values shared by the control plane (which compiles and distributes them) and
// the filters (which enforce them). It imports neither side, and no protos.
//
// A Route here is fully defaulted and validated: every field holds the value
// that is enforced, so consumers never re-apply defaults.
package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Authority is the one layer allowed to retry a route.
type Authority string

// Authorities.
const (
	AuthorityMesh Authority = "mesh"
	AuthorityApp  Authority = "app"
	AuthorityNone Authority = "none"
)

// Require says when an idempotency key is required.
type Require string

// Idempotency requirements.
const (
	RequireAlways  Require = "always"
	RequireRetries Require = "retries"
	RequireNever   Require = "never"
)

// Route is the enforced budget of one route.
type Route struct {
	// ID identifies the route everywhere (metrics, headers, xDS names):
	// "namespace/name" of its RouteBudget.
	ID string `json:"id"`
	// Service is the name of the Service that serves the route.
	Service string `json:"service"`
	// Match selects the route's requests.
	Match Match `json:"match"`
	// Deadline bounds the route's requests.
	Deadline Deadline `json:"deadline"`
	// Retry is the route's retry policy.
	Retry Retry `json:"retry"`
	// SideEffects is true when requests change state.
	SideEffects bool `json:"sideEffects"`
	// Idempotency governs the idempotency key.
	Idempotency Idempotency `json:"idempotency"`
	// DryRun computes and reports decisions without enforcing them.
	DryRun bool `json:"dryRun"`
	// Critical routes keep accepting side effects while the mesh is frozen.
	Critical bool `json:"critical"`
}

// Match selects requests: one of GRPCMethod (with Method "*" for a whole
// service), Path or PathPrefix.
type Match struct {
	// GRPCService is "package.Service" for gRPC routes.
	GRPCService string `json:"grpcService,omitempty"`
	// GRPCMethod is the method name, or "*" for every method of GRPCService.
	GRPCMethod string `json:"grpcMethod,omitempty"`
	// Path is an exact HTTP path.
	Path string `json:"path,omitempty"`
	// PathPrefix is an HTTP path prefix.
	PathPrefix string `json:"pathPrefix,omitempty"`
	// Methods restricts HTTP methods; empty means any.
	Methods []string `json:"methods,omitempty"`
}

// HTTPPath returns the request path (exact, or prefix when isPrefix) that
// the match selects, for both gRPC and HTTP matches.
func (m Match) HTTPPath() (path string, isPrefix bool) {
	switch {
	case m.GRPCService != "" && m.GRPCMethod == "*":
		return "/" + m.GRPCService + "/", true
	case m.GRPCService != "":
		return "/" + m.GRPCService + "/" + m.GRPCMethod, false
	case m.Path != "":
		return m.Path, false
	default:
		return m.PathPrefix, true
	}
}

// Deadline bounds a request's time.
type Deadline struct {
	// Default applies when the caller sent no deadline.
	Default time.Duration `json:"default"`
	// Max clamps the deadline callers ask for.
	Max time.Duration `json:"max"`
	// MinRemaining: requests with less time left are refused.
	MinRemaining time.Duration `json:"minRemaining"`
}

// Retry is a compiled retry policy.
type Retry struct {
	// Authority is the only layer allowed to retry.
	Authority Authority `json:"authority"`
	// Attempts is the total number of tries, first included (≥ 1).
	Attempts int `json:"attempts"`
	// On lists retry conditions as declared (e.g. "unavailable", "503").
	On []string `json:"on"`
	// PerTryTimeout bounds each attempt; zero means the route deadline.
	PerTryTimeout time.Duration `json:"perTryTimeout"`
	// BackoffBase is the first backoff interval.
	BackoffBase time.Duration `json:"backoffBase"`
	// BackoffMax caps every backoff interval.
	BackoffMax time.Duration `json:"backoffMax"`
	// MinRemainingAuto derives the retry threshold from observed p90 latency.
	MinRemainingAuto bool `json:"minRemainingAuto"`
	// MinRemaining is the retry threshold when MinRemainingAuto is false.
	MinRemaining time.Duration `json:"minRemaining"`
	// BudgetRatio is retries allowed per original request (0–1); retries do
	// not count as requests.
	BudgetRatio float64 `json:"budgetRatio"`
	// BudgetMinPerSecond is a floor of retries per second.
	BudgetMinPerSecond int `json:"budgetMinPerSecond"`
}

// MeshRetries returns the number of retries after the first attempt that the
// mesh may make: Attempts-1 when the mesh is the authority, 0 otherwise.
func (r Retry) MeshRetries() int {
	if r.Authority != AuthorityMesh || r.Attempts < 1 {
		return 0
	}
	return r.Attempts - 1
}

// StoreFailure says what a request gets when the idempotency store cannot
// answer.
type StoreFailure string

// Store failure handling.
const (
	// StoreFailureClosed rejects the request.
	StoreFailureClosed StoreFailure = "closed"
	// StoreFailureOpen lets the request through without de-duplication.
	StoreFailureOpen StoreFailure = "open"
)

// Idempotency governs idempotency keys.
type Idempotency struct {
	// Require says when a key is required.
	Require Require `json:"require"`
	// Header is the key header name, lower case.
	Header string `json:"header"`
	// TTL is how long a completed record is kept.
	TTL time.Duration `json:"ttl"`
	// Replay answers completed duplicates with the recorded outcome instead of rejecting them.
	Replay bool `json:"replay"`
	// OnStoreFailure is closed or open. Empty (a policy compiled before the
	// field existed) means closed for side effects and open otherwise.
	OnStoreFailure StoreFailure `json:"onStoreFailure,omitempty"`
	// FingerprintHeaders are lower-case request header names whose values
	// belong to the request's fingerprint, besides method and path.
	FingerprintHeaders []string `json:"fingerprintHeaders,omitempty"`
	// FingerprintBody adds a hash of the request body where the filter
	// sees one (the gRPC interceptor's request message). False in a policy
	// compiled before the field existed: method, path and headers only.
	FingerprintBody bool `json:"fingerprintBody,omitempty"`
}

// FailClosed reports whether a request of a route with the given side
// effects must be rejected when the idempotency store cannot answer.
func (i Idempotency) FailClosed(sideEffects bool) bool {
	switch i.OnStoreFailure {
	case StoreFailureClosed:
		return true
	case StoreFailureOpen:
		return false
	default:
		return sideEffects
	}
}

// Mesh holds the mesh-wide settings the filters need.
type Mesh struct {
	// Environment names the deployment.
	Environment string `json:"environment"`
	// ClockSkew is the tolerance for absolute deadlines.
	ClockSkew time.Duration `json:"clockSkew"`
	// PrincipalHeader scopes idempotency keys per caller (lower case).
	PrincipalHeader string `json:"principalHeader"`
	// DriftQuarantine refuses side effects on drifted policy instead of only alerting.
	DriftQuarantine bool `json:"driftQuarantine"`
	// Frozen refuses side effects on routes not marked critical: the
	// incident switch set by an operator on the control plane.
	Frozen bool `json:"frozen"`
}

// Bundle is every compiled route policy plus the mesh settings: what the
// filters enforce.
type Bundle struct {
	// Mesh holds mesh-wide settings.
	Mesh Mesh `json:"mesh"`
	// Routes are sorted by ID.
	Routes []Route `json:"routes"`
}

// ErrInvalid is wrapped by every validation error of this package.
var ErrInvalid = errors.New("policy: invalid")

// Validate checks the invariants consumers rely on.
func (r *Route) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: route %q: %s", ErrInvalid, r.ID, fmt.Sprintf(format, args...)))
	}
	if r.ID == "" {
		bad("empty id")
	}
	if r.Service == "" {
		bad("empty service")
	}
	n := 0
	for _, s := range []string{r.Match.GRPCService, r.Match.Path, r.Match.PathPrefix} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		bad("match needs exactly one of grpcService, path, pathPrefix")
	}
	if r.Match.GRPCService != "" && r.Match.GRPCMethod == "" {
		bad("grpc match without method")
	}
	d := r.Deadline
	if d.Default <= 0 || d.Max < d.Default || d.MinRemaining < 0 || d.MinRemaining >= d.Default {
		bad("deadline needs 0 ≤ minRemaining < default ≤ max, got %v/%v/%v", d.MinRemaining, d.Default, d.Max)
	}
	switch r.Retry.Authority {
	case AuthorityMesh, AuthorityApp, AuthorityNone:
	default:
		bad("unknown retry authority %q", r.Retry.Authority)
	}
	if r.Retry.Attempts < 1 {
		bad("attempts %d < 1", r.Retry.Attempts)
	}
	if r.Retry.BackoffBase <= 0 || r.Retry.BackoffMax < r.Retry.BackoffBase {
		bad("backoff needs 0 < base ≤ max")
	}
	if r.Retry.BudgetRatio < 0 || r.Retry.BudgetRatio > 1 || r.Retry.BudgetMinPerSecond < 0 {
		bad("budget out of range")
	}
	switch r.Idempotency.Require {
	case RequireAlways, RequireRetries, RequireNever:
	default:
		bad("unknown idempotency requirement %q", r.Idempotency.Require)
	}
	switch r.Idempotency.OnStoreFailure {
	case "", StoreFailureClosed, StoreFailureOpen:
	default:
		bad("unknown idempotency onStoreFailure %q", r.Idempotency.OnStoreFailure)
	}
	if r.Idempotency.Header == "" {
		bad("empty idempotency header")
	}
	for _, h := range r.Idempotency.FingerprintHeaders {
		if h == "" || h != strings.ToLower(h) {
			bad("fingerprint header %q must be a non-empty lower-case name", h)
		}
	}
	return errors.Join(errs...)
}

// Digest returns a stable hex digest of the route's policy: equal policies
// give equal digests on every host and after every restart. Data planes carry
// it as x-hopguard-policy so the filter can tell which policy a node runs.
func (r *Route) Digest() string {
	// encoding/json writes struct fields in declaration order and has no
	// maps here, so the encoding is canonical.
	// Marshal cannot fail: Route holds only strings, numbers, bools and
	// slices of strings.
	b, _ := json.Marshal(r)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
