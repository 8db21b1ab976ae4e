package lint

import (
	"fmt"

	"github.com/hopguard/hopguard/api/v1alpha1"
)

// longestDeadline returns the largest deadline.max among the routes of
// service k and the route declaring it, or (0, nil) when k has no routes.
// Which of a caller's requests leads to a given call is not declared, so the
// longest budget the caller can ever hold bounds what any of its calls can
// have left.
func (m *mesh) longestDeadline(k string) (v1alpha1.Duration, *v1alpha1.RouteBudget) {
	var top *v1alpha1.RouteBudget
	for _, r := range m.routes[k] {
		if top == nil || r.Spec.Deadline.Max > top.Spec.Deadline.Max {
			top = r
		}
	}
	if top == nil {
		return 0, nil
	}
	return top.Spec.Deadline.Max, top
}

// inversions reports deadlines that disagree across a call. For a caller C
// whose routes allow at most M (the largest deadline.max of C's routes) and
// a route R of a service C depends on, every call from C reaches R with less
// than M left. Then, per (C, R):
//
//   - M ≤ R.deadline.minRemaining (error): R refuses every call from C as
//     deadline-exhausted.
//   - otherwise R.deadline.default > M (error): a call from C that carries no
//     deadline gets R's default, so R works on after C gave up.
//   - R retries (authority mesh or app, attempts > 1) with an explicit
//     retry.minRemaining ≥ M (warning): no retry of a call from C is ever
//     admitted.
//
// And per R, against all of R's callers when each declares routes:
//
//   - R.deadline.max > the largest M of its callers, while R.deadline.default
//     fits (warning): R's max can never be used; the callee's budget promises
//     more than any caller can give.
func inversions(m *mesh) []Finding {
	var out []Finding
	callers := map[string][]string{} // callee → callers, sorted
	for _, caller := range m.sortedKeys() {
		for _, callee := range m.deps(caller) {
			callers[callee] = append(callers[callee], caller)
		}
		callerMax, _ := m.longestDeadline(caller)
		if callerMax == 0 {
			continue // the caller declares no budget: nothing to compare
		}
		for _, callee := range m.deps(caller) {
			for _, r := range m.routes[callee] {
				out = append(out, inversionsOfCall(caller, callee, callerMax, r)...)
			}
		}
	}
	for _, callee := range m.sortedKeys() {
		if len(callers[callee]) == 0 {
			continue
		}
		var top v1alpha1.Duration
		var topCaller string
		known := true
		for _, c := range callers[callee] {
			d, _ := m.longestDeadline(c)
			known = known && d > 0
			if d > top {
				top, topCaller = d, c
			}
		}
		if !known {
			continue // a caller without budgets might give any deadline
		}
		for _, r := range m.routes[callee] {
			dl := r.Spec.Deadline
			if dl.Max <= top || dl.Default > top {
				continue
			}
			out = append(out, Finding{
				Rule: RuleTimeoutInversion, Severity: SeverityWarning,
				Pos: routePos(r, "spec.deadline.max"), Path: names(topCaller, callee),
				Message: fmt.Sprintf("%s allows deadlines up to %v, but no caller can have more than %v left (%s's longest deadline.max): the rest of the budget can never be used",
					routeID(r), dl.Max, top, names(topCaller)),
				Fix: fmt.Sprintf("lower deadline.max of %s to %v, or raise the callers' deadline.max", routeID(r), top),
			})
		}
	}
	return out
}

// inversionsOfCall checks route r of callee as called from caller, whose
// routes allow at most callerMax.
func inversionsOfCall(caller, callee string, callerMax v1alpha1.Duration, r *v1alpha1.RouteBudget) []Finding {
	var out []Finding
	dl, rt := r.Spec.Deadline, r.Spec.Retry
	path := names(caller, callee)
	switch {
	case callerMax <= dl.MinRemaining:
		out = append(out, Finding{
			Rule: RuleTimeoutInversion, Severity: SeverityError,
			Pos: routePos(r, "spec.deadline.minRemaining"), Path: path,
			Message: fmt.Sprintf("%s refuses calls with %v or less left, but %s's routes allow at most %v: every call from %s is refused as deadline-exhausted",
				routeID(r), dl.MinRemaining, names(caller), callerMax, names(caller)),
			Fix: fmt.Sprintf("lower deadline.minRemaining of %s below %v, or raise the caller's deadline.max", routeID(r), callerMax),
		})
	case dl.Default > callerMax:
		out = append(out, Finding{
			Rule: RuleTimeoutInversion, Severity: SeverityError,
			Pos: routePos(r, "spec.deadline.default"), Path: path,
			Message: fmt.Sprintf("%s waits %v by default, but %s's routes allow at most %v: a call without a deadline keeps %s working after its caller gave up",
				routeID(r), dl.Default, names(caller), callerMax, names(callee)),
			Fix: fmt.Sprintf("lower deadline.default of %s to at most %v, or raise the caller's deadline.max", routeID(r), callerMax),
		})
	}
	retried := rt.Authority != v1alpha1.AuthorityNone && rt.Attempts > 1
	if retried && !rt.MinRemaining.Auto && rt.MinRemaining.Value >= callerMax {
		out = append(out, Finding{
			Rule: RuleTimeoutInversion, Severity: SeverityWarning,
			Pos: routePos(r, "spec.retry.minRemaining"), Path: path,
			Message: fmt.Sprintf("a retry of %s needs %v left, but %s's routes allow at most %v: no retry of a call from %s is ever admitted",
				routeID(r), rt.MinRemaining.Value, names(caller), callerMax, names(caller)),
			Fix: fmt.Sprintf("lower retry.minRemaining of %s below %v (or use auto), or set attempts: 1", routeID(r), callerMax),
		})
	}
	return out
}
