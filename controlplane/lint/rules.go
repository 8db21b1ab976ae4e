package lint

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hopguard/hopguard/api/v1alpha1"
)

// retrier returns the route of callee k whose retries multiply calls the
// most (authority mesh or app, attempts > 1), or nil when no route retries.
func (m *mesh) retrier(k string) *v1alpha1.RouteBudget {
	var best *v1alpha1.RouteBudget
	for _, r := range m.routes[k] {
		if r.Spec.Retry.Authority == v1alpha1.AuthorityNone || r.Spec.Retry.Attempts <= 1 {
			continue
		}
		if best == nil || r.Spec.Retry.Attempts > best.Spec.Retry.Attempts {
			best = r
		}
	}
	return best
}

// paths returns every call path from a root (a service nothing calls; every
// service when all are called) to a service that calls nothing further,
// never repeating a service, at most maxPaths of them.
func (m *mesh) paths() [][]string {
	called := map[string]bool{}
	for _, k := range m.sortedKeys() {
		for _, d := range m.deps(k) {
			called[d] = true
		}
	}
	var roots []string
	for _, k := range m.sortedKeys() {
		if !called[k] {
			roots = append(roots, k)
		}
	}
	var out [][]string
	steps := 0
	var walk func(path []string)
	walk = func(path []string) {
		if steps++; steps > maxSteps || len(out) >= maxPaths {
			return
		}
		extended := false
		for _, d := range m.deps(path[len(path)-1]) {
			if slices.Contains(path, d) {
				continue // a cycle: reported by its own rule
			}
			extended = true
			walk(append(slices.Clone(path), d))
		}
		if !extended && len(path) > 1 {
			out = append(out, path)
		}
	}
	for _, r := range roots {
		walk([]string{r})
	}
	return out
}

// amplification reports call paths on which more than one hop retries: the
// worst case at the last of them is the product of their attempts.
func amplification(m *mesh) []Finding {
	seen := map[string]bool{}
	var out []Finding
	for _, path := range m.paths() {
		var hops []int // indexes into path of callees whose calls are retried
		product := 1
		for i := 1; i < len(path); i++ {
			if r := m.retrier(path[i]); r != nil {
				hops = append(hops, i)
				product *= r.Spec.Retry.Attempts
			}
		}
		if len(hops) < 2 {
			continue
		}
		last := hops[len(hops)-1]
		prefix := path[:last+1]
		id := strings.Join(prefix, ",")
		if seen[id] {
			continue
		}
		seen[id] = true
		var retrying []string
		for _, i := range hops {
			r := m.retrier(path[i])
			retrying = append(retrying, fmt.Sprintf("%s (%d attempts, %s)", routeID(r), r.Spec.Retry.Attempts, r.Spec.Retry.Authority))
		}
		r := m.retrier(path[last])
		out = append(out, Finding{
			Rule: RuleRetryAmplification, Severity: SeverityError,
			Pos: routePos(r, "spec.retry.attempts"), Path: names(prefix),
			Message: fmt.Sprintf("%d hops retry on this path: %s; one failure at %s can cost up to %d calls",
				len(hops), strings.Join(retrying, ", "), names(path[last:last+1]), product),
			Fix: "keep one retry authority per path: set retry.authority: none (or attempts: 1) on all but one of these routes, usually all but the edge",
		})
	}
	return out
}

// inversions reports callee routes whose default deadline is longer than
// any caller of the service can wait: without a propagated deadline the
// callee keeps working after every caller has given up.
func inversions(m *mesh) []Finding {
	var out []Finding
	for _, caller := range m.sortedKeys() {
		var callerMax v1alpha1.Duration
		for _, r := range m.routes[caller] {
			callerMax = max(callerMax, r.Spec.Deadline.Max)
		}
		if callerMax == 0 {
			continue // the caller declares no budget: nothing to compare
		}
		for _, callee := range m.deps(caller) {
			for _, r := range m.routes[callee] {
				if r.Spec.Deadline.Default <= callerMax {
					continue
				}
				out = append(out, Finding{
					Rule: RuleTimeoutInversion, Severity: SeverityError,
					Pos: routePos(r, "spec.deadline.default"), Path: names([]string{caller, callee}),
					Message: fmt.Sprintf("%s waits %v by default, but %s's routes allow at most %v: the callee works on after its caller gave up",
						routeID(r), r.Spec.Deadline.Default, names([]string{caller}), callerMax),
					Fix: fmt.Sprintf("lower deadline.default of %s to at most %v, or raise the caller's deadline.max", routeID(r), callerMax),
				})
			}
		}
	}
	return out
}

// sideEffectRetries reports side-effecting routes that may be retried while
// the first attempt need not carry an idempotency key: a retry after a lost
// response then cannot be told from a new request.
func sideEffectRetries(m *mesh) []Finding {
	var out []Finding
	for _, k := range m.sortedKeys() {
		for _, r := range m.routes[k] {
			s := r.Spec
			retried := s.Retry.Attempts > 1 && s.Retry.Authority != v1alpha1.AuthorityNone
			if s.SideEffects == nil || !*s.SideEffects || !retried || s.Idempotency.Require == v1alpha1.RequireAlways {
				continue
			}
			out = append(out, Finding{
				Rule: RuleSideEffectRetry, Severity: SeverityWarning,
				Pos: routePos(r, "spec.idempotency.require"),
				Message: fmt.Sprintf("%s has side effects and %d attempts (authority %s) but idempotency.require is %s: a first attempt without a key can run twice",
					routeID(r), s.Retry.Attempts, s.Retry.Authority, s.Idempotency.Require),
				Fix: "set idempotency.require: always, or retry.authority: none",
			})
		}
	}
	return out
}

// conflictingBudgets reports services whose routes declare different retry
// budgets: the service's one cluster carries the largest of them.
func conflictingBudgets(m *mesh) []Finding {
	var out []Finding
	for _, k := range m.sortedKeys() {
		rs := m.routes[k]
		if len(rs) < 2 {
			continue
		}
		type budget struct {
			ratio float64
			floor int
		}
		get := func(r *v1alpha1.RouteBudget) budget {
			var b budget
			if r.Spec.Retry.Budget.Ratio != nil {
				b.ratio = *r.Spec.Retry.Budget.Ratio
			}
			if r.Spec.Retry.Budget.MinPerSecond != nil {
				b.floor = *r.Spec.Retry.Budget.MinPerSecond
			}
			return b
		}
		first := get(rs[0])
		var top budget
		differ := false
		for _, r := range rs {
			b := get(r)
			differ = differ || b != first
			top.ratio, top.floor = max(top.ratio, b.ratio), max(top.floor, b.floor)
		}
		if !differ {
			continue
		}
		var ids []string
		for _, r := range rs {
			b := get(r)
			ids = append(ids, fmt.Sprintf("%s (%g, %d/s)", routeID(r), b.ratio, b.floor))
		}
		out = append(out, Finding{
			Rule: RuleConflictingBudgets, Severity: SeverityWarning,
			Pos: m.services[k].Pos, Path: names([]string{k}),
			Message: fmt.Sprintf("routes declare different retry budgets: %s; the cluster's circuit breaker takes the largest (%g, %d/s), so only the filter enforces the smaller ones",
				strings.Join(ids, ", "), top.ratio, top.floor),
			Fix: "give the routes of one service one retry budget",
		})
	}
	return out
}

// cycles reports each dependsOn cycle once, starting at its smallest service.
func cycles(m *mesh) []Finding {
	seen := map[string]bool{}
	var out []Finding
	steps := 0
	var walk func(path []string)
	walk = func(path []string) {
		if steps++; steps > maxSteps {
			return
		}
		for _, d := range m.deps(path[len(path)-1]) {
			if d == path[0] {
				if slices.Min(path) != path[0] {
					continue // reported from its smallest member
				}
				cycle := append(slices.Clone(path), d)
				id := strings.Join(cycle, ",")
				if seen[id] {
					continue
				}
				seen[id] = true
				s := m.services[path[0]]
				out = append(out, Finding{
					Rule: RuleDependencyCycle, Severity: SeverityError,
					Pos: s.Positions.Lookup("spec.dependsOn", s.Pos), Path: names(cycle),
					Message: "services call each other in a cycle: retries and deadlines cannot be budgeted along it",
					Fix:     "break the cycle, or remove the dependsOn entry that is not a real call",
				})
				continue
			}
			if slices.Contains(path, d) {
				continue
			}
			walk(append(slices.Clone(path), d))
		}
	}
	for _, k := range m.sortedKeys() {
		walk([]string{k})
	}
	return out
}
