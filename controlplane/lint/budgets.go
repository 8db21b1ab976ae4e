package lint

import (
	"fmt"
	"strings"

	"github.com/hopguard/hopguard/api/v1alpha1"
)

// budget is a route's retry budget: retries ≤ ratio × requests, plus
// minPerSecond retries per second.
type budget struct {
	ratio        float64
	minPerSecond int
}

func budgetOf(r *v1alpha1.RouteBudget) budget {
	var b budget
	if r.Spec.Retry.Budget.Ratio != nil {
		b.ratio = *r.Spec.Retry.Budget.Ratio
	}
	if r.Spec.Retry.Budget.MinPerSecond != nil {
		b.minPerSecond = *r.Spec.Retry.Budget.MinPerSecond
	}
	return b
}

// conflictingBudgets reports services whose routes declare different retry
// budgets. All routes of a service share its one outbound cluster, whose
// circuit breaker carries a single retry budget: the translator gives it the
// largest ratio and the largest minPerSecond among the routes (see
// controlplane/translate retryBudget), so the data plane lets every route
// retry as much as the most generous one, and only the ext_proc filter
// holds the others to their own budget.
func conflictingBudgets(m *mesh) []Finding {
	var out []Finding
	for _, k := range m.sortedKeys() {
		rs := m.routes[k]
		if len(rs) < 2 {
			continue
		}
		first := budgetOf(rs[0])
		var top budget
		differ := false
		ids := make([]string, 0, len(rs))
		for _, r := range rs {
			b := budgetOf(r)
			differ = differ || b != first
			top.ratio, top.minPerSecond = max(top.ratio, b.ratio), max(top.minPerSecond, b.minPerSecond)
			ids = append(ids, fmt.Sprintf("%s (ratio %g, %d/s)", routeID(r), b.ratio, b.minPerSecond))
		}
		if !differ {
			continue
		}
		s := m.services[k]
		out = append(out, Finding{
			Rule: RuleConflictingBudgets, Severity: SeverityWarning,
			Pos: s.Positions.Lookup("metadata.name", s.Pos), Path: names(k),
			Message: fmt.Sprintf("routes of one cluster declare different retry budgets: %s; the cluster's circuit breaker takes the largest (ratio %g, %d/s), so only the ext_proc filter enforces the smaller ones",
				strings.Join(ids, ", "), top.ratio, top.minPerSecond),
			Fix: "give all routes of the service the same retry.budget",
		})
	}
	return out
}
