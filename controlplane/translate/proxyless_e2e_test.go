package translate

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"

	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/policy"
)

// failingHealth answers every Check with UNAVAILABLE and counts the calls.
type failingHealth struct {
	healthpb.UnimplementedHealthServer
	calls atomic.Int32
}

func (f *failingHealth) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	f.calls.Add(1)
	return nil, status.Error(codes.Unavailable, "always failing")
}

// serve starts srv on a loopback port and stops it at cleanup.
func serve(t *testing.T, srv *grpc.Server) *net.TCPAddr {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().(*net.TCPAddr)
}

// TestProxyless_GRPCGoAcceptsAndObeys feeds a proxyless node's resources to
// a real grpc-go xDS client: it must accept them (a NACK would leave the
// call failing to resolve) and retry exactly as the budget's authority
// says. ext_proc stays disabled here: grpc-go's client filter needs an
// environment flag at process start.
func TestProxyless_GRPCGoAcceptsAndObeys(t *testing.T) {
	tests := []struct {
		authority policy.Authority
		want      int32
	}{
		{policy.AuthorityMesh, 3},
		{policy.AuthorityApp, 1},
		{policy.AuthorityNone, 1},
	}
	for _, tt := range tests {
		t.Run(string(tt.authority), func(t *testing.T) {
			backend := &failingHealth{}
			bsrv := grpc.NewServer()
			healthpb.RegisterHealthServer(bsrv, backend)
			baddr := serve(t, bsrv)

			r := testRoute("shop/check", "payments", policy.Match{GRPCService: "grpc.health.v1.Health", GRPCMethod: "Check"}, tt.authority, 3)
			r.Policy.Retry.On = []string{"unavailable"}
			r.Policy.Retry.PerTryTimeout = 0
			r.Policy.Retry.BackoffBase, r.Policy.Retry.BackoffMax = time.Millisecond, 5*time.Millisecond
			r.Digest = r.Policy.Digest()
			m := &ir.Mesh{Services: []*ir.Service{{
				Name: "payments", Namespace: "shop", GRPC: true, Port: uint32(baddr.Port),
				Endpoints: []ir.Endpoint{{Host: "127.0.0.1", Port: uint32(baddr.Port), Weight: 1}},
				Routes:    []*ir.Route{r},
			}}}
			if err := m.Validate(); err != nil {
				t.Fatal(err)
			}
			res := translate(t, m, "client", Proxyless)

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cache := cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
			snap, err := cachev3.NewSnapshot("1", map[resource.Type][]types.Resource{
				resource.ListenerType: res.Listeners, resource.RouteType: res.Routes,
				resource.ClusterType: res.Clusters, resource.EndpointType: res.Endpoints,
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := cache.SetSnapshot(ctx, "node-1", snap); err != nil {
				t.Fatal(err)
			}
			xsrv := grpc.NewServer()
			discoveryv3.RegisterAggregatedDiscoveryServiceServer(xsrv, serverv3.NewServer(ctx, cache, nil))
			xaddr := serve(t, xsrv)

			bootstrap := fmt.Sprintf(`{"xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
				"node": {"id": "node-1", "cluster": "client"}}`, xaddr.String())
			rb, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
			if err != nil {
				t.Fatal(err)
			}
			cc, err := grpc.NewClient("xds:///payments", grpc.WithResolvers(rb), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("Check: got %v, want UNAVAILABLE from the backend", err)
			}
			if got := backend.calls.Load(); got != tt.want {
				t.Errorf("backend saw %d attempts, want %d", got, tt.want)
			}
		})
	}
}
