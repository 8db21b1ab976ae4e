package configdump

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/controlplane/translate"
)

// shop renders what a checkout sidecar of the bundled example receives.
func shop(t *testing.T) *translate.Resources {
	t.Helper()
	cfg, vs, err := v1alpha1.Load("../../examples/shop/config")
	if err != nil || len(vs.Errors()) > 0 {
		t.Fatalf("load: %v %v", err, vs.Errors())
	}
	m, err := ir.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := translate.Translate(m, "checkout", translate.Envoy, translate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// cloned deep-copies res so a test can change it.
func cloned(res *translate.Resources) *translate.Resources {
	cp := func(in []types.Resource) []types.Resource {
		out := make([]types.Resource, len(in))
		for i, r := range in {
			out[i] = proto.Clone(r)
		}
		return out
	}
	return &translate.Resources{Listeners: cp(res.Listeners), Routes: cp(res.Routes), Clusters: cp(res.Clusters), Endpoints: cp(res.Endpoints)}
}

func compareDump(t *testing.T, want, running *translate.Resources) *Report {
	t.Helper()
	raw, err := Encode("checkout-1", "checkout", running, "v-running")
	if err != nil {
		t.Fatal(err)
	}
	d, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if d.NodeID != "checkout-1" || d.Cluster != "checkout" {
		t.Errorf("node from the bootstrap section = %q/%q", d.NodeID, d.Cluster)
	}
	return Compare(d, want, "v-running")
}

func TestCompare_NoDrift(t *testing.T) {
	res := shop(t)
	r := compareDump(t, res, res)
	if r.Drifted() || len(r.Differences) != 0 {
		t.Fatalf("unchanged dump reported drift: %+v", r.Differences)
	}
	if n := len(res.Listeners) + len(res.Routes) + len(res.Clusters) + len(res.Endpoints); r.Compared != n {
		t.Errorf("compared %d resources, want %d", r.Compared, n)
	}
}

func firstRoute(res *translate.Resources) *routev3.Route {
	for _, rc := range res.Routes {
		for _, vh := range rc.(*routev3.RouteConfiguration).GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				if r.GetRoute().GetRetryPolicy() != nil {
					return r
				}
			}
		}
	}
	return nil
}

func TestCompare_ReportsEachKnownChange(t *testing.T) {
	base := shop(t)
	tests := []struct {
		name       string
		change     func(*translate.Resources)
		typ, res   string
		status     string
		diffNeedle string
	}{
		{"retry count", func(r *translate.Resources) {
			firstRoute(r).GetRoute().GetRetryPolicy().NumRetries.Value += 2
		}, TypeRoute, "", StatusDifferent, "num_retries"},
		{"route timeout", func(r *translate.Resources) {
			firstRoute(r).GetRoute().Timeout = durationpb.New(42 * time.Second)
		}, TypeRoute, "", StatusDifferent, "timeout"},
		{"removed cluster", func(r *translate.Resources) { r.Clusters = r.Clusters[1:] },
			TypeCluster, resourceName(base.Clusters[0]), StatusMissing, ""},
		{"extra listener", func(r *translate.Resources) {
			r.Listeners = append(r.Listeners, &listenerv3.Listener{Name: "debug", Address: &corev3.Address{}})
		}, TypeListener, "debug", StatusUnexpected, ""},
		{"changed endpoint", func(r *translate.Resources) {
			cla := r.Endpoints[0].(*endpointv3.ClusterLoadAssignment)
			sa := cla.GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
			sa.PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: sa.GetPortValue() + 1}
		}, TypeEndpoint, resourceName(base.Endpoints[0]), StatusDifferent, "port_value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			running := cloned(base)
			tt.change(running)
			r := compareDump(t, base, running)
			if !r.Drifted() || len(r.Differences) != 1 {
				t.Fatalf("differences = %+v, want exactly one", r.Differences)
			}
			d := r.Differences[0]
			if d.Type != tt.typ || d.Status != tt.status || (tt.res != "" && d.Name != tt.res) {
				t.Errorf("difference %s %s %s, want %s %s %s", d.Type, d.Name, d.Status, tt.typ, tt.res, tt.status)
			}
			if !strings.Contains(d.Diff, tt.diffNeedle) {
				t.Errorf("diff does not name %q:\n%s", tt.diffNeedle, d.Diff)
			}
		})
	}
}

func TestCompare_VersionMismatchIsDrift(t *testing.T) {
	res := shop(t)
	raw, err := Encode("n", "checkout", res, "v-old")
	if err != nil {
		t.Fatal(err)
	}
	d, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	r := Compare(d, res, "v-new")
	if !r.Drifted() || r.DumpVersions[TypeListener][0] != "v-old" {
		t.Errorf("version mismatch not reported: %+v", r)
	}
}

func TestParse_Errors(t *testing.T) {
	for name, raw := range map[string]string{
		"not json":          "{",
		"no configs":        `{"foo": 1}`,
		"configs not array": `{"configs": 3}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse([]byte(raw)); !errors.Is(err, ErrBadDump) {
				t.Errorf("Parse = %v, want ErrBadDump", err)
			}
		})
	}
}

func TestParse_UnknownTypesAreReportedNotFatal(t *testing.T) {
	raw := `{"configs": [
	  {"@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump"},
	  {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
	   "dynamic_active_clusters": [{"version_info": "v1", "cluster": {"@type": "type.googleapis.com/example.Unknown", "name": "x"}}]}
	]}`
	d, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Skipped) != 1 {
		t.Errorf("skipped = %v", d.Skipped)
	}
	r := Compare(d, &translate.Resources{}, "v1")
	if len(r.Differences) != 1 || r.Differences[0].Status != StatusUndecoded {
		t.Errorf("differences = %+v, want one undecodable cluster", r.Differences)
	}
}
