package lint

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hopguard/hopguard/api/v1alpha1"
)

// retrier returns the route of service k whose calls may be retried the
// most times — authority mesh (the caller's sidecar or gRPC client retries)
// or app (the caller's code retries), attempts > 1 — or nil when no route of
// k is retried. Which route a caller uses is not declared, so the worst one
// stands for the hop.
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

// paths returns every call path from a root (a service no other service
// depends on) to a service that calls nothing further, never visiting a
// service twice, at most maxPaths of them. Services reachable only through
// a cycle are not walked: the cycle is reported by its own rule.
func (m *mesh) paths() [][]string {
	called := map[string]bool{}
	for _, k := range m.sortedKeys() {
		for _, d := range m.deps(k) {
			called[d] = true
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
				continue
			}
			extended = true
			walk(append(slices.Clone(path), d))
		}
		if !extended && len(path) > 1 {
			out = append(out, path)
		}
	}
	for _, k := range m.sortedKeys() {
		if !called[k] {
			walk([]string{k})
		}
	}
	return out
}

// amplification reports call paths on which more than one hop may retry.
// Each hop's retries multiply the calls the next retrying hop sees, so one
// failure at the last of them costs the product of their attempts. A path is
// reported once, cut after its last retrying hop; paths from different
// roots are different findings.
func amplification(m *mesh) []Finding {
	seen := map[string]bool{}
	var out []Finding
	for _, path := range m.paths() {
		var hops []int // indexes into path of the callees whose calls are retried
		for i := 1; i < len(path); i++ {
			if m.retrier(path[i]) != nil {
				hops = append(hops, i)
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
		product := 1
		var retrying []string
		for _, i := range hops {
			r := m.retrier(path[i])
			product *= r.Spec.Retry.Attempts
			retrying = append(retrying, fmt.Sprintf("%s (%d attempts, authority %s)", routeID(r), r.Spec.Retry.Attempts, r.Spec.Retry.Authority))
		}
		r := m.retrier(path[last])
		out = append(out, Finding{
			Rule: RuleRetryAmplification, Severity: SeverityError,
			Pos: routePos(r, "spec.retry.attempts"), Path: names(prefix...),
			Message: fmt.Sprintf("%d hops may retry on this path: %s; one failure at %s can cost up to %d calls",
				len(hops), strings.Join(retrying, ", "), names(path[last]), product),
			Fix: "keep one retry authority per path: set retry.authority: none (or attempts: 1) on all these routes but one, usually all but the one nearest the root",
		})
	}
	return out
}
