package v1alpha1

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // timezones validate the same on every machine
)

// Validate checks a defaulted configuration (see SetDefaults) and returns
// every violation found, each with its field path and the position of the
// field (or of its nearest written parent, or of its document). Warnings have
// Warning set; the configuration is invalid when Violations.Errors is
// non-empty. cfg is not modified. The rules are listed in
// docs/yaml-reference.md.
//
// A message that quotes a value the document did not write (absent or null
// in YAML, so SetDefaults filled it in) says so and names the default. The
// Positions tell written from defaulted; fields of documents built in Go
// (no Positions) count as written.
//
// Two rules are checked by Load rather than here because a defaulted Config
// cannot express them: at most one MeshConfig, and fields that must not be
// written as 0 (retry.attempts, endpoint weights, deadlines, backoff,
// idempotency.ttl, extProc.timeout).
func Validate(cfg *Config) Violations {
	vs := validate(cfg, nil)
	sortViolations(vs)
	return vs
}

// knownRetryOn returns the retry conditions and whether each is a gRPC status
// condition (which only applies to gRPC services).
func knownRetryOn() map[string]bool {
	return map[string]bool{
		"unavailable":        true,
		"cancelled":          true,
		"deadline-exceeded":  true,
		"internal":           true,
		"resource-exhausted": true,
		"reset":              false,
		"connect-failure":    false,
		"refused-stream":     false,
		"retriable-4xx":      false,
		"5xx":                false,
		"gateway-error":      false,
	}
}

// RetryConditions lists the named retry conditions accepted in retry.on, in
// documentation order. HTTP status codes 100–599 are accepted too.
func RetryConditions() []string {
	return []string{
		"unavailable", "cancelled", "deadline-exceeded", "internal", "resource-exhausted",
		"reset", "connect-failure", "refused-stream", "retriable-4xx", "5xx", "gateway-error",
	}
}

var (
	labelRE      = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	grpcMethodRE = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*\.)*[A-Za-z_][A-Za-z0-9_]*/([A-Za-z_][A-Za-z0-9_]*|\*)$`)
	tokenRE      = regexp.MustCompile("^[!#$%&'*+\\-.^_`|~0-9A-Za-z]+$")
	hhmmRE       = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
)

var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}

var weekdays = []string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}

// validator accumulates violations. suppress, when set, drops violations at
// paths where decoding already failed or a 0 was refused (the value there is
// a placeholder, or a default nobody wrote).
type validator struct {
	vs       Violations
	suppress func(doc Pos, path string) bool
}

// docRef locates one document for reporting.
type docRef struct {
	pos       Pos
	positions Positions
}

// defaulted reports whether the field at path was left out of the document
// (absent, or written as null), so that its value came from SetDefaults.
// Documents built in Go have no Positions: there is no telling, and their
// fields count as written.
func (d docRef) defaulted(path string) bool {
	if d.positions == nil {
		return false
	}
	_, written := d.positions[path]
	return !written
}

// failed reports whether any of paths (or a parent) is suppressed: decoding
// failed there or a 0 was refused, and the value is a placeholder or the
// default that replaced it, so rules comparing it with other fields would
// only add noise.
func (v *validator) failed(d docRef, paths ...string) bool {
	if v.suppress == nil {
		return false
	}
	for _, p := range paths {
		if v.suppress(d.pos, p) {
			return true
		}
	}
	return false
}

func (v *validator) report(d docRef, warning bool, path, format string, args ...any) {
	if v.suppress != nil && v.suppress(d.pos, path) {
		return
	}
	v.vs = append(v.vs, Violation{
		Pos:     d.positions.Lookup(path, d.pos),
		Path:    path,
		Message: fmt.Sprintf(format, args...),
		Warning: warning,
	})
}

func (v *validator) errorf(d docRef, path, format string, args ...any) {
	v.report(d, false, path, format, args...)
}

func (v *validator) warnf(d docRef, path, format string, args ...any) {
	v.report(d, true, path, format, args...)
}

func validate(cfg *Config, suppress func(Pos, string) bool) Violations {
	if cfg == nil {
		return nil
	}
	v := &validator{suppress: suppress}
	services := map[string]*Service{}
	names := map[string]Pos{}
	// checkName reports a name used twice in one namespace; false when it did.
	checkName := func(d docRef, kind string, m ObjectMeta) bool {
		key := kind + "/" + m.NamespaceOrDefault() + "/" + m.Name
		if m.Name == "" {
			return true
		}
		if first, dup := names[key]; dup {
			v.errorf(d, "metadata.name", "duplicate %s %q in namespace %q (first at %s)", kind, m.Name, m.NamespaceOrDefault(), posString(first))
			return false
		}
		names[key] = d.positions.Lookup("metadata.name", d.pos)
		return true
	}
	// Service names are unique across namespaces too: the control plane
	// matches a node to its Service, and names its clusters, by name alone
	// (a node's xDS cluster is its Service's name).
	serviceNames := map[string]*Service{}
	for _, s := range cfg.Services {
		if s == nil {
			continue
		}
		d := docRef{s.Pos, s.Positions}
		if checkName(d, KindService, s.Metadata) && s.Metadata.Name != "" {
			if first := serviceNames[s.Metadata.Name]; first == nil {
				serviceNames[s.Metadata.Name] = s
			} else {
				v.errorf(d, "metadata.name", "Service name %q is already used in namespace %q (first at %s); Service names must be unique across namespaces (nodes and xDS clusters identify a Service by name alone)",
					s.Metadata.Name, first.Metadata.NamespaceOrDefault(), posString(first.Positions.Lookup("metadata.name", first.Pos)))
			}
		}
		key := s.Metadata.NamespaceOrDefault() + "/" + s.Metadata.Name
		if _, ok := services[key]; !ok {
			services[key] = s
		}
	}
	for _, s := range cfg.Services {
		if s != nil {
			v.service(docRef{s.Pos, s.Positions}, s, services)
		}
	}
	matches := map[string][]*RouteBudget{}
	for _, rb := range cfg.RouteBudgets {
		if rb == nil {
			continue
		}
		d := docRef{rb.Pos, rb.Positions}
		checkName(d, KindRouteBudget, rb.Metadata)
		v.routeBudget(d, rb, services, matches)
	}
	if m := cfg.Mesh; m != nil {
		v.mesh(docRef{m.Pos, m.Positions}, m)
	}
	return v.vs
}

func (v *validator) typeMeta(d docRef, tm TypeMeta, kind string) {
	if tm.APIVersion != APIVersion {
		v.errorf(d, "apiVersion", "unsupported apiVersion %q (want %s)", tm.APIVersion, APIVersion)
	}
	if tm.Kind != kind {
		v.errorf(d, "kind", "kind %q does not match the document type %s", tm.Kind, kind)
	}
}

func (v *validator) meta(d docRef, m ObjectMeta) {
	if m.Name == "" {
		v.errorf(d, "metadata.name", "required")
	} else if !isLabel(m.Name) {
		v.errorf(d, "metadata.name", "invalid name %q: %s", m.Name, labelRule)
	}
	if m.Namespace != "" && !isLabel(m.Namespace) {
		v.errorf(d, "metadata.namespace", "invalid namespace %q: %s", m.Namespace, labelRule)
	}
}

const labelRule = "want a DNS-1123 label (at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit)"

func isLabel(s string) bool { return len(s) <= 63 && labelRE.MatchString(s) }

func (v *validator) routeBudget(d docRef, rb *RouteBudget, services map[string]*Service, matches map[string][]*RouteBudget) {
	v.typeMeta(d, rb.TypeMeta, KindRouteBudget)
	v.meta(d, rb.Metadata)
	sp := rb.Spec
	ns := rb.Metadata.NamespaceOrDefault()
	svc := services[ns+"/"+sp.Service]
	switch {
	case sp.Service == "":
		v.errorf(d, "spec.service", "required")
	case svc == nil:
		v.errorf(d, "spec.service", "unknown service %q in namespace %q", sp.Service, ns)
	}
	grpcService := svc == nil || svc.Spec.Protocol != ProtocolHTTP
	v.match(d, rb, svc, matches)
	v.deadline(d, sp)
	v.retry(d, sp, grpcService)
	v.idempotency(d, sp)
	if sp.Mode != ModeEnforce && sp.Mode != ModeDryRun {
		v.errorf(d, "spec.mode", "unknown mode %q (want enforce or dry-run)", sp.Mode)
	}
}

func (v *validator) match(d docRef, rb *RouteBudget, svc *Service, matches map[string][]*RouteBudget) {
	m := rb.Spec.Match
	var set []string
	for _, f := range []struct{ name, value string }{{"grpcMethod", m.GRPCMethod}, {"path", m.Path}, {"pathPrefix", m.PathPrefix}} {
		if f.value != "" {
			set = append(set, f.name)
		}
	}
	switch len(set) {
	case 0:
		v.errorf(d, "spec.match", "one of grpcMethod, path and pathPrefix is required")
		return
	case 1:
	default:
		v.errorf(d, "spec.match."+set[1], "%s are mutually exclusive", strings.Join(set, " and "))
		return
	}
	if m.GRPCMethod != "" {
		if !grpcMethodRE.MatchString(m.GRPCMethod) {
			v.errorf(d, "spec.match.grpcMethod", "invalid gRPC method %q (want package.Service/Method or package.Service/*)", m.GRPCMethod)
		}
		if svc != nil && svc.Spec.Protocol == ProtocolHTTP {
			v.errorf(d, "spec.match.grpcMethod", "service %q speaks http; match it with path or pathPrefix", svc.Metadata.Name)
		}
		if len(m.Methods) > 0 {
			v.errorf(d, "spec.match.methods", "methods apply only to path and pathPrefix matches")
		}
	}
	for _, f := range []struct{ name, value string }{{"path", m.Path}, {"pathPrefix", m.PathPrefix}} {
		if f.value != "" && (!strings.HasPrefix(f.value, "/") || strings.ContainsAny(f.value, " \t?#")) {
			v.errorf(d, "spec.match."+f.name, "invalid %s %q (want an absolute path starting with \"/\", without query or fragment)", f.name, f.value)
		}
	}
	seen := map[string]bool{}
	for i, method := range m.Methods {
		p := fmt.Sprintf("spec.match.methods[%d]", i)
		switch {
		case !slices.Contains(httpMethods, method):
			v.errorf(d, p, "unknown HTTP method %q (want one of %s)", method, strings.Join(httpMethods, ", "))
		case seen[method]:
			v.errorf(d, p, "duplicate method %q", method)
		}
		seen[method] = true
	}
	// Matches must not overlap on one service: equal selector and methods
	// that share a member (no methods means all).
	key := rb.Metadata.NamespaceOrDefault() + "/" + rb.Spec.Service + "|" + m.GRPCMethod + "|" + m.Path + "|" + m.PathPrefix
	for _, other := range matches[key] {
		if methodsOverlap(m.Methods, other.Spec.Match.Methods) {
			v.errorf(d, "spec.match", "same match as RouteBudget %q (%s) on service %q",
				other.Metadata.Name, posString(other.Positions.Lookup("spec.match", other.Pos)), rb.Spec.Service)
			return
		}
	}
	matches[key] = append(matches[key], rb)
}

func methodsOverlap(a, b []string) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, m := range a {
		if slices.Contains(b, m) {
			return true
		}
	}
	return false
}

// quoted prepares a message comparing fields of a route budget (paths below
// spec, e.g. "deadline.max"). skip is true when one of them, or a field the
// default of one derives from, failed to decode or was a refused 0 (see
// failed): the comparison would be about a placeholder. note explains every quoted value that the user did
// not write but that SetDefaults filled in ("; deadline.default is not set
// and defaults to 1s"), empty when all were written.
func (v *validator) quoted(d docRef, sp RouteBudgetSpec, fields ...string) (note string, skip bool) {
	var notes []string
	for _, f := range fields {
		deps := []string{"spec." + f}
		switch f {
		case "deadline.max":
			deps = append(deps, "spec.deadline.default")
		case "retry.backoff.max":
			deps = append(deps, "spec.retry.backoff.base")
		}
		if !d.defaulted("spec." + f) {
			deps = deps[:1] // its value is its own
		}
		if v.failed(d, deps...) {
			return "", true
		}
		if d.defaulted("spec." + f) {
			notes = append(notes, defaultNote(d, sp, f))
		}
	}
	if len(notes) == 0 {
		return "", false
	}
	return "; " + strings.Join(notes, "; "), false
}

// defaultNote says which default field f (a path below spec) got; see
// quoted and SetDefaults.
func defaultNote(d docRef, sp RouteBudgetSpec, f string) string {
	r := sp.Retry
	switch f {
	case "deadline.max":
		if d.defaulted("spec.deadline.default") {
			return fmt.Sprintf("deadline.max and deadline.default are not set and default to %s", sp.Deadline.Max)
		}
		return fmt.Sprintf("deadline.max is not set and defaults to deadline.default = %s", sp.Deadline.Max)
	case "retry.backoff.max":
		rule := "10 × retry.backoff.base"
		if r.Backoff.Max == r.Backoff.Base {
			rule = "retry.backoff.base" // 10 × base would overflow
		}
		if d.defaulted("spec.retry.backoff.base") {
			return fmt.Sprintf("retry.backoff.max is not set and defaults to %s = %s (retry.backoff.base is not set and defaults to %s)", rule, r.Backoff.Max, r.Backoff.Base)
		}
		return fmt.Sprintf("retry.backoff.max is not set and defaults to %s = %s", rule, r.Backoff.Max)
	case "retry.attempts":
		return fmt.Sprintf("retry.attempts is not set and defaults to %d", r.Attempts)
	case "sideEffects":
		return "sideEffects is not set and defaults to true for " + sideEffectsReason(sp.Match)
	}
	var value fmt.Stringer
	switch f {
	case "deadline.default":
		value = sp.Deadline.Default
	case "deadline.minRemaining":
		value = sp.Deadline.MinRemaining
	case "retry.backoff.base":
		value = r.Backoff.Base
	default:
		return f + " is not set and has its default value"
	}
	return fmt.Sprintf("%s is not set and defaults to %s", f, value)
}

// sideEffectsReason says why defaultSideEffects is true for m.
func sideEffectsReason(m Match) string {
	switch {
	case m.GRPCMethod != "":
		return "grpcMethod matches"
	case len(m.Methods) == 0:
		return "matches of any HTTP method"
	default:
		return "matches that allow POST or PATCH"
	}
}

func (v *validator) deadline(d docRef, sp RouteBudgetSpec) {
	dl := sp.Deadline
	if dl.Default <= 0 {
		v.errorf(d, "spec.deadline.default", "must be greater than 0")
	}
	if dl.Max < dl.Default {
		if note, skip := v.quoted(d, sp, "deadline.max", "deadline.default"); !skip {
			v.errorf(d, "spec.deadline.max", "max (%s) must be at least default (%s)%s", dl.Max, dl.Default, note)
		}
	}
	if dl.MinRemaining < 0 || dl.MinRemaining >= dl.Default {
		if note, skip := v.quoted(d, sp, "deadline.minRemaining", "deadline.default"); !skip {
			v.errorf(d, "spec.deadline.minRemaining", "minRemaining (%s) must be less than default (%s)%s", dl.MinRemaining, dl.Default, note)
		}
	}
}

func (v *validator) retry(d docRef, sp RouteBudgetSpec, grpcService bool) {
	r := sp.Retry
	switch r.Authority {
	case AuthorityMesh, AuthorityApp, AuthorityNone:
	default:
		v.errorf(d, "spec.retry.authority", "unknown authority %q (want mesh, app or none)", r.Authority)
	}
	switch {
	case r.Attempts < 1 || r.Attempts > 10:
		v.errorf(d, "spec.retry.attempts", "must be between 1 and 10, got %d", r.Attempts)
	case r.Attempts > 1 && r.Authority == AuthorityNone && !d.defaulted("spec.retry.attempts"):
		v.warnf(d, "spec.retry.attempts", "attempts %d has no effect with authority none (nobody retries)", r.Attempts)
	case r.Attempts > 5:
		v.warnf(d, "spec.retry.attempts", "%d attempts multiply load %d-fold under failure; 5 or fewer is advised", r.Attempts, r.Attempts)
	}
	known := knownRetryOn()
	seen := map[string]bool{}
	for i, on := range r.On {
		p := fmt.Sprintf("spec.retry.on[%d]", i)
		isGRPC, named := known[on]
		switch {
		case seen[on]:
			v.errorf(d, p, "duplicate retry condition %q", on)
		case named && isGRPC && !grpcService:
			v.errorf(d, p, "%q is a gRPC status condition; service %q speaks http", on, sp.Service)
		case named:
		case isStatusCode(on):
		default:
			v.errorf(d, p, "unknown retry condition %q (want one of %s, or an HTTP status code 100–599)", on, strings.Join(RetryConditions(), ", "))
		}
		seen[on] = true
	}
	b := r.Backoff
	if b.Base <= 0 {
		v.errorf(d, "spec.retry.backoff.base", "must be greater than 0")
	}
	if b.Max < b.Base {
		if note, skip := v.quoted(d, sp, "retry.backoff.max", "retry.backoff.base"); !skip {
			v.errorf(d, "spec.retry.backoff.max", "max (%s) must be at least base (%s)%s", b.Max, b.Base, note)
		}
	}
	if r.Budget.Ratio != nil && (*r.Budget.Ratio < 0 || *r.Budget.Ratio > 1) {
		v.errorf(d, "spec.retry.budget.ratio", "must be between 0 and 1, got %g", *r.Budget.Ratio)
	}
	if r.Budget.MinPerSecond != nil && *r.Budget.MinPerSecond < 0 {
		v.errorf(d, "spec.retry.budget.minPerSecond", "must not be negative, got %d", *r.Budget.MinPerSecond)
	}
	maxDL := sp.Deadline.Max
	switch {
	case r.PerTryTimeout < 0:
		v.errorf(d, "spec.retry.perTryTimeout", "must not be negative")
	case r.PerTryTimeout > maxDL:
		if note, skip := v.quoted(d, sp, "deadline.max"); !skip {
			v.errorf(d, "spec.retry.perTryTimeout", "perTryTimeout (%s) exceeds deadline.max (%s)%s", r.PerTryTimeout, maxDL, note)
		}
	case r.PerTryTimeout > 0 && r.Attempts > 1 && r.Attempts <= 10 && r.Authority != AuthorityNone:
		n := time.Duration(r.Attempts)
		worst := r.PerTryTimeout.D()*n + b.Max.D()*(n-1)
		if worst <= maxDL.D() {
			break
		}
		if note, skip := v.quoted(d, sp, "retry.attempts", "retry.backoff.max", "deadline.max"); !skip {
			v.errorf(d, "spec.retry.perTryTimeout", "worst case perTryTimeout × attempts + backoff.max × (attempts-1) = %s × %d + %s × %d = %s exceeds deadline.max (%s)%s",
				r.PerTryTimeout, r.Attempts, b.Max, r.Attempts-1, worst, maxDL, note)
		}
	}
	if !r.MinRemaining.Auto && r.MinRemaining.Value >= maxDL {
		if note, skip := v.quoted(d, sp, "deadline.max"); !skip {
			v.errorf(d, "spec.retry.minRemaining", "minRemaining (%s) must be less than deadline.max (%s)%s", r.MinRemaining.Value, maxDL, note)
		}
	}
}

func isStatusCode(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 100 && n <= 599 && strconv.Itoa(n) == s
}

// explicitZeros reports fields written as 0 where 0 would silently become the
// default although it is not a valid value. It runs on decoded documents
// before SetDefaults, using their Positions to tell written from absent.
func explicitZeros(doc any, suppress func(Pos, string) bool) Violations {
	v := &validator{suppress: suppress}
	check := func(d docRef, path string, isZero bool, msg string) {
		if _, written := d.positions[path]; written && isZero {
			v.errorf(d, path, "%s", msg)
		}
	}
	const positive = "must be greater than 0 (omit the field for the default)"
	switch o := doc.(type) {
	case *Service:
		d := docRef{o.Pos, o.Positions}
		for i, e := range o.Spec.Endpoints {
			check(d, fmt.Sprintf("spec.endpoints[%d].weight", i), e.Weight == 0, "must be at least 1 (omit the field for the default 1)")
		}
	case *RouteBudget:
		d := docRef{o.Pos, o.Positions}
		s := o.Spec
		check(d, "spec.deadline.default", s.Deadline.Default == 0, positive)
		check(d, "spec.deadline.max", s.Deadline.Max == 0, positive)
		check(d, "spec.retry.attempts", s.Retry.Attempts == 0, "must be at least 1 (1 means no retries)")
		check(d, "spec.retry.backoff.base", s.Retry.Backoff.Base == 0, positive)
		check(d, "spec.retry.backoff.max", s.Retry.Backoff.Max == 0, positive)
		check(d, "spec.idempotency.ttl", s.Idempotency.TTL == 0, positive)
	case *MeshConfig:
		d := docRef{o.Pos, o.Positions}
		check(d, "spec.extProc.timeout", o.Spec.ExtProc.Timeout == 0, positive)
	}
	return v.vs
}
