package xds

import (
	"maps"

	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/controlplane/translate"
)

// renderInputs is everything a renderKey's snapshot is computed from: what
// translate.Translate reads of the mesh (see translate.Inputs) and the
// quarantine applied on top. Two renderings of a key from equal inputs are
// equal, so an update reuses the one in force instead of rendering again.
type renderInputs struct {
	// ok is false when the inputs could not be determined (a dependency
	// that does not exist): such a key is always rendered, and fails there.
	ok      bool
	extProc ir.ExtProc
	self    *ir.Service
	deps    []*ir.Service
	// quarantine is the quarantine applied (nil: none, or drift.action is
	// not quarantine). Only its drained endpoints (service and address)
	// reach the resources, so states are compared by those (a new state is
	// stored on every evaluation, most of them draining the same endpoints).
	quarantine *quarantineState
}

// inputsOf returns k's inputs in m, with the quarantine in force now.
func (s *Server) inputsOf(m *ir.Mesh, k renderKey) renderInputs {
	in := renderInputs{extProc: m.ExtProc}
	if q := s.quarantine.Load(); q != nil && m.Drift.Quarantine {
		in.quarantine = q
	}
	self, deps, err := translate.Inputs(m, k.service)
	if err == nil {
		in.ok, in.self, in.deps = true, self, deps
	}
	return in
}

// equal reports whether a and b are the same inputs. Services are compared
// by value (every update brings a newly built mesh) with ir.Service.Equal.
func (a *renderInputs) equal(b *renderInputs) bool {
	if !a.ok || !b.ok || a.extProc != b.extProc || !maps.Equal(a.quarantine.drainedSet(), b.quarantine.drainedSet()) ||
		len(a.deps) != len(b.deps) || !a.self.Equal(b.self) {
		return false
	}
	for i := range a.deps {
		if !a.deps[i].Equal(b.deps[i]) {
			return false
		}
	}
	return true
}

// drainedSet returns the endpoints q drains, by service (none for a nil q).
func (q *quarantineState) drainedSet() map[drainKey]bool {
	if q == nil {
		return nil
	}
	return q.drained
}
