package lint

import (
	"fmt"

	"github.com/hopguard/hopguard/api/v1alpha1"
)

// sideEffectRetries reports side-effecting routes that may be retried
// (attempts > 1, authority mesh or app) while the first attempt need not
// carry an idempotency key (idempotency.require is not always). A retry
// after a lost response then carries a key the filter has never seen, so it
// cannot be told from a new request and the side effect runs twice.
//
// require: never with retries is refused by validation, so only require:
// retries reaches lint. It is a warning, not an error: it is safe when every
// caller sends a key on its first attempt too, which lint cannot know.
// authority: app with attempts: 1 is not reported: the policy declares no
// retries, and the filter refuses the app retries it can recognise.
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
				Message: fmt.Sprintf("%s has side effects and %d attempts (authority %s) but idempotency.require is %s: a retry of a first attempt sent without a key cannot be recognised, so the side effect can run twice",
					routeID(r), s.Retry.Attempts, s.Retry.Authority, s.Idempotency.Require),
				Fix: "set idempotency.require: always, or retry.authority: none (or attempts: 1), or sideEffects: false if the route is in fact safe to repeat",
			})
		}
	}
	return out
}
