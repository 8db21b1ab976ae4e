package controlplane

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hopguard/hopguard/controlplane/translate"
	"github.com/hopguard/hopguard/controlplane/xds"
)

// writeGeneratedMesh writes n services with routes route budgets each (every
// service calling the next deps services) as one YAML file per service.
func writeGeneratedMesh(tb testing.TB, dir string, n, routes, deps int) {
	tb.Helper()
	name := func(i int) string { return fmt.Sprintf("svc-%04d", i%n) }
	for i := range n {
		var b strings.Builder
		fmt.Fprintf(&b, `apiVersion: hopguard.dev/v1alpha1
kind: Service
metadata: {name: %s, namespace: bench}
spec:
  port: 8080
  endpoints:
    - {address: "10.%d.%d.1:8080", locality: {region: eu, zone: a}}
    - {address: "10.%d.%d.2:8080", locality: {region: eu, zone: b}}
  dependsOn: [`, name(i), i/250, i%250, i/250, i%250)
		for d := 1; d <= deps; d++ {
			if d > 1 {
				b.WriteString(", ")
			}
			b.WriteString(name(i + d))
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
  deadline: {default: 500ms, max: 2s}
  retry: {authority: %s, attempts: %d, perTryTimeout: 200ms, on: [unavailable, "503"]}
  sideEffects: false
`, name(i), j, name(i), i, j, authority, 1+j%3)
		}
		if err := os.WriteFile(filepath.Join(dir, name(i)+".yaml"), []byte(b.String()), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkCompileAndServe1000x10 is what a control plane does on a full
// config change of a 1,000-service mesh with 10 routes per service: read and
// validate every file, compile the IR, render every service for both data
// plane flavors and hash each snapshot into its version.
func BenchmarkCompileAndServe1000x10(b *testing.B) {
	dir := b.TempDir()
	writeGeneratedMesh(b, dir, 1000, 10, 3)
	b.ReportAllocs()
	for b.Loop() {
		l, err := loadDir(dir)
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range l.mesh.Services {
			for _, f := range []translate.Flavor{translate.Envoy, translate.Proxyless} {
				res, err := translate.Translate(l.mesh, s.Name, f, translate.Options{})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := xds.Version(res); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}

// TestGeneratedMeshIsValid keeps the benchmark's input honest.
func TestGeneratedMeshIsValid(t *testing.T) {
	dir := t.TempDir()
	writeGeneratedMesh(t, dir, 12, 10, 3)
	l, err := loadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(l.mesh.Services); got != 12 {
		t.Fatalf("services = %d, want 12", got)
	}
	for _, s := range l.mesh.Services {
		if len(s.Routes) != 10 || len(s.DependsOn) != 3 {
			t.Fatalf("%s: %d routes, %d dependencies; want 10 and 3", s.Name, len(s.Routes), len(s.DependsOn))
		}
	}
}
