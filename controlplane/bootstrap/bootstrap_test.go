package bootstrap

import (
	"errors"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	// The Any in the static cluster must resolve when the YAML is read back.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

func TestRender_Success(t *testing.T) {
	for _, tc := range []struct {
		name      string
		opts      Options
		discovery clusterv3.Cluster_DiscoveryType
		nodeID    string
		admin     uint32
	}{
		{"ip address, defaults", Options{Service: "payments", XDSAddr: "127.0.0.1:18000"}, clusterv3.Cluster_STATIC, "payments-sidecar", DefaultAdminPort},
		{"dns name, everything set", Options{Service: "payments", NodeID: "payments-7d9f", XDSAddr: "hopguard.mesh.svc:18000",
			AdminPort: 15000, Region: "eu-west-1", Zone: "a", SubZone: "rack1"}, clusterv3.Cluster_STRICT_DNS, "payments-7d9f", 15000},
		{"ipv6", Options{Service: "ledger", XDSAddr: "[::1]:18000"}, clusterv3.Cluster_STATIC, "ledger-sidecar", DefaultAdminPort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Render(tc.opts)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if err := b.ValidateAll(); err != nil {
				t.Fatalf("ValidateAll: %v", err)
			}
			n := b.GetNode()
			if n.GetId() != tc.nodeID || n.GetCluster() != tc.opts.Service || n.GetLocality().GetRegion() != tc.opts.Region ||
				n.GetLocality().GetZone() != tc.opts.Zone || n.GetLocality().GetSubZone() != tc.opts.SubZone {
				t.Errorf("node = %v, want id %s, cluster %s and the locality", n, tc.nodeID, tc.opts.Service)
			}
			c := b.GetStaticResources().GetClusters()[0]
			if c.GetName() != XDSCluster || c.GetType() != tc.discovery {
				t.Errorf("xds cluster %s type %v, want %s type %v", c.GetName(), c.GetType(), XDSCluster, tc.discovery)
			}
			if got := b.GetDynamicResources().GetAdsConfig().GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName(); got != XDSCluster {
				t.Errorf("ADS uses cluster %q, want %q", got, XDSCluster)
			}
			if b.GetDynamicResources().GetLdsConfig().GetAds() == nil || b.GetDynamicResources().GetCdsConfig().GetAds() == nil {
				t.Error("LDS and CDS must come over ADS")
			}
			if got := b.GetAdmin().GetAddress().GetSocketAddress(); got.GetAddress() != "127.0.0.1" || got.GetPortValue() != tc.admin {
				t.Errorf("admin address %v, want 127.0.0.1:%d", got, tc.admin)
			}
		})
	}
}

func TestYAMLReadsBackAsTheSameBootstrap(t *testing.T) {
	b, err := Render(Options{Service: "payments", XDSAddr: "127.0.0.1:18000", Region: "eu-west-1", Zone: "a"})
	if err != nil {
		t.Fatal(err)
	}
	y, err := YAML(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ads_config:", "cluster_name: hopguard-xds", "cluster: payments"} {
		if !strings.Contains(string(y), want) {
			t.Errorf("YAML lacks %q:\n%s", want, y)
		}
	}
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatal(err)
	}
	var back bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(j, &back); err != nil {
		t.Fatalf("the YAML is not a Bootstrap: %v", err)
	}
	if !proto.Equal(&back, b) {
		t.Errorf("read back %v, want %v", &back, b)
	}
}

func TestRender_Errors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"no service", Options{XDSAddr: "127.0.0.1:18000"}, "service is required"},
		{"no address", Options{Service: "payments"}, "xds address is required"},
		{"no port", Options{Service: "payments", XDSAddr: "127.0.0.1"}, "is not host:port"},
		{"bad port", Options{Service: "payments", XDSAddr: "127.0.0.1:http"}, "has no valid port"},
		{"port zero", Options{Service: "payments", XDSAddr: "127.0.0.1:0"}, "has no valid port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Render(tc.opts)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Render: %v, want ErrInvalid containing %q", err, tc.want)
			}
		})
	}
}
