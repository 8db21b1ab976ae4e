package lint

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hopguard/hopguard/api/v1alpha1"
)

// load writes docs (YAML documents, joined with ---) to one file and loads it.
func load(t *testing.T, docs ...string) *v1alpha1.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mesh.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(docs, "---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, vs, err := v1alpha1.Load(path)
	if err != nil || len(vs.Errors()) > 0 {
		t.Fatalf("load: %v %v", err, vs)
	}
	return cfg
}

func service(name string, deps ...string) string {
	d := ""
	if len(deps) > 0 {
		d = "\n  dependsOn: [" + strings.Join(deps, ", ") + "]"
	}
	return `apiVersion: hopguard.dev/v1alpha1
kind: Service
metadata: {name: ` + name + `}
spec:
  port: 8080
  endpoints: [{address: 127.0.0.1:8080}]` + d + "\n"
}

// route declares a route of svc; extra is indented spec YAML.
func route(name, svc, extra string) string {
	return `apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: ` + name + `}
spec:
  service: ` + svc + `
  match: {grpcMethod: ` + svc + `.S/` + name + `}
` + extra
}

const quiet = "  retry: {authority: none, attempts: 1}\n  sideEffects: false\n"

// brief renders findings as "rule severity path line" for comparison.
func brief(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, string(f.Severity)+" "+f.Rule+" ["+f.Path+"] line "+strconv.Itoa(f.Pos.Line))
	}
	return out
}

func TestLint(t *testing.T) {
	tests := []struct {
		name string
		docs []string
		want []string
		msg  string // a part of the first finding's message
	}{
		{
			name: "clean mesh",
			docs: []string{service("edge", "mid"), service("mid", "leaf"), service("leaf"),
				route("e", "edge", "  retry: {authority: mesh, attempts: 3}\n  sideEffects: false\n  deadline: {default: 1s, max: 2s}\n"),
				route("m", "mid", quiet), route("l", "leaf", quiet)},
		},
		{
			name: "two hops retry on one path",
			docs: []string{service("edge", "mid"), service("mid", "leaf"), service("leaf"),
				route("m", "mid", "  retry: {authority: mesh, attempts: 3}\n  sideEffects: false\n"),
				route("l", "leaf", "  retry: {authority: app, attempts: 2}\n  sideEffects: false\n")},
			want: []string{"error retry-amplification [edge → mid → leaf] line 39"},
			msg:  "can cost up to 6 calls",
		},
		{
			name: "callee default longer than caller can wait",
			docs: []string{service("edge", "leaf"), service("leaf"),
				route("e", "edge", quiet+"  deadline: {default: 500ms, max: 1s}\n"),
				route("l", "leaf", quiet+"  deadline: {default: 2s, max: 3s}\n")},
			want: []string{"error timeout-inversion [edge → leaf] line 34"},
			msg:  "waits 2s by default, but edge's routes allow at most 1s",
		},
		{
			name: "side effect retried without a key on every attempt",
			docs: []string{service("pay"),
				route("charge", "pay", "  retry: {authority: mesh, attempts: 2}\n  sideEffects: true\n  idempotency: {require: retries}\n")},
			want: []string{"warning side-effect-retry-without-idempotency [] line 16"},
			msg:  "a first attempt without a key can run twice",
		},
		{
			name: "routes of one service with different budgets",
			docs: []string{service("pay"),
				route("a", "pay", "  retry: {authority: none, attempts: 1, budget: {ratio: 0.1}}\n  sideEffects: false\n"),
				route("b", "pay", quiet)},
			want: []string{"warning conflicting-retry-budgets [pay] line 1"},
			msg:  "takes the largest (0.2, 5/s)",
		},
		{
			name: "dependency cycle",
			docs: []string{service("a", "b"), service("b", "c"), service("c", "a")},
			want: []string{"error dependency-cycle [a → b → c → a] line 7"},
			msg:  "cycle",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Lint(load(t, tc.docs...))
			if diff := cmp.Diff(brief(got), tc.want); diff != "" {
				t.Errorf("findings (-got +want):\n%s\nall: %v", diff, got)
			}
			if tc.msg != "" && len(got) > 0 && !strings.Contains(got[0].Message, tc.msg) {
				t.Errorf("message %q lacks %q", got[0].Message, tc.msg)
			}
			for _, f := range got {
				if f.Fix == "" || f.Pos.File == "" {
					t.Errorf("finding without a fix or a file: %+v", f)
				}
			}
			if HasErrors(got) != strings.HasPrefix(strings.Join(tc.want, ""), "error") {
				t.Errorf("HasErrors = %v for %v", HasErrors(got), tc.want)
			}
		})
	}
}

func TestBundledExampleHasOnlyWarnings(t *testing.T) {
	cfg, vs, err := v1alpha1.Load("../../examples/shop/config")
	if err != nil || len(vs.Errors()) > 0 {
		t.Fatal(err, vs)
	}
	fs := Lint(cfg)
	if HasErrors(fs) {
		t.Errorf("the bundled example has lint errors: %v", fs)
	}
}
