package meshgen

import (
	"testing"

	"github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/controlplane/ir"
)

func TestConfigValidatesAndBuilds(t *testing.T) {
	cfg := Config(12, 4, 3)
	v1alpha1.SetDefaults(cfg)
	if errs := v1alpha1.Validate(cfg).Errors(); len(errs) > 0 {
		t.Fatalf("generated config invalid: %v", errs)
	}
	m, err := ir.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Services) != 12 {
		t.Fatalf("%d services, want 12", len(m.Services))
	}
	last := m.Service(ServiceName(11))
	if last == nil || len(last.Routes) != 4 || len(last.DependsOn) != 3 || last.DependsOn[0] != ServiceName(0) {
		t.Errorf("service 11: %+v, want 4 routes and dependencies wrapping to svc-0000", last)
	}
}
