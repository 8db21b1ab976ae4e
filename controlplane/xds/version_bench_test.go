package xds

import (
	"testing"

	"github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/controlplane/translate"
)

// BenchmarkVersion hashes one Envoy node's resources of the example shop
// (the gateway's, which calls every other service): what every render of
// a node's snapshot pays on top of translation.
func BenchmarkVersion(b *testing.B) {
	cfg, vs, err := v1alpha1.Load("../../examples/shop/config")
	if err != nil || len(vs.Errors()) > 0 {
		b.Fatalf("load: %v %v", err, vs.Errors())
	}
	m, err := ir.Build(cfg)
	if err != nil {
		b.Fatal(err)
	}
	res, err := translate.Translate(m, "gateway", translate.Envoy, translate.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Version(res); err != nil {
			b.Fatal(err)
		}
	}
}
