package lint

import (
	"slices"
	"strings"
)

// cycles reports each dependsOn cycle once, as a path starting and ending at
// its smallest service key, positioned at that service's dependsOn. Along a
// cycle no hop is the edge: retries and deadlines cannot be budgeted, and a
// retry can come back to the service that sent it.
//
// The walk that lists cycles is bounded; every group of services that call
// each other in a cycle (a strongly connected component) is reported all
// the same, by its shortest cycle through its smallest service, when the
// walk did not reach it.
func cycles(m *mesh) []Finding {
	seen := map[string]bool{}
	var out []Finding
	report := func(cycle []string) {
		id := strings.Join(cycle, ",")
		if seen[id] {
			return
		}
		seen[id] = true
		s := m.services[cycle[0]]
		out = append(out, Finding{
			Rule: RuleDependencyCycle, Severity: SeverityError,
			Pos: s.Positions.Lookup("spec.dependsOn", s.Pos), Path: names(cycle...),
			Message: "services call each other in a cycle: no hop is the edge, so retries and deadlines cannot be budgeted along it",
			Fix:     "break the cycle, or remove the dependsOn entry that is not a real call",
		})
	}

	steps := 0
	var walk func(path []string)
	walk = func(path []string) {
		if steps++; steps > maxSteps {
			return
		}
		for _, d := range m.deps(path[len(path)-1]) {
			switch {
			case d == path[0]:
				report(append(slices.Clone(path), d))
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
	// Components the bounded walk did not reach.
	reported := map[string]bool{}
	for id := range seen {
		reported[id[:strings.IndexByte(id, ',')]] = true
	}
	members := m.cycleMembers()
	for _, k := range m.sortedKeys() {
		if members[k] == k && !reported[k] {
			// k is its component's smallest service, and no cycle
			// starting there was listed.
			report(m.shortestCycle(k, members))
		}
	}
	return out
}

// cycleMembers maps every service that lies on a dependsOn cycle (a
// strongly connected component of two or more services, or one that
// depends on itself) to its component's smallest key; services on no
// cycle are absent. Tarjan's algorithm, linear in the graph's size.
func (m *mesh) cycleMembers() map[string]string {
	index := map[string]int{}
	low := map[string]int{}
	onStack := map[string]bool{}
	var stack []string
	out := map[string]string{}
	next := 0
	var visit func(k string)
	visit = func(k string) {
		index[k], low[k] = next, next
		next++
		stack = append(stack, k)
		onStack[k] = true
		selfLoop := false
		for _, d := range m.deps(k) {
			if d == k {
				selfLoop = true
			}
			if _, seen := index[d]; !seen {
				visit(d)
				low[k] = min(low[k], low[d])
			} else if onStack[d] {
				low[k] = min(low[k], index[d])
			}
		}
		if low[k] != index[k] {
			return
		}
		var comp []string
		for {
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			onStack[top] = false
			comp = append(comp, top)
			if top == k {
				break
			}
		}
		if len(comp) > 1 || selfLoop {
			smallest := slices.Min(comp)
			for _, c := range comp {
				out[c] = smallest
			}
		}
	}
	for _, k := range m.sortedKeys() {
		if _, seen := index[k]; !seen {
			visit(k)
		}
	}
	return out
}

// shortestCycle returns the shortest cycle from start back to itself
// through services of its component (members as from cycleMembers),
// breadth first, dependencies in key order.
func (m *mesh) shortestCycle(start string, members map[string]string) []string {
	comp := members[start]
	prev := map[string]string{}
	queue := []string{start}
	visited := map[string]bool{start: true}
	for len(queue) > 0 {
		k := queue[0]
		queue = queue[1:]
		for _, d := range m.deps(k) {
			if members[d] != comp {
				continue
			}
			if d == start {
				path := []string{start}
				for at := k; at != start; at = prev[at] {
					path = append(path, at)
				}
				slices.Reverse(path[1:])
				return append(path, start)
			}
			if !visited[d] {
				visited[d] = true
				prev[d] = k
				queue = append(queue, d)
			}
		}
	}
	return []string{start, start} // unreachable for a component member
}
