package cpscale

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/controlplane/ir"
)

// serviceName is the name of generated service i.
func serviceName(i int) string { return fmt.Sprintf("svc-%04d", i) }

// routeDeadline is the default deadline of generated route budgets; the
// one-service change gives service 0's routes oneServiceDeadline instead.
const (
	routeDeadline      = 500 * time.Millisecond
	oneServiceDeadline = 600 * time.Millisecond
)

// writeMesh writes a generated mesh into dir: n services with routes route
// budgets each, every service calling the next deps services, one file per
// service, and a MeshConfig whose ext_proc timeout is extProcTimeout (the
// knob the scenario turns to change every node's configuration).
func writeMesh(dir string, n, routes, deps int, extProcTimeout time.Duration) error {
	for i := range n {
		if err := writeService(dir, i, n, routes, deps, routeDeadline); err != nil {
			return err
		}
	}
	return writeMeshConfig(dir, extProcTimeout)
}

// writeService (re)writes generated service i's file, its route budgets
// with the given default deadline.
func writeService(dir string, i, n, routes, deps int, deadline time.Duration) error {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: hopguard.dev/v1alpha1
kind: Service
metadata: {name: %s, namespace: bench}
spec:
  port: 8080
  endpoints:
    - {address: "10.%d.%d.1:8080", locality: {region: eu, zone: a}}
    - {address: "10.%d.%d.2:8080", locality: {region: eu, zone: b}}
  dependsOn: [`, serviceName(i), i/250, i%250, i/250, i%250)
	for d := 1; d <= deps; d++ {
		if d > 1 {
			b.WriteString(", ")
		}
		b.WriteString(serviceName((i + d) % n))
	}
	b.WriteString("]\n")
	for j := range routes {
		authority := []string{"mesh", "app", "none"}[j%3]
		fmt.Fprintf(&b, `---
apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: %s-m%d, namespace: bench}
spec:
  service: %s
  match: {grpcMethod: bench.S%d/M%d}
  deadline: {default: %s, max: 2s}
  retry: {authority: %s, attempts: %d, perTryTimeout: 200ms, on: [unavailable, "503"]}
  sideEffects: false
`, serviceName(i), j, serviceName(i), i, j, deadline, authority, 1+j%3)
	}
	if err := os.WriteFile(filepath.Join(dir, serviceName(i)+".yaml"), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("cpscale: %w", err)
	}
	return nil
}

// writeMeshConfig (re)writes the mesh-wide settings.
func writeMeshConfig(dir string, extProcTimeout time.Duration) error {
	mc := fmt.Sprintf(`apiVersion: hopguard.dev/v1alpha1
kind: MeshConfig
metadata: {name: default}
spec:
  environment: bench
  extProc: {address: 127.0.0.1:18001, timeout: %s}
`, extProcTimeout)
	if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(mc), 0o644); err != nil {
		return fmt.Errorf("cpscale: %w", err)
	}
	return nil
}

// compile reads, validates and compiles dir as the control plane does.
func compile(dir string) (*ir.Mesh, error) {
	cfg, vs, err := v1alpha1.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("cpscale: %w", err)
	}
	if errs := vs.Errors(); len(errs) > 0 {
		return nil, fmt.Errorf("cpscale: %d violations: %w", len(errs), errs)
	}
	m, err := ir.Build(cfg)
	if err != nil {
		return nil, fmt.Errorf("cpscale: %w", err)
	}
	return m, nil
}
