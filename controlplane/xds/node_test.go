package xds

import (
	"errors"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/hopguard/hopguard/controlplane/translate"
)

func withFlavor(n *corev3.Node, flavor string) *corev3.Node {
	n.Metadata = &structpb.Struct{Fields: map[string]*structpb.Value{FlavorMetadataKey: structpb.NewStringValue(flavor)}}
	return n
}

func TestIdentify_Success(t *testing.T) {
	tests := []struct {
		name string
		node *corev3.Node
		want identity
	}{
		{
			name: "envoy user agent",
			node: &corev3.Node{Id: "a", Cluster: "payments", UserAgentName: "envoy",
				Locality: &corev3.Locality{Region: "r", Zone: "z", SubZone: "s"}},
			want: identity{id: "a", key: renderKey{"payments", translate.Envoy}, locality: Locality{"r", "z", "s"}},
		},
		{
			name: "grpc-go user agent",
			node: &corev3.Node{Id: "b", Cluster: "ledger", UserAgentName: "gRPC Go"},
			want: identity{id: "b", key: renderKey{"ledger", translate.Proxyless}},
		},
		{
			name: "unknown user agent defaults to envoy",
			node: &corev3.Node{Id: "c", Cluster: "ledger"},
			want: identity{id: "c", key: renderKey{"ledger", translate.Envoy}},
		},
		{
			name: "metadata overrides grpc user agent",
			node: withFlavor(&corev3.Node{Id: "d", Cluster: "ledger", UserAgentName: "gRPC Go"}, "envoy"),
			want: identity{id: "d", key: renderKey{"ledger", translate.Envoy}},
		},
		{
			name: "metadata overrides envoy user agent",
			node: withFlavor(&corev3.Node{Id: "e", Cluster: "ledger", UserAgentName: "envoy"}, "proxyless"),
			want: identity{id: "e", key: renderKey{"ledger", translate.Proxyless}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := identify(tc.node)
			if err != nil {
				t.Fatalf("identify: %v", err)
			}
			if diff := cmp.Diff(got, tc.want, cmp.AllowUnexported(identity{}, renderKey{})); diff != "" {
				t.Errorf("identity (-got +want):\n%s", diff)
			}
		})
	}
}

func TestIdentify_Errors(t *testing.T) {
	tests := []struct {
		name string
		node *corev3.Node
	}{
		{"nil node", nil},
		{"no id", &corev3.Node{Cluster: "payments"}},
		{"no cluster", &corev3.Node{Id: "a"}},
		{"bad flavor", withFlavor(&corev3.Node{Id: "a", Cluster: "payments"}, "istio")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := identify(tc.node); !errors.Is(err, ErrBadNode) {
				t.Errorf("identify = %v, want ErrBadNode", err)
			}
		})
	}
}

func TestTypeNames(t *testing.T) {
	got := map[string][2]string{}
	for _, url := range []string{
		"type.googleapis.com/envoy.config.listener.v3.Listener",
		"type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
		"type.googleapis.com/envoy.service.runtime.v3.Runtime",
	} {
		got[url] = [2]string{typeName(url), metricType(url)}
	}
	want := map[string][2]string{
		"type.googleapis.com/envoy.config.listener.v3.Listener":              {"listener", "listener"},
		"type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment": {"endpoint", "endpoint"},
		"type.googleapis.com/envoy.service.runtime.v3.Runtime":               {"type.googleapis.com/envoy.service.runtime.v3.Runtime", "other"},
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("type names (-got +want):\n%s", diff)
	}
}
