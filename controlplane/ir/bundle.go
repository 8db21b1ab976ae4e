package ir

import (
	"slices"
	"strings"

	"github.com/hopguard/hopguard/policy"
)

// Bundle returns the compiled route policies of every service, sorted by
// route ID, with the mesh-wide filter settings: what the filters enforce.
// The result shares no memory with m.
func (m *Mesh) Bundle() *policy.Bundle {
	b := &policy.Bundle{Mesh: m.Policy}
	for _, s := range m.Services {
		for _, r := range s.Routes {
			p := r.Policy
			p.Match.Methods = slices.Clone(p.Match.Methods)
			p.Retry.On = slices.Clone(p.Retry.On)
			b.Routes = append(b.Routes, p)
		}
	}
	slices.SortFunc(b.Routes, func(a, b policy.Route) int { return strings.Compare(a.ID, b.ID) })
	return b
}
