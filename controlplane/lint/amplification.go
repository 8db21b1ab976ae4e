package lint

import (
	"fmt"
	"math"
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
// reported once per root and sequence of retrying routes, cut after its
// last retrying hop; paths from different roots are different findings.
//
// Every root's worst path (the largest product) is found exactly, however
// dense the graph (worstPaths); the bounded walk of every path adds the
// other sequences it reaches.
func amplification(m *mesh) []Finding {
	seen := map[string]bool{}
	var out []Finding
	report := func(path []string) {
		var hops []int // indexes into path of the callees whose calls are retried
		for i := 1; i < len(path); i++ {
			if m.retrier(path[i]) != nil {
				hops = append(hops, i)
			}
		}
		if len(hops) < 2 {
			return
		}
		last := hops[len(hops)-1]
		prefix := path[:last+1]
		product := 1
		var retrying, ids []string
		for _, i := range hops {
			r := m.retrier(path[i])
			product = satMul(product, r.Spec.Retry.Attempts)
			retrying = append(retrying, fmt.Sprintf("%s (%d attempts, authority %s)", routeID(r), r.Spec.Retry.Attempts, r.Spec.Retry.Authority))
			ids = append(ids, routeID(r))
		}
		// The same retrying routes reached from one root through other
		// services that do not retry are one problem, not one per path.
		id := path[0] + "|" + strings.Join(ids, ",")
		if seen[id] {
			return
		}
		seen[id] = true
		cost := fmt.Sprintf("up to %d calls", product)
		if product == math.MaxInt {
			cost = "more calls than can be counted"
		}
		r := m.retrier(path[last])
		out = append(out, Finding{
			Rule: RuleRetryAmplification, Severity: SeverityError,
			Pos: routePos(r, "spec.retry.attempts"), Path: names(prefix...),
			Message: fmt.Sprintf("%d hops may retry on this path: %s; one failure at %s can cost %s",
				len(hops), strings.Join(retrying, ", "), names(path[last]), cost),
			Fix: "keep one retry authority per path: set retry.authority: none (or attempts: 1) on all these routes but one, usually all but the one nearest the root",
		})
	}
	for _, path := range m.worstPaths() {
		report(path)
	}
	for _, path := range m.paths() {
		report(path)
	}
	return out
}

// satMul multiplies attempts, saturating at math.MaxInt.
func satMul(a, b int) int {
	if a > 0 && b > 0 && a > math.MaxInt/b {
		return math.MaxInt
	}
	return a * b
}

// worstPaths returns, for every root (a service no other service depends
// on), its call path with at least two retrying hops whose attempts
// multiply the most, cut after its last retrying hop; roots without one
// are left out. It is a walk of the graph without the calls that stay
// inside a cycle (the cycle rule reports those), memoized per service, so
// it is linear in the graph's size where listing every path is not.
func (m *mesh) worstPaths() [][]string {
	inCycle := m.cycleMembers()
	// best[k][n] is the best chain starting at k (k's own retrier
	// counted) with at least n retrying hops, n = 1 or 2.
	type chain struct {
		product int
		next    string // "" ends the chain at k
		nextN   int    // the n of next's chain it continues with
		ok      bool
	}
	best := map[string]*[3]chain{}
	var solve func(k string) *[3]chain
	solve = func(k string) *[3]chain {
		if b, done := best[k]; done {
			return b
		}
		b := &[3]chain{}
		best[k] = b // a service is solved once (no cycle edges are followed)
		attempts := 0
		if r := m.retrier(k); r != nil {
			attempts = r.Spec.Retry.Attempts
			b[1] = chain{product: attempts, ok: true} // the chain may end at k
		}
		for _, d := range m.deps(k) {
			if inCycle[k] != "" && inCycle[k] == inCycle[d] {
				continue
			}
			db := solve(d)
			for n := 1; n <= 2; n++ {
				// With k retrying, its n-chain continues a (n-1)-chain of d
				// (n-1 = 0 is covered by ending at k).
				if attempts > 0 {
					if n == 2 && db[1].ok {
						if p := satMul(attempts, db[1].product); !b[2].ok || p > b[2].product {
							b[2] = chain{product: p, next: d, nextN: 1, ok: true}
						}
					}
					if n == 1 && db[1].ok {
						if p := satMul(attempts, db[1].product); p > b[1].product {
							b[1] = chain{product: p, next: d, nextN: 1, ok: true}
						}
					}
					continue
				}
				if db[n].ok && (!b[n].ok || db[n].product > b[n].product) {
					b[n] = chain{product: db[n].product, next: d, nextN: n, ok: true}
				}
			}
		}
		return b
	}
	called := map[string]bool{}
	for _, k := range m.sortedKeys() {
		for _, d := range m.deps(k) {
			called[d] = true
		}
	}
	var out [][]string
	for _, root := range m.sortedKeys() {
		if called[root] {
			continue
		}
		// The root's own retrier does not count: its callers are outside
		// the mesh. Pick the dependency with the best 2-chain.
		var first string
		var top chain
		for _, d := range m.deps(root) {
			if c := solve(d)[2]; c.ok && (!top.ok || c.product > top.product) {
				first, top = d, c
			}
		}
		if !top.ok {
			continue
		}
		path := []string{root, first}
		for k, n := first, 2; ; {
			c := best[k][n]
			if c.next == "" {
				break
			}
			path = append(path, c.next)
			k, n = c.next, c.nextN
		}
		out = append(out, path)
	}
	return out
}
