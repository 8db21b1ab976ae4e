// Package v1alpha1 holds hopguard's user-facing YAML API (group
// hopguard.dev/v1alpha1): the Service, RouteBudget and MeshConfig kinds, their
// strict position-aware decoding, their defaults and their semantic validation.
//
// The types here are what users write. They carry no Envoy protos and no
// derived state; the control plane compiles them into its IR.
package v1alpha1

import (
	"strconv"
	"strings"
	"time"
)

// APIVersion is the apiVersion every hopguard document must carry.
const APIVersion = "hopguard.dev/v1alpha1"

// Kind names.
const (
	KindService     = "Service"
	KindRouteBudget = "RouteBudget"
	KindMeshConfig  = "MeshConfig"
)

// Pos is a position in a source file. Line and Col are 1-based; a zero Line
// means the position is unknown.
type Pos struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
	Col  int    `json:"col,omitempty"`
}

// Positions maps field paths of one document ("spec.retry.on[1]",
// "metadata.name") to the position of their value in the source file. For a
// mapping or list value the position is that of its key. Fields written as
// null are absent and have no entry. See Lookup.
type Positions map[string]Pos

// Duration is a Go/Envoy style duration string in YAML ("250ms", "2s", "24h").
// Negative durations are rejected by the decoder.
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats the duration the way it is written in YAML.
func (d Duration) String() string { return time.Duration(d).String() }

// ObjectMeta names a document.
type ObjectMeta struct {
	// Name is the document's name; unique per kind and namespace.
	Name string `yaml:"name" json:"name"`
	// Namespace groups documents; empty means "default".
	Namespace string `yaml:"namespace,omitempty" json:"namespace,omitempty"`
	// Labels are free-form and ignored by hopguard.
	Labels map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
}

// TypeMeta is the apiVersion/kind header of every document.
type TypeMeta struct {
	// APIVersion must be APIVersion.
	APIVersion string `yaml:"apiVersion" json:"apiVersion"`
	// Kind is one of Service, RouteBudget, MeshConfig.
	Kind string `yaml:"kind" json:"kind"`
}

// Service declares a service of the mesh: how to reach it and what it calls.
type Service struct {
	TypeMeta `yaml:",inline" json:",inline"`
	Metadata ObjectMeta  `yaml:"metadata" json:"metadata"`
	Spec     ServiceSpec `yaml:"spec" json:"spec"`
	// Pos is where the document starts; set by the decoder.
	Pos Pos `yaml:"-" json:"-"`
	// Positions maps the document's field paths to where they are written;
	// set by the decoder, nil for documents built in Go.
	Positions Positions `yaml:"-" json:"-"`
}

// Protocol is the application protocol a service speaks.
type Protocol string

// Protocols.
const (
	ProtocolGRPC Protocol = "grpc"
	ProtocolHTTP Protocol = "http"
)

// ServiceSpec is the body of a Service.
type ServiceSpec struct {
	// Protocol is grpc (default) or http.
	Protocol Protocol `yaml:"protocol,omitempty" json:"protocol,omitempty"`
	// Port is the port the application listens on (behind its sidecar). Required, 1–65535.
	Port int `yaml:"port" json:"port"`
	// Endpoints are static addresses of the service's instances. Exactly one
	// of Endpoints and DNS must be set.
	Endpoints []Endpoint `yaml:"endpoints,omitempty" json:"endpoints,omitempty"`
	// DNS is a host:port resolved by the data plane (strict DNS).
	DNS string `yaml:"dns,omitempty" json:"dns,omitempty"`
	// DependsOn names the Services this one calls (same namespace). It scopes
	// the outbound configuration a node receives and feeds `hopguard lint`.
	DependsOn []string `yaml:"dependsOn,omitempty" json:"dependsOn,omitempty"`
}

// Endpoint is one static instance address.
type Endpoint struct {
	// Address is host:port, with an IP literal as host.
	Address string `yaml:"address" json:"address"`
	// Locality is where the instance runs; used for drift summaries and quarantine.
	Locality Locality `yaml:"locality,omitempty" json:"locality,omitempty"`
	// Weight is the load-balancing weight (default 1).
	Weight int `yaml:"weight,omitempty" json:"weight,omitempty"`
}

// Locality is an Envoy-style region/zone/subZone triple.
type Locality struct {
	// Region is the instance's region (free-form, e.g. eu-west-1).
	Region string `yaml:"region,omitempty" json:"region,omitempty"`
	// Zone is the availability zone within Region.
	Zone string `yaml:"zone,omitempty" json:"zone,omitempty"`
	// SubZone is a finer grouping within Zone (e.g. a rack).
	SubZone string `yaml:"subZone,omitempty" json:"subZone,omitempty"`
}

// RouteBudget declares the retry and deadline budget of one route of a service.
type RouteBudget struct {
	TypeMeta `yaml:",inline" json:",inline"`
	Metadata ObjectMeta      `yaml:"metadata" json:"metadata"`
	Spec     RouteBudgetSpec `yaml:"spec" json:"spec"`
	// Pos is where the document starts; set by the decoder.
	Pos Pos `yaml:"-" json:"-"`
	// Positions maps the document's field paths to where they are written;
	// set by the decoder, nil for documents built in Go.
	Positions Positions `yaml:"-" json:"-"`
}

// RouteBudgetSpec is the body of a RouteBudget.
type RouteBudgetSpec struct {
	// Service names the Service (same namespace) that serves this route.
	Service string `yaml:"service" json:"service"`
	// Match selects the requests of the route.
	Match Match `yaml:"match" json:"match"`
	// Deadline bounds how long a request of this route may take.
	Deadline Deadline `yaml:"deadline,omitempty" json:"deadline,omitempty"`
	// Retry says who may retry, how often and when.
	Retry Retry `yaml:"retry,omitempty" json:"retry,omitempty"`
	// SideEffects marks routes whose requests change state. Defaults: true for
	// gRPC methods and for paths whose methods include POST or PATCH (or are
	// unrestricted), false otherwise.
	SideEffects *bool `yaml:"sideEffects,omitempty" json:"sideEffects,omitempty"`
	// Critical routes keep accepting side effects while an operator has
	// frozen the mesh (hopguard freeze); every other route's side effects
	// are refused with reason frozen. Default false.
	Critical bool `yaml:"critical,omitempty" json:"critical,omitempty"`
	// Idempotency governs the Idempotency-Key header.
	Idempotency Idempotency `yaml:"idempotency,omitempty" json:"idempotency,omitempty"`
	// Mode is enforce (default) or dry-run.
	Mode Mode `yaml:"mode,omitempty" json:"mode,omitempty"`
}

// Match selects requests. Exactly one of GRPCMethod, Path and PathPrefix is set.
type Match struct {
	// GRPCMethod is "package.Service/Method" (or "package.Service/*" for all methods).
	GRPCMethod string `yaml:"grpcMethod,omitempty" json:"grpcMethod,omitempty"`
	// Path is an exact HTTP path, starting with "/".
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
	// PathPrefix is an HTTP path prefix, starting with "/".
	PathPrefix string `yaml:"pathPrefix,omitempty" json:"pathPrefix,omitempty"`
	// Methods restricts HTTP methods (upper case); empty means any.
	Methods []string `yaml:"methods,omitempty" json:"methods,omitempty"`
}

// Deadline bounds a request's time.
type Deadline struct {
	// Default is the deadline applied when the caller sent none (default 1s).
	Default Duration `yaml:"default,omitempty" json:"default,omitempty"`
	// Max clamps the deadline callers ask for (default: Default).
	Max Duration `yaml:"max,omitempty" json:"max,omitempty"`
	// MinRemaining: a request with less time left is refused (default 5ms).
	MinRemaining Duration `yaml:"minRemaining,omitempty" json:"minRemaining,omitempty"`
}

// Authority is the one layer allowed to retry a route.
type Authority string

// Authorities.
const (
	AuthorityMesh Authority = "mesh"
	AuthorityApp  Authority = "app"
	AuthorityNone Authority = "none"
)

// Retry is a route's retry policy.
type Retry struct {
	// Authority is mesh (default), app or none.
	Authority Authority `yaml:"authority,omitempty" json:"authority,omitempty"`
	// Attempts is the total number of tries, the first included (default 2; 1 = no retries).
	Attempts int `yaml:"attempts,omitempty" json:"attempts,omitempty"`
	// On lists retry conditions (default [unavailable, reset, connect-failure]);
	// see RetryConditions. Numeric entries are HTTP status codes.
	On []string `yaml:"on,omitempty" json:"on,omitempty"`
	// PerTryTimeout bounds each attempt; zero means the route deadline.
	PerTryTimeout Duration `yaml:"perTryTimeout,omitempty" json:"perTryTimeout,omitempty"`
	// Backoff is the jittered exponential backoff between attempts.
	Backoff Backoff `yaml:"backoff,omitempty" json:"backoff,omitempty"`
	// MinRemaining is the deadline a retry needs to be admitted: a duration,
	// or "auto" (default) for the route's observed p90 latency.
	MinRemaining MinRemaining `yaml:"minRemaining,omitempty" json:"minRemaining,omitempty"`
	// Budget caps retries relative to requests.
	Budget Budget `yaml:"budget,omitempty" json:"budget,omitempty"`
}

// Backoff is an exponential full-jitter backoff with a hard cap.
type Backoff struct {
	// Base is the first interval (default 25ms).
	Base Duration `yaml:"base,omitempty" json:"base,omitempty"`
	// Max caps every interval (default 10 × Base).
	Max Duration `yaml:"max,omitempty" json:"max,omitempty"`
}

// MinRemaining is either "auto" or a duration. The zero value means unset.
type MinRemaining struct {
	// Auto is true for "auto".
	Auto bool
	// Value is the duration when Auto is false.
	Value Duration
	// Set records that the field was present in YAML.
	Set bool
}

// String formats the value as written in YAML.
func (m MinRemaining) String() string {
	if m.Auto {
		return "auto"
	}
	return m.Value.String()
}

// Budget caps retries: at most Ratio of original requests (first attempts;
// retries do not count) over a 10 s window, plus MinPerSecond.
type Budget struct {
	// Ratio is retries allowed per original request, 0–1 (default 0.2).
	Ratio *float64 `yaml:"ratio,omitempty" json:"ratio,omitempty"`
	// MinPerSecond is a floor of retries per second always allowed (default 5).
	MinPerSecond *int `yaml:"minPerSecond,omitempty" json:"minPerSecond,omitempty"`
}

// IdempotencyRequire says when an Idempotency-Key is required.
type IdempotencyRequire string

// Idempotency requirements.
const (
	RequireAlways  IdempotencyRequire = "always"
	RequireRetries IdempotencyRequire = "retries"
	RequireNever   IdempotencyRequire = "never"
)

// OnDuplicate says what a completed duplicate gets.
type OnDuplicate string

// Duplicate handling.
const (
	DuplicateReject OnDuplicate = "reject"
	DuplicateReplay OnDuplicate = "replay"
)

// StoreFailure says what a request gets when the idempotency store cannot
// answer (down, slow, unreachable).
type StoreFailure string

// Store failure handling.
const (
	// StoreFailureClosed rejects the request: a duplicate cannot be told
	// apart, so a side effect is not risked twice.
	StoreFailureClosed StoreFailure = "closed"
	// StoreFailureOpen lets the request through without de-duplication.
	StoreFailureOpen StoreFailure = "open"
)

// Idempotency governs Idempotency-Key handling on a route.
type Idempotency struct {
	// Require is always, retries or never. Default: retries when the route has
	// side effects, never otherwise.
	Require IdempotencyRequire `yaml:"require,omitempty" json:"require,omitempty"`
	// Header is the key header (default Idempotency-Key).
	Header string `yaml:"header,omitempty" json:"header,omitempty"`
	// TTL is how long a completed record is kept (default 24h).
	TTL Duration `yaml:"ttl,omitempty" json:"ttl,omitempty"`
	// OnDuplicate is reject (default) or replay.
	OnDuplicate OnDuplicate `yaml:"onDuplicate,omitempty" json:"onDuplicate,omitempty"`
	// OnStoreFailure is closed or open: what a request that needs the
	// idempotency store gets when the store cannot answer. Default: closed
	// when the route has side effects, open otherwise.
	OnStoreFailure StoreFailure `yaml:"onStoreFailure,omitempty" json:"onStoreFailure,omitempty"`
	// Fingerprint says what identifies the request a key was first used
	// with, besides method and path: the same key sent with another request
	// is refused as idempotency-key-reused instead of being answered as a
	// duplicate.
	Fingerprint Fingerprint `yaml:"fingerprint,omitempty" json:"fingerprint,omitempty"`
}

// MaxFingerprintHeaders bounds idempotency.fingerprint.headers.
const MaxFingerprintHeaders = 16

// Fingerprint is what, besides method and path, identifies the request an
// idempotency key belongs to.
type Fingerprint struct {
	// Headers are request headers whose values belong to the request (an
	// amount, an account), matched case-insensitively; an absent header
	// differs from an empty one. At most 16.
	Headers []string `yaml:"headers,omitempty" json:"headers,omitempty"`
	// Body adds a hash of the request body where the filter sees it: the
	// gRPC server interceptor hashes a unary call's request message (its
	// deterministic protobuf encoding). Envoy's ext_proc filter is sent no
	// body, so it fingerprints method, path and Headers only. Default true.
	Body *bool `yaml:"body,omitempty" json:"body,omitempty"`
}

// Mode is enforce or dry-run.
type Mode string

// Modes.
const (
	ModeEnforce Mode = "enforce"
	ModeDryRun  Mode = "dry-run"
)

// MeshConfig holds mesh-wide settings. At most one per configuration.
type MeshConfig struct {
	TypeMeta `yaml:",inline" json:",inline"`
	Metadata ObjectMeta     `yaml:"metadata" json:"metadata"`
	Spec     MeshConfigSpec `yaml:"spec" json:"spec"`
	// Pos is where the document starts; set by the decoder.
	Pos Pos `yaml:"-" json:"-"`
	// Positions maps the document's field paths to where they are written;
	// set by the decoder, nil for documents built in Go.
	Positions Positions `yaml:"-" json:"-"`
}

// MeshConfigSpec is the body of a MeshConfig.
type MeshConfigSpec struct {
	// Environment names the deployment (e.g. prod-eu-1); bundles for another environment are refused.
	Environment string `yaml:"environment,omitempty" json:"environment,omitempty"`
	// ClockSkew is the tolerance for absolute deadlines across hosts (default 10ms).
	ClockSkew Duration `yaml:"clockSkew,omitempty" json:"clockSkew,omitempty"`
	// PrincipalHeader scopes idempotency keys per caller (default x-forwarded-client-cert).
	PrincipalHeader string `yaml:"principalHeader,omitempty" json:"principalHeader,omitempty"`
	// ChangeWindows are the times in which configuration changes are expected.
	ChangeWindows []ChangeWindow `yaml:"changeWindows,omitempty" json:"changeWindows,omitempty"`
	// Drift says what to do when a node runs other config than declared.
	Drift Drift `yaml:"drift,omitempty" json:"drift,omitempty"`
	// ExtProc is where data planes reach the ext_proc server.
	ExtProc ExtProc `yaml:"extProc,omitempty" json:"extProc,omitempty"`
}

// ChangeWindow is a recurring weekly window.
type ChangeWindow struct {
	// Days are three-letter English day names (Mon … Sun).
	Days []string `yaml:"days" json:"days"`
	// From is the start, "HH:MM".
	From string `yaml:"from" json:"from"`
	// To is the end, "HH:MM", after From.
	To string `yaml:"to" json:"to"`
	// Timezone is an IANA zone name (default UTC).
	Timezone string `yaml:"timezone,omitempty" json:"timezone,omitempty"`
}

// DriftAction is alert or quarantine.
type DriftAction string

// Drift actions.
const (
	DriftAlert      DriftAction = "alert"
	DriftQuarantine DriftAction = "quarantine"
)

// Drift configures drift handling.
type Drift struct {
	// Action is alert (default) or quarantine.
	Action DriftAction `yaml:"action,omitempty" json:"action,omitempty"`
	// MaxQuarantinePercent caps the share of a service's endpoints that may be
	// quarantined, 0–100 (default 20).
	MaxQuarantinePercent *int `yaml:"maxQuarantinePercent,omitempty" json:"maxQuarantinePercent,omitempty"`
}

// ExtProc says where data planes reach the ext_proc server.
type ExtProc struct {
	// Address is host:port of the ext_proc server (default 127.0.0.1:18001).
	Address string `yaml:"address,omitempty" json:"address,omitempty"`
	// Timeout bounds each ext_proc message exchange (default 200ms).
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// FailOpen says whether requests go through when the ext_proc server
	// cannot be reached. Unset (default): per route — fail open for routes
	// without side effects, fail closed for routes with side effects. true or
	// false applies to every route.
	// reached (default false: fail closed).
	FailOpen *bool `yaml:"failOpen,omitempty" json:"failOpen,omitempty"`
	// Disabled leaves the ext_proc filter out of rendered config (the data
	// plane then enforces only routes, timeouts and retry policies).
	Disabled bool `yaml:"disabled,omitempty" json:"disabled,omitempty"`
}

// Config is every document of a configuration, decoded and defaulted.
type Config struct {
	// Services in the order they were read.
	Services []*Service
	// RouteBudgets in the order they were read.
	RouteBudgets []*RouteBudget
	// Mesh is the MeshConfig; a defaulted one when none was given.
	Mesh *MeshConfig
	// Files are the files read, in order.
	Files []string
}

// NamespaceOrDefault returns the namespace, or "default" when empty.
func (m ObjectMeta) NamespaceOrDefault() string {
	if m.Namespace == "" {
		return "default"
	}
	return m.Namespace
}

// Violation is one problem found in a configuration.
type Violation struct {
	// Pos locates the offending value (or its document when unknown).
	Pos Pos
	// Path is the field path, e.g. "spec.retry.attempts".
	Path string
	// Message says what is wrong.
	Message string
	// Warning marks problems that do not make the configuration invalid.
	Warning bool
}

// String renders "file:line:col: path: message".
func (v Violation) String() string {
	var b strings.Builder
	if v.Pos.File != "" {
		b.WriteString(v.Pos.File)
		b.WriteString(":")
	}
	if v.Pos.Line > 0 {
		b.WriteString(strconv.Itoa(v.Pos.Line))
		b.WriteString(":")
		b.WriteString(strconv.Itoa(v.Pos.Col))
		b.WriteString(":")
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if v.Warning {
		b.WriteString("warning: ")
	}
	if v.Path != "" {
		b.WriteString(v.Path)
		b.WriteString(": ")
	}
	b.WriteString(v.Message)
	return b.String()
}

// Violations is a list of problems. As an error it reports every one.
type Violations []Violation

// Error joins every violation, one per line.
func (vs Violations) Error() string {
	lines := make([]string, len(vs))
	for i, v := range vs {
		lines[i] = v.String()
	}
	return strings.Join(lines, "\n")
}

// Errors returns the violations that are not warnings.
func (vs Violations) Errors() Violations {
	var out Violations
	for _, v := range vs {
		if !v.Warning {
			out = append(out, v)
		}
	}
	return out
}
