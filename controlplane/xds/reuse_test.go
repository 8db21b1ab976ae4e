package xds

import (
	"slices"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/controlplane/translate"
)

// shopMesh compiles the example shop after change edits its configuration.
func shopMesh(t *testing.T, change func(*v1alpha1.Config)) *ir.Mesh {
	t.Helper()
	cfg, vs, err := v1alpha1.Load("../../examples/shop/config")
	if err != nil || len(vs.Errors()) > 0 {
		t.Fatalf("load: %v %v", err, vs.Errors())
	}
	if change != nil {
		change(cfg)
	}
	m, err := ir.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func budgetOf(t *testing.T, cfg *v1alpha1.Config, name string) *v1alpha1.RouteBudget {
	t.Helper()
	for _, rb := range cfg.RouteBudgets {
		if rb.Metadata.Name == name {
			return rb
		}
	}
	t.Fatalf("no route budget %q", name)
	return nil
}

// TestUpdate_RerendersOnlyWhatAChangeTouches: with translate as renderer,
// an update keeps the rendering of every key whose inputs did not change
// (the same snapshot, not rendered again) and renders the others; either
// way every key ends up with exactly the version a fresh render gives.
func TestUpdate_RerendersOnlyWhatAChangeTouches(t *testing.T) {
	s, addr := startServer(t, Options{})
	// startServer's default is the fixture renderer: use translate's.
	s.render, s.reuse = New(Options{}).render, true
	// Under drift.action: quarantine, whose evaluation (every second in
	// production) stores a new quarantine state each time.
	quarantine := func(c *v1alpha1.Config) { c.Mesh.Spec.Drift.Action = v1alpha1.DriftQuarantine }
	first := shopMesh(t, quarantine)
	if err := s.Update(first); err != nil {
		t.Fatal(err)
	}
	services := []string{"gateway", "orders", "payments", "ledger", "inventory", "checkout"} // checkout is undeclared
	for _, svc := range services {
		c := dial(t, addr, envoyNode(svc+"-1", svc), false)
		waitFor(t, c, resourcev3.ListenerType, "")
	}
	snaps := func() map[string]*rendering {
		s.mu.Lock()
		defer s.mu.Unlock()
		out := map[string]*rendering{}
		for k, r := range s.rendered {
			if k.flavor == translate.Envoy {
				out[k.service] = r
			}
		}
		return out
	}

	steps := []struct {
		name    string
		change  func(*v1alpha1.Config)
		touched []string // services whose nodes must be rendered again
	}{
		{"nothing changed", nil, nil},
		// ledger's route: ledger (inbound), payments (calls ledger), and the
		// undeclared checkout (calls everyone).
		{"a ledger route", func(c *v1alpha1.Config) {
			budgetOf(t, c, "post-entry").Spec.Deadline.Default = v1alpha1.Duration(750 * time.Millisecond)
		}, []string{"ledger", "payments", "checkout"}},
		{"inventory's endpoints", func(c *v1alpha1.Config) {
			for _, svc := range c.Services {
				if svc.Metadata.Name == "inventory" {
					svc.Spec.Endpoints[0].Address = "10.9.9.9:9000"
				}
			}
		}, []string{"inventory", "orders", "checkout"}},
		{"the mesh-wide ext_proc timeout", func(c *v1alpha1.Config) {
			c.Mesh.Spec.ExtProc.Timeout = v1alpha1.Duration(321 * time.Millisecond)
		}, services},
	}
	// The changes are cumulative: each step's mesh has its own change and
	// every earlier one.
	applied := []func(*v1alpha1.Config){quarantine}
	for _, st := range steps {
		for range 2 {
			if err := s.EvaluateQuarantine(); err != nil {
				t.Fatal(err)
			}
		}
		before := snaps()
		if st.change != nil {
			applied = append(applied, st.change)
		}
		m := shopMesh(t, func(c *v1alpha1.Config) {
			for _, f := range applied {
				f(c)
			}
		})
		if err := s.Update(m); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		after := snaps()
		for _, svc := range services {
			rerendered := after[svc].snap != before[svc].snap
			if want := slices.Contains(st.touched, svc); rerendered != want {
				t.Errorf("%s: %s rendered again = %v, want %v", st.name, svc, rerendered, want)
			}
			res, err := translate.Translate(m, svc, translate.Envoy, translate.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if v, _ := Version(res); after[svc].version != v {
				t.Errorf("%s: %s serves version %s, a fresh render is %s", st.name, svc, after[svc].version, v)
			}
		}
	}
}

func TestRenderInputs_Equal(t *testing.T) {
	m := shopMesh(t, nil)
	other := shopMesh(t, nil) // equal by value, other pointers
	s := New(Options{})
	a := s.inputsOf(m, renderKey{service: "payments", flavor: translate.Envoy})
	b := s.inputsOf(other, renderKey{service: "payments", flavor: translate.Envoy})
	if !a.ok || !b.ok || !a.equal(&b) {
		t.Fatalf("inputs of equal meshes: ok %v %v, equal %v", a.ok, b.ok, a.equal(&b))
	}
	// Quarantine states compare by the endpoints they drain, service and
	// address: a new state draining the same ones (stored on every
	// evaluation) is no change.
	drain := func(service string, eps ...string) renderInputs {
		in := b
		in.quarantine = &quarantineState{drained: map[drainKey]bool{}}
		for _, ep := range eps {
			in.quarantine.drained[drainKey{service: service, endpoint: ep}] = true
		}
		return in
	}
	empty, one, oneAgain := drain("ledger"), drain("ledger", "10.0.0.1:9000"), drain("ledger", "10.0.0.1:9000")
	two, otherService := drain("ledger", "10.0.0.2:9000"), drain("payments", "10.0.0.1:9000")
	if !a.equal(&empty) {
		t.Error("no quarantine and a quarantine draining nothing reported different")
	}
	if a.equal(&one) || one.equal(&two) {
		t.Error("different drained endpoints reported equal")
	}
	if one.equal(&otherService) {
		t.Error("one address drained in different services reported equal")
	}
	if !one.equal(&oneAgain) {
		t.Error("two states draining the same endpoints reported different")
	}
	// A key whose dependencies cannot be resolved is never reused.
	broken := renderInputs{}
	if broken.equal(&broken) {
		t.Error("undetermined inputs reported equal")
	}
}
