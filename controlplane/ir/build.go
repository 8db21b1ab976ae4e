package ir

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/policy"
)

// ErrNotDefaulted is wrapped by Build errors about fields that the api
// package's defaults should have filled in.
var ErrNotDefaulted = errors.New("ir: config not defaulted")

// Build compiles a defaulted, validated configuration into the IR. It does
// not apply defaults: a field left unset where the api defaults always set
// one is an error wrapping ErrNotDefaulted. Every problem found is reported
// (joined), and the result passes Validate. cfg is not modified and the
// returned Mesh shares no memory with it.
func Build(cfg *v1alpha1.Config) (*Mesh, error) {
	if cfg == nil {
		return nil, errors.New("ir: nil config")
	}
	var errs []error
	m := &Mesh{}
	if cfg.Mesh != nil {
		errs = append(errs, buildMeshConfig(m, &cfg.Mesh.Spec))
	} else {
		errs = append(errs, fmt.Errorf("%w: no MeshConfig", ErrNotDefaulted))
	}

	byKey := make(map[string]*Service, len(cfg.Services))
	for i, s := range cfg.Services {
		if s == nil {
			errs = append(errs, fmt.Errorf("ir: services[%d]: nil", i))
			continue
		}
		svc, err := buildService(s)
		if err != nil {
			errs = append(errs, err)
		}
		key := svc.Namespace + "/" + svc.Name
		if _, dup := byKey[key]; dup {
			errs = append(errs, fmt.Errorf("ir: service %s declared twice", key))
			continue
		}
		byKey[key] = svc
		m.Services = append(m.Services, svc)
	}

	for i, rb := range cfg.RouteBudgets {
		if rb == nil {
			errs = append(errs, fmt.Errorf("ir: routeBudgets[%d]: nil", i))
			continue
		}
		ns := rb.Metadata.NamespaceOrDefault()
		svc, ok := byKey[ns+"/"+rb.Spec.Service]
		if !ok {
			errs = append(errs, fmt.Errorf("ir: route %s/%s: unknown service %q", ns, rb.Metadata.Name, rb.Spec.Service))
			continue
		}
		r, err := buildRoute(rb, svc.GRPC)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		svc.Routes = append(svc.Routes, r)
	}

	slices.SortFunc(m.Services, func(a, b *Service) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Namespace, b.Namespace))
	})
	for _, s := range m.Services {
		SortRoutes(s.Routes)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// buildMeshConfig fills the mesh-wide parts of m.
func buildMeshConfig(m *Mesh, spec *v1alpha1.MeshConfigSpec) error {
	var errs []error
	m.Policy = policy.Mesh{
		Environment:     spec.Environment,
		ClockSkew:       spec.ClockSkew.D(),
		PrincipalHeader: strings.ToLower(spec.PrincipalHeader),
		DriftQuarantine: spec.Drift.Action == v1alpha1.DriftQuarantine,
	}
	m.ExtProc = ExtProc{
		Enabled:     !spec.ExtProc.Disabled,
		Address:     spec.ExtProc.Address,
		Timeout:     spec.ExtProc.Timeout.D(),
		FailureMode: FailureAuto,
	}
	if f := spec.ExtProc.FailOpen; f != nil {
		m.ExtProc.FailureMode = FailureClosed
		if *f {
			m.ExtProc.FailureMode = FailureOpen
		}
	}
	m.Drift = Drift{Quarantine: spec.Drift.Action == v1alpha1.DriftQuarantine}
	if p := spec.Drift.MaxQuarantinePercent; p != nil {
		m.Drift.MaxQuarantinePercent = *p
	} else {
		errs = append(errs, fmt.Errorf("%w: mesh drift.maxQuarantinePercent unset", ErrNotDefaulted))
	}
	for i, w := range spec.ChangeWindows {
		cw, err := buildChangeWindow(w)
		if err != nil {
			errs = append(errs, fmt.Errorf("ir: mesh changeWindows[%d]: %w", i, err))
			continue
		}
		m.ChangeWindows = append(m.ChangeWindows, cw)
	}
	return errors.Join(errs...)
}

// weekdays maps the three-letter day names of the API to time.Weekday.
var weekdays = map[string]time.Weekday{
	"Sun": time.Sunday, "Mon": time.Monday, "Tue": time.Tuesday, "Wed": time.Wednesday,
	"Thu": time.Thursday, "Fri": time.Friday, "Sat": time.Saturday,
}

// buildChangeWindow parses the days and "HH:MM" bounds of a change window.
func buildChangeWindow(w v1alpha1.ChangeWindow) (ChangeWindow, error) {
	var errs []error
	cw := ChangeWindow{FromText: w.From, ToText: w.To, Timezone: w.Timezone}
	if cw.Timezone == "" {
		errs = append(errs, fmt.Errorf("%w: timezone unset", ErrNotDefaulted))
	}
	for _, d := range w.Days {
		wd, ok := weekdays[d]
		if !ok {
			errs = append(errs, fmt.Errorf("ir: unknown day %q", d))
			continue
		}
		if !slices.Contains(cw.Days, wd) {
			cw.Days = append(cw.Days, wd)
		}
	}
	slices.Sort(cw.Days)
	var err error
	if cw.From, err = parseClock(w.From); err != nil {
		errs = append(errs, fmt.Errorf("ir: from: %w", err))
	}
	if cw.To, err = parseClock(w.To); err != nil {
		errs = append(errs, fmt.Errorf("ir: to: %w", err))
	}
	if len(errs) == 0 && cw.From >= cw.To {
		errs = append(errs, fmt.Errorf("ir: from %s is not before to %s", w.From, w.To))
	}
	return cw, errors.Join(errs...)
}

// parseClock turns "HH:MM" into minutes after midnight.
func parseClock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil || len(s) != len("15:04") {
		return 0, fmt.Errorf("ir: time %q is not HH:MM", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// buildService compiles a Service without its routes. The returned service
// is never nil, so its name can still be used when err is non-nil.
func buildService(s *v1alpha1.Service) (*Service, error) {
	var errs []error
	svc := &Service{
		Name:      s.Metadata.Name,
		Namespace: s.Metadata.NamespaceOrDefault(),
	}
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("ir: service %s/%s: %s", svc.Namespace, svc.Name, fmt.Sprintf(format, args...)))
	}
	switch s.Spec.Protocol {
	case v1alpha1.ProtocolGRPC:
		svc.GRPC = true
	case v1alpha1.ProtocolHTTP:
	case "":
		errs = append(errs, fmt.Errorf("%w: service %s/%s: protocol unset", ErrNotDefaulted, svc.Namespace, svc.Name))
	default:
		bad("unknown protocol %q", s.Spec.Protocol)
	}
	port, err := parsePort(strconv.Itoa(s.Spec.Port))
	if err != nil {
		bad("port: %v", err)
	}
	svc.Port = port
	for i, e := range s.Spec.Endpoints {
		ep, err := buildEndpoint(e)
		if err != nil {
			bad("endpoints[%d]: %v", i, err)
			continue
		}
		svc.Endpoints = append(svc.Endpoints, ep)
	}
	if s.Spec.DNS != "" {
		host, portText, err := net.SplitHostPort(s.Spec.DNS)
		if err != nil || host == "" {
			bad("dns %q is not host:port", s.Spec.DNS)
		} else if svc.DNSPort, err = parsePort(portText); err != nil {
			bad("dns: %v", err)
		}
		svc.DNSHost = host
	}
	deps := slices.Clone(s.Spec.DependsOn)
	slices.Sort(deps)
	svc.DependsOn = slices.Compact(deps)
	return svc, errors.Join(errs...)
}

// buildEndpoint parses a static "ip:port" endpoint.
func buildEndpoint(e v1alpha1.Endpoint) (Endpoint, error) {
	ap, err := netip.ParseAddrPort(e.Address)
	if err != nil {
		return Endpoint{}, fmt.Errorf("ir: address %q is not ip:port: %w", e.Address, err)
	}
	if ap.Port() == 0 {
		return Endpoint{}, fmt.Errorf("ir: address %q: port 0", e.Address)
	}
	if e.Weight < 1 || int64(e.Weight) > math.MaxUint32 {
		return Endpoint{}, fmt.Errorf("ir: weight %d out of range 1–%d", e.Weight, uint32(math.MaxUint32))
	}
	return Endpoint{
		Host:    ap.Addr().Unmap().String(),
		Port:    uint32(ap.Port()),
		Region:  e.Locality.Region,
		Zone:    e.Locality.Zone,
		SubZone: e.Locality.SubZone,
		Weight:  uint32(e.Weight),
	}, nil
}

// parsePort parses a TCP port, 1–65535.
func parsePort(s string) (uint32, error) {
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("ir: port %q out of range 1–65535", s)
	}
	return uint32(p), nil
}

// buildRoute compiles one RouteBudget of a service into its enforced policy.
func buildRoute(rb *v1alpha1.RouteBudget, grpc bool) (*Route, error) {
	spec := &rb.Spec
	id := rb.Metadata.NamespaceOrDefault() + "/" + rb.Metadata.Name
	var errs []error
	bad := func(err error) { errs = append(errs, fmt.Errorf("ir: route %s: %w", id, err)) }
	unset := func(field string) { bad(fmt.Errorf("%w: %s unset", ErrNotDefaulted, field)) }

	p := policy.Route{
		ID:      id,
		Service: spec.Service,
		Deadline: policy.Deadline{
			Default:      spec.Deadline.Default.D(),
			Max:          spec.Deadline.Max.D(),
			MinRemaining: spec.Deadline.MinRemaining.D(),
		},
		Retry: policy.Retry{
			Authority:        policy.Authority(spec.Retry.Authority),
			Attempts:         spec.Retry.Attempts,
			On:               slices.Clone(spec.Retry.On),
			PerTryTimeout:    spec.Retry.PerTryTimeout.D(),
			BackoffBase:      spec.Retry.Backoff.Base.D(),
			BackoffMax:       spec.Retry.Backoff.Max.D(),
			MinRemainingAuto: spec.Retry.MinRemaining.Auto,
			MinRemaining:     spec.Retry.MinRemaining.Value.D(),
		},
		Idempotency: policy.Idempotency{
			Require: policy.Require(spec.Idempotency.Require),
			Header:  strings.ToLower(spec.Idempotency.Header),
			TTL:     spec.Idempotency.TTL.D(),
			Replay:  spec.Idempotency.OnDuplicate == v1alpha1.DuplicateReplay,
			// Copied as written; an empty value (a spec not defaulted) keeps
			// the engine's rule: closed for side effects, open otherwise.
			OnStoreFailure:     policy.StoreFailure(spec.Idempotency.OnStoreFailure),
			FingerprintHeaders: lowerAll(spec.Idempotency.Fingerprint.Headers),
			FingerprintBody:    spec.Idempotency.Fingerprint.Body == nil || *spec.Idempotency.Fingerprint.Body,
		},
		DryRun: spec.Mode == v1alpha1.ModeDryRun,
	}
	match, err := buildMatch(spec.Match, grpc)
	if err != nil {
		bad(err)
	}
	p.Match = match
	if spec.Retry.Budget.Ratio == nil {
		unset("retry.budget.ratio")
	} else {
		p.Retry.BudgetRatio = *spec.Retry.Budget.Ratio
	}
	if spec.Retry.Budget.MinPerSecond == nil {
		unset("retry.budget.minPerSecond")
	} else {
		p.Retry.BudgetMinPerSecond = *spec.Retry.Budget.MinPerSecond
	}
	if spec.SideEffects == nil {
		unset("sideEffects")
	} else {
		p.SideEffects = *spec.SideEffects
	}
	p.Critical = spec.Critical
	switch spec.Mode {
	case v1alpha1.ModeEnforce, v1alpha1.ModeDryRun:
	default:
		bad(fmt.Errorf("unknown mode %q", spec.Mode))
	}
	switch spec.Idempotency.OnStoreFailure {
	case "", v1alpha1.StoreFailureClosed, v1alpha1.StoreFailureOpen:
	default:
		bad(fmt.Errorf("unknown onStoreFailure %q", spec.Idempotency.OnStoreFailure))
	}
	switch spec.Idempotency.OnDuplicate {
	case v1alpha1.DuplicateReject, v1alpha1.DuplicateReplay:
	default:
		bad(fmt.Errorf("unknown onDuplicate %q", spec.Idempotency.OnDuplicate))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Route{Policy: p, Digest: p.Digest()}, nil
}

// buildMatch compiles a match. gRPC methods are split into service and
// method; HTTP methods are upper-cased.
func buildMatch(m v1alpha1.Match, grpc bool) (policy.Match, error) {
	out := policy.Match{Path: m.Path, PathPrefix: m.PathPrefix}
	for _, meth := range m.Methods {
		out.Methods = append(out.Methods, strings.ToUpper(meth))
	}
	if m.GRPCMethod != "" {
		svc, meth, ok := strings.Cut(m.GRPCMethod, "/")
		if !ok || svc == "" || meth == "" || strings.Contains(meth, "/") {
			return out, fmt.Errorf("ir: grpcMethod %q is not package.Service/Method", m.GRPCMethod)
		}
		if !grpc {
			return out, fmt.Errorf("ir: grpcMethod %q on an http service", m.GRPCMethod)
		}
		out.GRPCService, out.GRPCMethod = svc, meth
	}
	return out, nil
}

// SortRoutes orders routes most specific first, the order in which a data
// plane must try them: exact matches (gRPC methods, exact paths) before
// prefixes, longer prefixes before shorter ones, method-restricted matches
// before unrestricted ones on the same path, then by ID. (Paths are compared
// too, so that routes on different paths keep a stable order.)
func SortRoutes(rs []*Route) {
	slices.SortStableFunc(rs, func(a, b *Route) int {
		pa, prefA := a.Policy.Match.HTTPPath()
		pb, prefB := b.Policy.Match.HTTPPath()
		byLength := 0
		if prefA && prefB {
			byLength = -cmp.Compare(len(pa), len(pb))
		}
		return cmp.Or(
			compareBool(prefA, prefB),
			byLength,
			cmp.Compare(pa, pb),
			compareBool(len(a.Policy.Match.Methods) == 0, len(b.Policy.Match.Methods) == 0),
			cmp.Compare(a.Policy.ID, b.Policy.ID),
		)
	})
}

// compareBool orders false before true.
func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	default:
		return -1
	}
}

// lowerAll returns the names in lower case (nil for none).
func lowerAll(names []string) []string {
	if len(names) == 0 {
		return nil
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.ToLower(n)
	}
	return out
}
