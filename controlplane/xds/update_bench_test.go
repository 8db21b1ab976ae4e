package xds

import (
	"testing"
	"time"

	"github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/controlplane/translate"
	"github.com/hopguard/hopguard/internal/testutil/meshgen"
)

// benchMesh builds n gRPC services with routes routes each, service i
// calling the next deps (meshgen); deadline is the default deadline of
// service 0's routes and extProcTimeout the mesh-wide ext_proc timeout.
func benchMesh(b *testing.B, n, routes, deps int, deadline, extProcTimeout time.Duration) *ir.Mesh {
	b.Helper()
	cfg := meshgen.Config(n, routes, deps)
	cfg.Mesh = &v1alpha1.MeshConfig{
		TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindMeshConfig},
		Metadata: v1alpha1.ObjectMeta{Name: "default"},
		Spec:     v1alpha1.MeshConfigSpec{ExtProc: v1alpha1.ExtProc{Timeout: v1alpha1.Duration(extProcTimeout)}},
	}
	for _, rb := range cfg.RouteBudgets {
		if rb.Spec.Service == meshgen.ServiceName(0) {
			rb.Spec.Deadline.Default = v1alpha1.Duration(deadline)
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
				svc := meshgen.ServiceName(i)
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
