package v1alpha1_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/controlplane/ir"
)

// TestLoad_CatchesWhatIRBuildRejects holds the validation contract: a
// configuration that ir.Build rejects must never pass Load. Each case is
// first shown to fail in ir.Build once decoded and defaulted (so the case
// stays meaningful), then Load must report it with a file:line:col.
func TestLoad_CatchesWhatIRBuildRejects(t *testing.T) {
	const svc = "apiVersion: hopguard.dev/v1alpha1\nkind: Service\n"
	tests := []struct {
		name, in string
		want     string // the violation Load reports
	}{
		{
			name: "service name in two namespaces",
			in: svc + "metadata: {name: payments, namespace: shop}\nspec: {port: 80, dns: a:80}\n---\n" +
				svc + "metadata: {name: payments, namespace: bank}\nspec: {port: 80, dns: b:80}\n",
			want: `f.yaml:8:18: metadata.name: Service name "payments" is already used in namespace "shop" (first at f.yaml:3:18)`,
		},
		{
			name: "endpoint weight above uint32",
			in:   svc + "metadata: {name: payments}\nspec: {port: 80, endpoints: [{address: 10.0.0.1:80, weight: 4294967296}]}\n",
			want: `f.yaml:4:61: spec.endpoints[0].weight: must be at most 4294967295, got 4294967296`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			docs, vs := v1alpha1.Decode("f.yaml", []byte(tc.in))
			if len(vs) > 0 {
				t.Fatalf("Decode: %v", vs)
			}
			cfg := &v1alpha1.Config{}
			for _, d := range docs {
				cfg.Services = append(cfg.Services, d.(*v1alpha1.Service))
			}
			v1alpha1.SetDefaults(cfg)
			if _, err := ir.Build(cfg); err == nil {
				t.Fatalf("ir.Build accepts the case; it tests nothing")
			}

			path := filepath.Join(t.TempDir(), "f.yaml")
			if err := os.WriteFile(path, []byte(tc.in), 0o600); err != nil {
				t.Fatal(err)
			}
			got, vs, err := v1alpha1.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if got != nil {
				t.Fatalf("Load accepted a configuration ir.Build rejects")
			}
			want := strings.Replace(tc.want, "f.yaml", path, 2)
			for _, v := range vs.Errors() {
				if strings.HasPrefix(v.String(), want) {
					return
				}
			}
			t.Errorf("Load violations:\n%s\nwant one starting with\n%s", vs.Error(), want)
		})
	}
}
