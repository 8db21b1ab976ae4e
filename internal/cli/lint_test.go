package cli

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hopguard/hopguard/controlplane/lint"
)

// amplifyingMesh has two hops retrying on one path (an error) and unkeyed
// side-effect retries (warnings).
const amplifyingMesh = `apiVersion: hopguard.dev/v1alpha1
kind: Service
metadata: {name: edge}
spec: {port: 80, endpoints: [{address: 127.0.0.1:80}], dependsOn: [leaf]}
---
apiVersion: hopguard.dev/v1alpha1
kind: Service
metadata: {name: leaf}
spec: {port: 81, endpoints: [{address: 127.0.0.1:81}]}
---
apiVersion: hopguard.dev/v1alpha1
kind: Service
metadata: {name: top}
spec: {port: 82, endpoints: [{address: 127.0.0.1:82}], dependsOn: [edge]}
---
apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: e}
spec: {service: edge, match: {grpcMethod: a.E/E}, retry: {attempts: 3}, sideEffects: false}
---
apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: l}
spec: {service: leaf, match: {grpcMethod: a.L/L}, retry: {attempts: 3}, sideEffects: false}
`

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLintCmd_Success(t *testing.T) {
	// Warnings alone exit 0 and are printed.
	out, errOut, err := execute(t, newLintCmd(Env{}), exampleDir)
	if err != nil {
		t.Fatalf("lint example: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(out, "warning: conflicting-retry-budgets: payments: ") ||
		!strings.Contains(out, "warning: side-effect-retry-without-idempotency: ") {
		t.Errorf("lint example printed %q, want its two warnings", out)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, exampleDir+"/") || !strings.Contains(l, " (fix: ") {
			t.Errorf("line %q lacks the file:line:col prefix or the fix", l)
		}
	}
	if errOut != "lint: 0 errors, 2 warnings\n" {
		t.Errorf("summary %q", errOut)
	}

	// JSON carries the same findings.
	out, _, err = execute(t, newLintCmd(Env{}), "--format", "json", exampleDir)
	if err != nil {
		t.Fatalf("lint --format json: %v", err)
	}
	var got []lint.Finding
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not a JSON array of findings: %v\n%s", err, out)
	}
	if len(got) != 2 || got[0].Pos.File == "" || got[0].Pos.Line == 0 || got[0].Fix == "" {
		t.Errorf("json findings %+v", got)
	}

	// A clean mesh prints [] in JSON.
	clean := writeConfig(t, strings.Replace(amplifyingMesh, "a.L/L}, retry: {attempts: 3}", "a.L/L}, retry: {authority: none, attempts: 1}", 1))
	out, _, err = execute(t, newLintCmd(Env{}), "--format", "json", clean)
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Errorf("lint clean mesh: %v, %q; want [] and no error", err, out)
	}
}

func TestLintCmd_Errors(t *testing.T) {
	dir := writeConfig(t, amplifyingMesh)
	out, errOut, err := execute(t, newLintCmd(Env{}), dir)
	if !errors.Is(err, errFindings) {
		t.Fatalf("lint amplifying mesh: %v, want errFindings (exit 1)", err)
	}
	want := filepath.Join(dir, "mesh.yaml") + ":24:69: error: retry-amplification: top → edge → leaf: 2 hops may retry on this path: " +
		"default/e (3 attempts, authority mesh), default/l (3 attempts, authority mesh); one failure at leaf can cost up to 9 calls " +
		"(fix: keep one retry authority per path: set retry.authority: none (or attempts: 1) on all these routes but one, usually all but the one nearest the root)\n"
	if diff := cmp.Diff(out, want); diff != "" {
		t.Errorf("output (-got +want):\n%s", diff)
	}
	if errOut != "lint: 1 errors, 0 warnings\n" {
		t.Errorf("summary %q", errOut)
	}

	// An invalid configuration is reported like validate does, exit 1.
	bad := writeConfig(t, strings.Replace(amplifyingMesh, "dependsOn: [leaf]", "dependsOn: [nowhere]", 1))
	out, _, err = execute(t, newLintCmd(Env{}), bad)
	if !errors.Is(err, errFindings) || !strings.Contains(out, "mesh.yaml:4:") || !strings.Contains(out, `unknown service "nowhere"`) {
		t.Errorf("lint invalid mesh: %v, %q; want errFindings and the violation", err, out)
	}

	// Usage errors.
	for _, args := range [][]string{{"--format", "xml", dir}, {}} {
		if _, _, err := execute(t, newLintCmd(Env{}), args...); err == nil || errors.Is(err, errFindings) {
			t.Errorf("lint %v: %v, want a usage error", args, err)
		}
	}
	if _, _, err := execute(t, newLintCmd(Env{}), filepath.Join(dir, "missing")); err == nil || errors.Is(err, errFindings) {
		t.Errorf("lint of a missing path: %v, want a read error", err)
	}
}
