package xds

import (
	"fmt"
	"testing"
	"time"

	"github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/controlplane/translate"
)

// benchMesh builds n gRPC services with routes routes each, service i
// calling the next deps; deadline is the default deadline of service 0's
// routes and extProcTimeout the mesh-wide ext_proc timeout.
func benchMesh(b *testing.B, n, routes, deps int, deadline, extProcTimeout time.Duration) *ir.Mesh {
	b.Helper()
	cfg := &v1alpha1.Config{Mesh: &v1alpha1.MeshConfig{
		TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindMeshConfig},
		Metadata: v1alpha1.ObjectMeta{Name: "default"},
		Spec:     v1alpha1.MeshConfigSpec{ExtProc: v1alpha1.ExtProc{Timeout: v1alpha1.Duration(extProcTimeout)}},
	}}
	name := func(i int) string { return fmt.Sprintf("svc-%04d", i%n) }
	for i := range n {
		s := &v1alpha1.Service{
			TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindService},
			Metadata: v1alpha1.ObjectMeta{Name: name(i), Namespace: "bench"},
			Spec: v1alpha1.ServiceSpec{Protocol: v1alpha1.ProtocolGRPC, Port: 8080, Endpoints: []v1alpha1.Endpoint{
				{Address: fmt.Sprintf("10.%d.%d.1:8080", i/250, i%250)},
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
				},
			}
			if i == 0 {
				rb.Spec.Deadline.Default = v1alpha1.Duration(deadline)
			}
			cfg.RouteBudgets = append(cfg.RouteBudgets, rb)
		}
	}
	v1alpha1.SetDefaults(cfg)
	m, err := ir.Build(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkUpdate compares one update of 300 services × 10 routes, one
// Envoy node each, when the change touches one service's routes (it and
// the 3 services calling it are rendered again) and when it touches every
// node (the mesh-wide ext_proc timeout). Run both in one go and compare
// the ratio; absolute times depend on the machine.
func BenchmarkUpdate(b *testing.B) {
	const services = 300
	for _, bc := range []struct {
		name string
		next func(i int) *ir.Mesh
	}{
		{"one-service", func(i int) *ir.Mesh {
			return benchMesh(b, services, 10, 3, time.Second+time.Duration(i%2+1)*time.Millisecond, 200*time.Millisecond)
		}},
		{"mesh-wide", func(i int) *ir.Mesh {
			return benchMesh(b, services, 10, 3, time.Second, 200*time.Millisecond+time.Duration(i%2+1)*time.Millisecond)
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := New(Options{})
			defer s.Close()
			now := time.Now()
			for i := range services {
				svc := fmt.Sprintf("svc-%04d", i)
				n := newNode(identity{id: svc + "-1", key: renderKey{service: svc, flavor: translate.Envoy}}, now)
				n.key, n.streams = renderKey{service: svc, flavor: translate.Envoy}, 1
				s.nodes[n.status.ID] = n
			}
			if err := s.Update(benchMesh(b, services, 10, 3, time.Second, 200*time.Millisecond)); err != nil {
				b.Fatal(err)
			}
			// Build the meshes outside the timed loop.
			meshes := []*ir.Mesh{bc.next(0), bc.next(1)}
			b.ResetTimer()
			i := 0
			for b.Loop() {
				if err := s.Update(meshes[i%2]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
