// Package lint finds budgets that are valid one by one but wrong together:
// retries multiplied along a call path, deadlines that disagree across a
// call, side effects that may run twice, budgets that fight over one
// cluster, and dependency cycles. Validation (api/v1alpha1) judges each
// document; lint judges the mesh they declare.
//
// Each rule lives in its own file and is a pure function of the indexed
// configuration, so findings are the same on every run and machine.
package lint

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/hopguard/hopguard/api/v1alpha1"
)

// Severity is how bad a finding is: errors make `hopguard lint` exit 1,
// warnings are printed but do not change the exit code.
type Severity string

// Severities.
const (
	// SeverityError marks a configuration that misbehaves under failure.
	SeverityError Severity = "error"
	// SeverityWarning marks a configuration that is probably not what was
	// meant, or whose safety depends on callers' behaviour.
	SeverityWarning Severity = "warning"
)

// Rule names, as printed in findings and documented in docs/lint.md.
const (
	RuleRetryAmplification = "retry-amplification"
	RuleTimeoutInversion   = "timeout-inversion"
	RuleSideEffectRetry    = "side-effect-retry-without-idempotency"
	RuleConflictingBudgets = "conflicting-retry-budgets"
	RuleDependencyCycle    = "dependency-cycle"
)

// Bounds on the path walks, so a dense dependency graph cannot make lint
// run for ever: past them some paths go unchecked.
const (
	maxPaths = 10_000
	maxSteps = 1_000_000
)

// Finding is one problem found. Its fields are plain values; a Finding is
// safe to copy and to compare.
type Finding struct {
	// Rule is one of the Rule* constants.
	Rule string `json:"rule"`
	// Severity is SeverityError or SeverityWarning.
	Severity Severity `json:"severity"`
	// Pos is the position of the field to change (its document's when the
	// field was not written).
	Pos v1alpha1.Pos `json:"pos"`
	// Path is the dependsOn call path the finding is about, service names
	// joined with " → " ("gateway → orders → payments"); empty when the
	// finding is about one route.
	Path string `json:"path,omitempty"`
	// Message says what is wrong and what it costs.
	Message string `json:"message"`
	// Fix suggests a change that removes the finding.
	Fix string `json:"fix"`
}

// String renders "file:line:col: severity: rule: path: message (fix: ...)";
// the position is left out when unknown and the path when empty.
func (f Finding) String() string {
	var b strings.Builder
	if f.Pos.File != "" {
		fmt.Fprintf(&b, "%s:%d:%d: ", f.Pos.File, f.Pos.Line, f.Pos.Col)
	}
	fmt.Fprintf(&b, "%s: %s: ", f.Severity, f.Rule)
	if f.Path != "" {
		b.WriteString(f.Path + ": ")
	}
	fmt.Fprintf(&b, "%s (fix: %s)", f.Message, f.Fix)
	return b.String()
}

// Lint checks a loaded, defaulted and valid configuration (v1alpha1.Load
// without error violations) and returns its findings sorted by file, line,
// column, rule, path and message; nil when there are none. cfg is only read.
// On an invalid configuration the findings are unspecified.
func Lint(cfg *v1alpha1.Config) []Finding {
	m := index(cfg)
	var out []Finding
	out = append(out, amplification(m)...)
	out = append(out, inversions(m)...)
	out = append(out, sideEffectRetries(m)...)
	out = append(out, conflictingBudgets(m)...)
	out = append(out, cycles(m)...)
	slices.SortFunc(out, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Pos.File, b.Pos.File), cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Col, b.Pos.Col), cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Path, b.Path),
			cmp.Compare(a.Message, b.Message))
	})
	return out
}

// HasErrors reports whether any finding is an error.
func HasErrors(fs []Finding) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Severity == SeverityError })
}

// mesh indexes a configuration by service key ("namespace/name").
type mesh struct {
	services map[string]*v1alpha1.Service
	routes   map[string][]*v1alpha1.RouteBudget
}

func key(ns, name string) string { return ns + "/" + name }

func index(cfg *v1alpha1.Config) *mesh {
	m := &mesh{services: map[string]*v1alpha1.Service{}, routes: map[string][]*v1alpha1.RouteBudget{}}
	for _, s := range cfg.Services {
		m.services[key(s.Metadata.NamespaceOrDefault(), s.Metadata.Name)] = s
	}
	for _, r := range cfg.RouteBudgets {
		k := key(r.Metadata.NamespaceOrDefault(), r.Spec.Service)
		m.routes[k] = append(m.routes[k], r)
	}
	// Routes in a stable order whatever the file order: by route ID.
	for _, rs := range m.routes {
		slices.SortFunc(rs, func(a, b *v1alpha1.RouteBudget) int { return cmp.Compare(routeID(a), routeID(b)) })
	}
	return m
}

// deps returns the keys of the declared services k calls, sorted.
func (m *mesh) deps(k string) []string {
	s := m.services[k]
	if s == nil {
		return nil
	}
	out := make([]string, 0, len(s.Spec.DependsOn))
	for _, d := range s.Spec.DependsOn {
		if dk := key(s.Metadata.NamespaceOrDefault(), d); m.services[dk] != nil {
			out = append(out, dk)
		}
	}
	slices.Sort(out)
	return out
}

func (m *mesh) sortedKeys() []string {
	keys := make([]string, 0, len(m.services))
	for k := range m.services {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func routePos(r *v1alpha1.RouteBudget, path string) v1alpha1.Pos {
	return r.Positions.Lookup(path, r.Pos)
}

func routeID(r *v1alpha1.RouteBudget) string {
	return key(r.Metadata.NamespaceOrDefault(), r.Metadata.Name)
}

// names renders service keys as a path of short names: "a → b → c".
func names(keys ...string) string {
	short := make([]string, len(keys))
	for i, k := range keys {
		short[i] = k[strings.IndexByte(k, '/')+1:]
	}
	return strings.Join(short, " → ")
}
