package v1alpha1

import "time"

// Default values applied by SetDefaults.
const (
	DefaultNamespace            = "default"
	DefaultMeshName             = "default"
	DefaultDeadline             = Duration(time.Second)
	DefaultDeadlineMinRemaining = Duration(5 * time.Millisecond)
	DefaultAttempts             = 2
	DefaultBackoffBase          = Duration(25 * time.Millisecond)
	DefaultBudgetRatio          = 0.2
	DefaultBudgetMinPerSecond   = 5
	DefaultIdempotencyHeader    = "Idempotency-Key"
	DefaultIdempotencyTTL       = Duration(24 * time.Hour)
	DefaultClockSkew            = Duration(10 * time.Millisecond)
	DefaultPrincipalHeader      = "x-forwarded-client-cert"
	DefaultMaxQuarantinePercent = 20
	DefaultExtProcAddress       = "127.0.0.1:18001"
	DefaultExtProcTimeout       = Duration(200 * time.Millisecond)
	DefaultTimezone             = "UTC"
)

// DefaultRetryOn returns the default retry conditions of a route of a
// service speaking protocol p: [unavailable, reset, connect-failure] for gRPC,
// [gateway-error, reset, connect-failure] for HTTP (where the gRPC status
// "unavailable" does not apply). The slice is new on every call.
func DefaultRetryOn(p Protocol) []string {
	if p == ProtocolHTTP {
		return []string{"gateway-error", "reset", "connect-failure"}
	}
	return []string{"unavailable", "reset", "connect-failure"}
}

// SetDefaults fills every unset field of cfg with its default, in place. It is
// the one place defaults live; docs/yaml-reference.md lists the same values.
// A zero value means unset (pointers: nil), so SetDefaults is idempotent.
//
// All kinds: metadata.namespace "default".
//
// Service: protocol grpc; endpoints[].weight 1.
//
// RouteBudget: deadline.default 1s; deadline.max = deadline.default;
// deadline.minRemaining 5ms; retry.authority mesh; retry.attempts 2; retry.on
// DefaultRetryOn(protocol of the route's service); retry.backoff.base 25ms;
// retry.backoff.max 10 × base (base itself should that overflow);
// retry.minRemaining auto; retry.budget.ratio 0.2; retry.budget.minPerSecond 5;
// sideEffects true for grpcMethod matches and for path/pathPrefix matches
// whose methods are empty or include POST or PATCH, false otherwise;
// idempotency.require retries when sideEffects, else never;
// idempotency.header Idempotency-Key; idempotency.ttl 24h;
// idempotency.onDuplicate reject; idempotency.onStoreFailure closed when
// sideEffects, else open; idempotency.fingerprint.body true; mode enforce.
//
// MeshConfig: when cfg.Mesh is nil, a MeshConfig named "default" is created.
// clockSkew 10ms; principalHeader x-forwarded-client-cert; drift.action alert;
// drift.maxQuarantinePercent 20; extProc.address 127.0.0.1:18001;
// extProc.timeout 200ms; changeWindows[].timezone UTC.
//
// SetDefaults does nothing when cfg is nil.
func SetDefaults(cfg *Config) {
	if cfg == nil {
		return
	}
	protocols := map[string]Protocol{}
	for _, s := range cfg.Services {
		if s == nil {
			continue
		}
		defaultMeta(&s.Metadata)
		defaultService(&s.Spec)
		protocols[s.Metadata.Namespace+"/"+s.Metadata.Name] = s.Spec.Protocol
	}
	for _, rb := range cfg.RouteBudgets {
		if rb == nil {
			continue
		}
		defaultMeta(&rb.Metadata)
		defaultRouteBudget(&rb.Spec, protocols[rb.Metadata.Namespace+"/"+rb.Spec.Service])
	}
	if cfg.Mesh == nil {
		cfg.Mesh = &MeshConfig{
			TypeMeta: TypeMeta{APIVersion: APIVersion, Kind: KindMeshConfig},
			Metadata: ObjectMeta{Name: DefaultMeshName},
		}
	}
	defaultMeta(&cfg.Mesh.Metadata)
	defaultMesh(&cfg.Mesh.Spec)
}

func defaultMeta(m *ObjectMeta) {
	setIfZero(&m.Namespace, DefaultNamespace)
}

func defaultService(s *ServiceSpec) {
	setIfZero(&s.Protocol, ProtocolGRPC)
	for i := range s.Endpoints {
		setIfZero(&s.Endpoints[i].Weight, 1)
	}
}

func defaultRouteBudget(s *RouteBudgetSpec, p Protocol) {
	setIfZero(&s.Deadline.Default, DefaultDeadline)
	setIfZero(&s.Deadline.Max, s.Deadline.Default)
	setIfZero(&s.Deadline.MinRemaining, DefaultDeadlineMinRemaining)

	r := &s.Retry
	setIfZero(&r.Authority, AuthorityMesh)
	setIfZero(&r.Attempts, DefaultAttempts)
	if len(r.On) == 0 {
		r.On = DefaultRetryOn(p)
	}
	setIfZero(&r.Backoff.Base, DefaultBackoffBase)
	if r.Backoff.Max == 0 {
		r.Backoff.Max = r.Backoff.Base
		if r.Backoff.Base <= Duration(1<<63-1)/10 {
			r.Backoff.Max = 10 * r.Backoff.Base
		}
	}
	if !r.MinRemaining.Set && !r.MinRemaining.Auto && r.MinRemaining.Value == 0 {
		r.MinRemaining.Auto = true
	}
	if r.Budget.Ratio == nil {
		r.Budget.Ratio = new(float64(DefaultBudgetRatio))
	}
	if r.Budget.MinPerSecond == nil {
		r.Budget.MinPerSecond = new(int(DefaultBudgetMinPerSecond))
	}

	if s.SideEffects == nil {
		s.SideEffects = new(defaultSideEffects(s.Match))
	}
	if s.Idempotency.Require == "" {
		s.Idempotency.Require = RequireNever
		if *s.SideEffects {
			s.Idempotency.Require = RequireRetries
		}
	}
	setIfZero(&s.Idempotency.Header, DefaultIdempotencyHeader)
	setIfZero(&s.Idempotency.TTL, DefaultIdempotencyTTL)
	setIfZero(&s.Idempotency.OnDuplicate, DuplicateReject)
	if s.Idempotency.OnStoreFailure == "" {
		s.Idempotency.OnStoreFailure = StoreFailureOpen
		if *s.SideEffects {
			s.Idempotency.OnStoreFailure = StoreFailureClosed
		}
	}
	if s.Idempotency.Fingerprint.Body == nil {
		s.Idempotency.Fingerprint.Body = new(true)
	}
	setIfZero(&s.Mode, ModeEnforce)
}

// defaultSideEffects: gRPC methods may change state; HTTP routes do when they
// admit POST or PATCH (or any method).
func defaultSideEffects(m Match) bool {
	if m.GRPCMethod != "" || len(m.Methods) == 0 {
		return true
	}
	for _, method := range m.Methods {
		if method == "POST" || method == "PATCH" {
			return true
		}
	}
	return false
}

func defaultMesh(s *MeshConfigSpec) {
	setIfZero(&s.ClockSkew, DefaultClockSkew)
	setIfZero(&s.PrincipalHeader, DefaultPrincipalHeader)
	setIfZero(&s.Drift.Action, DriftAlert)
	if s.Drift.MaxQuarantinePercent == nil {
		s.Drift.MaxQuarantinePercent = new(int(DefaultMaxQuarantinePercent))
	}
	setIfZero(&s.ExtProc.Address, DefaultExtProcAddress)
	setIfZero(&s.ExtProc.Timeout, DefaultExtProcTimeout)
	for i := range s.ChangeWindows {
		setIfZero(&s.ChangeWindows[i].Timezone, DefaultTimezone)
	}
}

func setIfZero[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}
