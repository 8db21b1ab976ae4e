package v1alpha1

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeTree creates files (relative path → content) under a new temp dir.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestLoad(t *testing.T) {
	t.Run("directory tree: multi-doc files, recursion, hidden files skipped", func(t *testing.T) {
		cfg, vs, err := Load("testdata/load")
		if err != nil || len(vs) > 0 || cfg == nil {
			t.Fatalf("Load() = %v, %v, %v", cfg, vs, err)
		}
		want := []string{"testdata/load/a.yaml", "testdata/load/nested/b-mesh.yaml", "testdata/load/nested/deeper/c.yml"}
		if diff := cmp.Diff(cfg.Files, want); diff != "" {
			t.Errorf("Files (-got +want):\n%s", diff)
		}
		var names []string
		for _, s := range cfg.Services {
			names = append(names, s.Metadata.Name)
		}
		for _, r := range cfg.RouteBudgets {
			names = append(names, r.Metadata.Name)
		}
		names = append(names, cfg.Mesh.Metadata.Name)
		if diff := cmp.Diff(names, []string{"a", "b", "c", "mesh"}); diff != "" {
			t.Errorf("documents (-got +want):\n%s", diff)
		}
		if got := cfg.Services[1].Pos; got != (Pos{File: "testdata/load/a.yaml", Line: 8, Col: 1}) {
			t.Errorf("second service Pos = %v", got)
		}
		if got := cfg.RouteBudgets[0].Spec.Retry.Attempts; got != DefaultAttempts {
			t.Errorf("defaults not applied: attempts = %d", got)
		}
	})
	t.Run("valid examples", func(t *testing.T) {
		cfg, vs, err := Load("testdata/valid")
		if err != nil || len(vs) > 0 || cfg == nil {
			t.Fatalf("Load() = %v, violations:\n%v\nerr %v", cfg, vs, err)
		}
		if len(cfg.Services) != 3 || len(cfg.RouteBudgets) != 4 || cfg.Mesh.Spec.Environment != "prod-eu-1" {
			t.Errorf("Load() = %d services, %d budgets, mesh %q", len(cfg.Services), len(cfg.RouteBudgets), cfg.Mesh.Spec.Environment)
		}
	})
	t.Run("every problem of every file, sorted; config nil", func(t *testing.T) {
		root := writeTree(t, map[string]string{
			"b.yaml": "apiVersion: hopguard.dev/v1alpha1\nkind: RouteBudget\nmetadata: {name: r}\nspec: {service: ghost, match: {grpcMethod: a.B/C}, retry: {attempts: 20}}\n",
			"a.yml":  "apiVersion: hopguard.dev/v1alpha1\nkind: Service\nmetadata: {name: s}\nspec: {port: 1, dns: s:1, colour: red}\n---\n[\n",
			"c.yaml": "apiVersion: hopguard.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: m}\nspec: {environment: Prod}\n",
		})
		cfg, vs, err := Load(root)
		if err != nil || cfg != nil {
			t.Fatalf("Load() = %v, _, %v; want nil config and no error", cfg, err)
		}
		got := strings.ReplaceAll(vs.Error(), root+string(filepath.Separator), "")
		want := strings.Join([]string{
			`a.yml:4:27: spec.colour: unknown field "colour" (allowed: dependsOn, dns, endpoints, port, protocol)`,
			`a.yml:7:1: syntax error: did not find expected node content`,
			`b.yaml:4:17: spec.service: unknown service "ghost" in namespace "default"`,
			`b.yaml:4:70: spec.retry.attempts: must be between 1 and 10, got 20`,
			`c.yaml:4:21: spec.environment: invalid environment "Prod": want a DNS-1123 label (at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit)`,
		}, "\n")
		if diff := cmp.Diff(got, want); diff != "" {
			t.Errorf("violations (-got +want):\n%s", diff)
		}
	})
	t.Run("warnings only: config returned", func(t *testing.T) {
		root := writeTree(t, map[string]string{"x.yaml": validBase + "---\napiVersion: hopguard.dev/v1alpha1\nkind: RouteBudget\nmetadata: {name: r}\nspec: {service: s, match: {grpcMethod: a.B/C}, deadline: {default: 9s}, retry: {attempts: 7}}\n"})
		cfg, vs, err := Load(filepath.Join(root, "x.yaml"))
		if err != nil || cfg == nil || len(vs) != 1 || !vs[0].Warning {
			t.Fatalf("Load() = %v, %v, %v; want a config and one warning", cfg, vs, err)
		}
	})
	t.Run("explicit file of any name, named twice, read once", func(t *testing.T) {
		root := writeTree(t, map[string]string{"conf.txt": validBase})
		p := filepath.Join(root, "conf.txt")
		cfg, vs, err := Load(p, p)
		if err != nil || len(vs) > 0 || cfg == nil || len(cfg.Services) != 2 {
			t.Fatalf("Load() = %v, %v, %v", cfg, vs, err)
		}
	})
	t.Run("missing path is an I/O error", func(t *testing.T) {
		cfg, vs, err := Load("testdata/valid", "testdata/does-not-exist")
		if !errors.Is(err, fs.ErrNotExist) || cfg != nil || vs != nil {
			t.Fatalf("Load() = %v, %v, %v; want fs.ErrNotExist", cfg, vs, err)
		}
		if !strings.HasPrefix(err.Error(), "v1alpha1: ") {
			t.Errorf("error %q lacks the package prefix", err)
		}
	})
	t.Run("empty directory gives a defaulted config", func(t *testing.T) {
		cfg, vs, err := Load(t.TempDir())
		if err != nil || len(vs) > 0 || cfg == nil || cfg.Mesh == nil || cfg.Mesh.Metadata.Name != DefaultMeshName {
			t.Fatalf("Load() = %v, %v, %v", cfg, vs, err)
		}
	})
}
