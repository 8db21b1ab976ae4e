package translate

import (
	"testing"

	"github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/internal/testutil/meshgen"
)

// generatedConfig is a defaulted mesh of n gRPC services with routes routes
// each, service i depending on the next deps services.
func generatedConfig(n, routes, deps int) *v1alpha1.Config {
	cfg := meshgen.Config(n, routes, deps)
	v1alpha1.SetDefaults(cfg)
	return cfg
}

// BenchmarkTranslate builds the IR of 1,000 services × 10 routes (each
// service calling 3 others) and translates every service for both flavors:
// one op is what a control plane does on a full config change.
func BenchmarkTranslate(b *testing.B) {
	cfg := generatedConfig(1000, 10, 3)
	b.ReportAllocs()
	for b.Loop() {
		m, err := ir.Build(cfg)
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range m.Services {
			for _, f := range []Flavor{Envoy, Proxyless} {
				if _, err := Translate(m, s.Name, f, Options{}); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}

// TestGeneratedMeshTranslates keeps the benchmark's input honest: it builds
// and every node's resources validate.
func TestGeneratedMeshTranslates(t *testing.T) {
	m, err := ir.Build(generatedConfig(20, 10, 3))
	if err != nil {
		t.Fatal(err)
	}
	res := translate(t, m, "svc-0000", Envoy)
	if got := len(res.Clusters); got != 5 { // 3 dependencies, local, ext_proc
		t.Errorf("clusters = %d, want 5", got)
	}
	res = translate(t, m, "svc-0019", Proxyless)
	if diff := names(res.Listeners); len(diff) != 3 || diff[0] != "svc-0000" {
		t.Errorf("proxyless listeners of svc-0019 = %v, want svc-0000, svc-0001, svc-0002", diff)
	}
}
