// Package meshgen generates large meshes for benchmarks and scale tests.
package meshgen

import (
	"fmt"

	"github.com/hopguard/hopguard/api/v1alpha1"
)

// ServiceName is the name of generated service i.
func ServiceName(i int) string { return fmt.Sprintf("svc-%04d", i) }

// Config returns n gRPC services (two endpoints each, in two zones) with
// routes route budgets each, service i calling the next deps services
// (wrapping around). Retry attempts cycle through 1, 2, 3 and every third
// route has authority app. It is not defaulted: adjust it, then call
// v1alpha1.SetDefaults.
func Config(n, routes, deps int) *v1alpha1.Config {
	cfg := &v1alpha1.Config{}
	for i := range n {
		s := &v1alpha1.Service{
			TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindService},
			Metadata: v1alpha1.ObjectMeta{Name: ServiceName(i), Namespace: "bench"},
			Spec: v1alpha1.ServiceSpec{Protocol: v1alpha1.ProtocolGRPC, Port: 8080, Endpoints: []v1alpha1.Endpoint{
				{Address: fmt.Sprintf("10.%d.%d.1:8080", i/250, i%250), Locality: v1alpha1.Locality{Region: "eu", Zone: "a"}},
				{Address: fmt.Sprintf("10.%d.%d.2:8080", i/250, i%250), Locality: v1alpha1.Locality{Region: "eu", Zone: "b"}},
			}},
		}
		for d := 1; d <= deps; d++ {
			s.Spec.DependsOn = append(s.Spec.DependsOn, ServiceName((i+d)%n))
		}
		cfg.Services = append(cfg.Services, s)
		for j := range routes {
			rb := &v1alpha1.RouteBudget{
				TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindRouteBudget},
				Metadata: v1alpha1.ObjectMeta{Name: fmt.Sprintf("%s-m%d", ServiceName(i), j), Namespace: "bench"},
				Spec: v1alpha1.RouteBudgetSpec{
					Service: ServiceName(i),
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
	return cfg
}
