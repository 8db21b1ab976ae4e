package translate

import (
	"fmt"
	"testing"

	"github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/controlplane/ir"
)

// generatedConfig is a defaulted mesh of n gRPC services with routes routes
// each, service i depending on the next deps services.
func generatedConfig(n, routes, deps int) *v1alpha1.Config {
	cfg := &v1alpha1.Config{}
	name := func(i int) string { return fmt.Sprintf("svc-%04d", i%n) }
	for i := range n {
		s := &v1alpha1.Service{
			TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindService},
			Metadata: v1alpha1.ObjectMeta{Name: name(i), Namespace: "bench"},
			Spec: v1alpha1.ServiceSpec{Protocol: v1alpha1.ProtocolGRPC, Port: 8080, Endpoints: []v1alpha1.Endpoint{
				{Address: fmt.Sprintf("10.%d.%d.1:8080", i/250, i%250), Locality: v1alpha1.Locality{Region: "eu", Zone: "a"}},
				{Address: fmt.Sprintf("10.%d.%d.2:8080", i/250, i%250), Locality: v1alpha1.Locality{Region: "eu", Zone: "b"}},
			}},
		}
		for d := 1; d <= deps; d++ {
			s.Spec.DependsOn = append(s.Spec.DependsOn, name(i+d))
		}
		cfg.Services = append(cfg.Services, s)
		for j := range routes {
			rb := &v1alpha1.RouteBudget{
				TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindRouteBudget},
				Metadata: v1alpha1.ObjectMeta{Name: fmt.Sprintf("%s-m%d", name(i), j), Namespace: "bench"},
				Spec: v1alpha1.RouteBudgetSpec{
					Service: name(i),
					Match:   v1alpha1.Match{GRPCMethod: fmt.Sprintf("bench.S%d/M%d", i, j)},
					Retry:   v1alpha1.Retry{Attempts: 1 + j%3, On: []string{"unavailable", "503"}},
				},
			}
			if j%3 == 1 {
				rb.Spec.Retry.Authority = v1alpha1.AuthorityApp
			}
			cfg.RouteBudgets = append(cfg.RouteBudgets, rb)
		}
	}
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
