package bootstrap

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"
	"sigs.k8s.io/yaml"
)

// update rewrites the golden files: go test ./controlplane/bootstrap -update.
var update = flag.Bool("update", false, "rewrite testdata golden files")

func TestRender_Success(t *testing.T) {
	for _, tc := range []struct {
		name      string
		opts      Options
		discovery clusterv3.Cluster_DiscoveryType
		node      *corev3.Node
		admin     uint32
	}{
		{
			name: "ip address, defaults", opts: Options{Service: "payments", XDSAddr: "127.0.0.1:18000"},
			discovery: clusterv3.Cluster_STATIC, node: &corev3.Node{Id: "payments-sidecar", Cluster: "payments"}, admin: DefaultAdminPort,
		},
		{
			name: "dns name, everything set",
			opts: Options{Service: "payments", NodeID: "payments-7d9f", XDSAddr: "hopguard.mesh.svc:18000",
				AdminPort: 15000, Region: "eu-west-1", Zone: "a", SubZone: "rack1"},
			discovery: clusterv3.Cluster_STRICT_DNS,
			node: &corev3.Node{Id: "payments-7d9f", Cluster: "payments",
				Locality: &corev3.Locality{Region: "eu-west-1", Zone: "a", SubZone: "rack1"}},
			admin: 15000,
		},
		{
			name: "ipv6, zone only", opts: Options{Service: "ledger", XDSAddr: "[::1]:18000", Zone: "b"},
			discovery: clusterv3.Cluster_STATIC,
			node:      &corev3.Node{Id: "ledger-sidecar", Cluster: "ledger", Locality: &corev3.Locality{Zone: "b"}}, admin: DefaultAdminPort,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Render(tc.opts)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if err := b.ValidateAll(); err != nil {
				t.Fatalf("ValidateAll: %v", err)
			}
			if diff := cmp.Diff(b.GetNode(), tc.node, protocmp.Transform()); diff != "" {
				t.Errorf("node (-got +want):\n%s", diff)
			}
			clusters := b.GetStaticResources().GetClusters()
			if len(clusters) != 1 {
				t.Fatalf("%d static clusters, want only %s (hopguard-extproc comes over CDS)", len(clusters), XDSCluster)
			}
			c := clusters[0]
			if c.GetName() != XDSCluster || c.GetType() != tc.discovery {
				t.Errorf("xds cluster %s type %v, want %s type %v", c.GetName(), c.GetType(), XDSCluster, tc.discovery)
			}
			var opts httpv3.HttpProtocolOptions
			if err := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].UnmarshalTo(&opts); err != nil ||
				opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions().GetConnectionKeepalive().GetInterval().AsDuration() != 30*time.Second {
				t.Errorf("xds cluster must speak HTTP/2 (explicit http2 options) with keepalive pings every 30 s: %v %v", err, &opts)
			}
			ads := b.GetDynamicResources().GetAdsConfig()
			if ads.GetApiType() != corev3.ApiConfigSource_GRPC || ads.GetTransportApiVersion() != corev3.ApiVersion_V3 ||
				ads.GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName() != XDSCluster {
				t.Errorf("ads_config = %v, want GRPC, V3, envoy_grpc %s", ads, XDSCluster)
			}
			for name, cs := range map[string]*corev3.ConfigSource{"lds": b.GetDynamicResources().GetLdsConfig(), "cds": b.GetDynamicResources().GetCdsConfig()} {
				if cs.GetAds() == nil || cs.GetResourceApiVersion() != corev3.ApiVersion_V3 {
					t.Errorf("%s_config = %v, want {ads: {}, resource_api_version: V3}", name, cs)
				}
			}
			if got := b.GetAdmin().GetAddress().GetSocketAddress(); got.GetAddress() != "127.0.0.1" || got.GetPortValue() != tc.admin {
				t.Errorf("admin address %v, want 127.0.0.1:%d", got, tc.admin)
			}
		})
	}
}

func TestRender_Errors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want []string
	}{
		{"no service", Options{XDSAddr: "127.0.0.1:18000"}, []string{"service is required"}},
		{"no address", Options{Service: "payments"}, []string{"xds address is required"}},
		{"no port", Options{Service: "payments", XDSAddr: "127.0.0.1"}, []string{"is not host:port"}},
		{"no host", Options{Service: "payments", XDSAddr: ":18000"}, []string{"is not host:port"}},
		{"bad port", Options{Service: "payments", XDSAddr: "127.0.0.1:http"}, []string{"has no valid port"}},
		{"port zero", Options{Service: "payments", XDSAddr: "127.0.0.1:0"}, []string{"has no valid port"}},
		{"port too big", Options{Service: "payments", XDSAddr: "127.0.0.1:70000"}, []string{"has no valid port"}},
		{"url, not an address", Options{Service: "payments", XDSAddr: "http://cp:18000"}, []string{"is not host:port"}},
		{"host with a space", Options{Service: "payments", XDSAddr: "control plane:18000"}, []string{"neither an IP address nor a DNS name"}},
		{"admin port too big", Options{Service: "payments", XDSAddr: "127.0.0.1:18000", AdminPort: 65536}, []string{"admin port 65536"}},
		{"everything at once", Options{AdminPort: 99999}, []string{"service is required", "admin port 99999", "xds address is required"}},
		{"client cert without key", Options{Service: "payments", XDSAddr: "cp:18000", XDSCA: "/ca.pem", XDSCert: "/c.pem"}, []string{"certificate and key go together"}},
		{"client cert without CA", Options{Service: "payments", XDSAddr: "cp:18000", XDSCert: "/c.pem", XDSKey: "/k.pem"}, []string{"needs the CA"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Render(tc.opts)
			if b != nil || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Render = %v, %v; want nil and ErrInvalid", b, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestRender_TLS: with a CA, the xDS cluster speaks TLS (ALPN h2), verifies
// the control plane's certificate against the CA and its name (a DNS SAN,
// or an IP SAN for an address), and presents the sidecar's certificate
// when given one.
func TestRender_TLS(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     Options
		sanType  tlsv3.SubjectAltNameMatcher_SanType
		san, sni string
		mutual   bool
	}{
		{"DNS name, mutual", Options{Service: "payments", XDSAddr: "hopguard.hopguard-system.svc:18000", XDSCA: "/etc/hopguard/ca.pem",
			XDSCert: "/etc/hopguard/tls.crt", XDSKey: "/etc/hopguard/tls.key"},
			tlsv3.SubjectAltNameMatcher_DNS, "hopguard.hopguard-system.svc", "hopguard.hopguard-system.svc", true},
		{"IP address", Options{Service: "payments", XDSAddr: "10.0.0.7:18000", XDSCA: "/ca.pem"},
			tlsv3.SubjectAltNameMatcher_IP_ADDRESS, "10.0.0.7", "", false},
		{"server name given", Options{Service: "payments", XDSAddr: "10.0.0.7:18000", XDSCA: "/ca.pem", XDSServerName: "hopguard.internal"},
			tlsv3.SubjectAltNameMatcher_DNS, "hopguard.internal", "hopguard.internal", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Render(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			ts := b.GetStaticResources().GetClusters()[0].GetTransportSocket()
			var up tlsv3.UpstreamTlsContext
			if ts.GetName() != "envoy.transport_sockets.tls" || ts.GetTypedConfig().UnmarshalTo(&up) != nil {
				t.Fatalf("transport socket = %v", ts)
			}
			common := up.GetCommonTlsContext()
			vc := common.GetValidationContext()
			sans := vc.GetMatchTypedSubjectAltNames()
			if vc.GetTrustedCa().GetFilename() != tc.opts.XDSCA || len(sans) != 1 || sans[0].GetSanType() != tc.sanType ||
				sans[0].GetMatcher().GetExact() != tc.san || up.GetSni() != tc.sni {
				t.Errorf("validation = %v, sni %q; want CA %s, SAN %v %s, sni %q", vc, up.GetSni(), tc.opts.XDSCA, tc.sanType, tc.san, tc.sni)
			}
			if len(common.GetAlpnProtocols()) != 1 || common.GetAlpnProtocols()[0] != "h2" {
				t.Errorf("ALPN = %v, want [h2]", common.GetAlpnProtocols())
			}
			certs := common.GetTlsCertificates()
			if tc.mutual != (len(certs) == 1) || (tc.mutual && (certs[0].GetCertificateChain().GetFilename() != tc.opts.XDSCert ||
				certs[0].GetPrivateKey().GetFilename() != tc.opts.XDSKey)) {
				t.Errorf("client certificates = %v, want mutual %v", certs, tc.mutual)
			}
		})
	}
	plain, err := Render(Options{Service: "payments", XDSAddr: "cp:18000"})
	if err != nil || plain.GetStaticResources().GetClusters()[0].GetTransportSocket() != nil {
		t.Errorf("without a CA: %v, %v; want plaintext", plain, err)
	}
}

func TestYAMLReadsBackAsTheSameBootstrap(t *testing.T) {
	b, err := Render(Options{Service: "payments", XDSAddr: "hopguard:18000", Region: "eu-west-1", Zone: "a"})
	if err != nil {
		t.Fatal(err)
	}
	y, err := YAML(b)
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatal(err)
	}
	var back bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(j, &back); err != nil {
		t.Fatalf("the YAML is not a Bootstrap: %v\n%s", err, y)
	}
	if err := back.ValidateAll(); err != nil {
		t.Errorf("read back, ValidateAll: %v", err)
	}
	if diff := cmp.Diff(&back, b, protocmp.Transform()); diff != "" {
		t.Errorf("read back (-got +want):\n%s", diff)
	}
}

// TestGolden pins the YAML users paste into Envoy. The golden file is also
// what docs/getting-started-envoy.md shows.
func TestGolden(t *testing.T) {
	b, err := Render(Options{Service: "payments", XDSAddr: "127.0.0.1:18000", Region: "eu-west-1", Zone: "a"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := YAML(b)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "payments.yaml")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./controlplane/bootstrap -update)", err)
	}
	if diff := cmp.Diff(string(got), string(want)); diff != "" {
		t.Errorf("%s differs (-got +want); run go test ./controlplane/bootstrap -update:\n%s", path, diff)
	}
}
