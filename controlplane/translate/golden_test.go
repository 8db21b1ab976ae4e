package translate

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/controlplane/ir"
)

// update rewrites the golden files: go test ./controlplane/translate -update.
var update = flag.Bool("update", false, "rewrite testdata/out golden files")

// undeclaredNode is a node service name no golden case declares: it gets
// outbound config for every service.
const undeclaredNode = "undeclared-client"

// loadMesh loads a directory of hopguard YAML and builds its IR.
func loadMesh(t testing.TB, dir string) *ir.Mesh {
	t.Helper()
	cfg, vs, err := v1alpha1.Load(dir)
	if err != nil {
		t.Fatalf("Load %s: %v", dir, err)
	}
	if errs := vs.Errors(); len(errs) > 0 {
		t.Fatalf("Load %s:\n%v", dir, errs)
	}
	m, err := ir.Build(cfg)
	if err != nil {
		t.Fatalf("Build %s: %v", dir, err)
	}
	return m
}

// renderCase renders every node of the mesh in both flavors, one file per
// node, flavor and section: <service>.<flavor>.<section>.yaml.
func renderCase(t *testing.T, m *ir.Mesh) map[string][]byte {
	t.Helper()
	nodes := []string{undeclaredNode}
	for _, s := range m.Services {
		nodes = append(nodes, s.Name)
	}
	out := map[string][]byte{}
	for _, node := range nodes {
		for _, flavor := range []Flavor{Envoy, Proxyless} {
			res, err := Translate(m, node, flavor, Options{})
			if err != nil {
				t.Fatalf("Translate(%s, %v): %v", node, flavor, err)
			}
			for _, sec := range res.Sections() {
				b, err := RenderSectionYAML(sec.Name, sec.Resources)
				if err != nil {
					t.Fatalf("render %s %v %s: %v", node, flavor, sec.Name, err)
				}
				out[node+"."+flavor.String()+"."+sec.Name+".yaml"] = b
			}
		}
	}
	return out
}

// TestGolden translates every case under testdata/in and compares with
// testdata/out/<case>; with -update it rewrites testdata/out instead.
func TestGolden(t *testing.T) {
	cases, err := os.ReadDir(filepath.Join("testdata", "in"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no golden cases in testdata/in")
	}
	for _, c := range cases {
		if !c.IsDir() {
			continue
		}
		t.Run(c.Name(), func(t *testing.T) {
			got := renderCase(t, loadMesh(t, filepath.Join("testdata", "in", c.Name())))
			outDir := filepath.Join("testdata", "out", c.Name())
			if *update {
				writeGolden(t, outDir, got)
				return
			}
			compareGolden(t, outDir, got)
		})
	}
}

// writeGolden replaces outDir's contents with files.
func writeGolden(t *testing.T, outDir string, files map[string][]byte) {
	t.Helper()
	if err := os.RemoveAll(outDir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(outDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// compareGolden fails on every difference, missing file and stale file.
func compareGolden(t *testing.T, outDir string, files map[string][]byte) {
	t.Helper()
	entries, err := os.ReadDir(outDir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var stale, missing []string
	for _, e := range entries {
		if _, ok := files[e.Name()]; !ok {
			stale = append(stale, e.Name())
		}
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		want, err := os.ReadFile(filepath.Join(outDir, name))
		if os.IsNotExist(err) {
			missing = append(missing, name)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(files[name], want) {
			t.Errorf("%s differs (-got +want); run go test ./controlplane/translate -update:\n%s",
				filepath.Join(outDir, name), cmp.Diff(string(files[name]), string(want)))
		}
	}
	if len(stale) > 0 {
		t.Errorf("stale golden files in %s (run -update): %s", outDir, strings.Join(stale, ", "))
	}
	if len(missing) > 0 {
		t.Errorf("missing golden files in %s (run -update): %s", outDir, strings.Join(missing, ", "))
	}
}
