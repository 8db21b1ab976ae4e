package lint

import (
	"slices"
	"strings"
)

// cycles reports each dependsOn cycle once, as a path starting and ending at
// its smallest service key, positioned at that service's dependsOn. Along a
// cycle no hop is the edge: retries and deadlines cannot be budgeted, and a
// retry can come back to the service that sent it.
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
			switch {
			case d == path[0]:
				cycle := append(slices.Clone(path), d)
				id := strings.Join(cycle, ",")
				if seen[id] {
					continue
				}
				seen[id] = true
				s := m.services[path[0]]
				out = append(out, Finding{
					Rule: RuleDependencyCycle, Severity: SeverityError,
					Pos: s.Positions.Lookup("spec.dependsOn", s.Pos), Path: names(cycle...),
					Message: "services call each other in a cycle: no hop is the edge, so retries and deadlines cannot be budgeted along it",
					Fix:     "break the cycle, or remove the dependsOn entry that is not a real call",
				})
			case d < path[0] || slices.Contains(path, d):
				// A cycle through a smaller service is reported from
				// that service; a repeated service is a smaller cycle.
			default:
				walk(append(slices.Clone(path), d))
			}
		}
	}
	for _, k := range m.sortedKeys() {
		walk([]string{k})
	}
	return out
}
