package engine

import (
	"cmp"
	"slices"
	"strings"
)

// matcher finds the route of a request by method and path: exact paths
// first, then the longest prefix; a route listing methods matches only those.
// It is immutable once built, so readers share it without locks.
type matcher struct {
	exact    map[string][]*Route
	prefixes []*Route
}

// newMatcher indexes routes (their Policy.Match).
func newMatcher(routes []*Route) *matcher {
	m := &matcher{exact: make(map[string][]*Route, len(routes))}
	for _, r := range routes {
		path, isPrefix := r.Policy.Match.HTTPPath()
		if isPrefix {
			r.prefix = path
			m.prefixes = append(m.prefixes, r)
			continue
		}
		m.exact[path] = append(m.exact[path], r)
	}
	// Among candidates for the same request, routes naming methods are more
	// specific than routes taking any method; ties break by ID so matching
	// is deterministic.
	anyMethod := func(r *Route) bool { return len(r.Policy.Match.Methods) == 0 }
	specific := func(a, b *Route) int {
		if c := cmp.Compare(b2i(anyMethod(a)), b2i(anyMethod(b))); c != 0 {
			return c
		}
		return cmp.Compare(a.Policy.ID, b.Policy.ID)
	}
	for _, rs := range m.exact {
		slices.SortFunc(rs, specific)
	}
	slices.SortFunc(m.prefixes, func(a, b *Route) int {
		if c := cmp.Compare(len(b.prefix), len(a.prefix)); c != 0 {
			return c
		}
		return specific(a, b)
	})
	return m
}

// match returns the most specific route selecting method and path, or nil.
func (m *matcher) match(method, path string) *Route {
	for _, r := range m.exact[path] {
		if methodMatches(r, method) {
			return r
		}
	}
	for _, r := range m.prefixes {
		if strings.HasPrefix(path, r.prefix) && methodMatches(r, method) {
			return r
		}
	}
	return nil
}

func methodMatches(r *Route, method string) bool {
	ms := r.Policy.Match.Methods
	if len(ms) == 0 {
		return true
	}
	for _, m := range ms {
		if strings.EqualFold(m, method) {
			return true
		}
	}
	return false
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
