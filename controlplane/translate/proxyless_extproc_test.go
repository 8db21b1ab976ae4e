package translate

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/xds"

	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/policy"
)

// extProcFlag turns grpc-go's client ext_proc filter on; grpc-go reads it
// once at process start, so the test runs itself again with it set.
const extProcFlag = "GRPC_EXPERIMENTAL_XDS_EXT_PROC_ON_CLIENT"

// recordingProcessor continues every request and records the stream
// metadata of each Process stream.
type recordingProcessor struct {
	extprocsvcv3.UnimplementedExternalProcessorServer
	mu      sync.Mutex
	streams []map[string]string
}

func (p *recordingProcessor) Process(stream extprocsvcv3.ExternalProcessor_ProcessServer) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	seen := map[string]string{}
	for _, k := range []string{MetadataRoute, MetadataPolicy, MetadataSide} {
		seen[k] = strings.Join(md.Get(k), ",")
	}
	p.mu.Lock()
	p.streams = append(p.streams, seen)
	p.mu.Unlock()
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		resp := &extprocsvcv3.ProcessingResponse{}
		switch req.GetRequest().(type) {
		case *extprocsvcv3.ProcessingRequest_RequestHeaders:
			resp.Response = &extprocsvcv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocsvcv3.HeadersResponse{}}
		case *extprocsvcv3.ProcessingRequest_ResponseHeaders:
			resp.Response = &extprocsvcv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocsvcv3.HeadersResponse{}}
		default:
			continue
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// healthy answers every Check with SERVING and List with nothing.
type healthy struct {
	healthpb.UnimplementedHealthServer
}

func (healthy) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (healthy) List(context.Context, *healthpb.HealthListRequest) (*healthpb.HealthListResponse, error) {
	return &healthpb.HealthListResponse{}, nil
}

// TestProxyless_GRPCGoExtProc: grpc-go accepts the proxyless ext_proc
// filter (google_grpc, insecure credentials), sends the per-route
// override's initial metadata on a budgeted route, and skips ext_proc on
// the catch-all route.
func TestProxyless_GRPCGoExtProc(t *testing.T) {
	if os.Getenv(extProcFlag) != "true" {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestProxyless_GRPCGoExtProc$", "-test.v")
		cmd.Env = append(os.Environ(), extProcFlag+"=true")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestProxyless_GRPCGoExtProc") {
			t.Fatalf("child run with %s=true failed: %v\n%s", extProcFlag, err, out)
		}
		return
	}

	proc := &recordingProcessor{}
	psrv := grpc.NewServer()
	extprocsvcv3.RegisterExternalProcessorServer(psrv, proc)
	paddr := serve(t, psrv)
	bsrv := grpc.NewServer()
	healthpb.RegisterHealthServer(bsrv, healthy{})
	baddr := serve(t, bsrv)

	r := testRoute("shop/check", "payments", policy.Match{GRPCService: "grpc.health.v1.Health", GRPCMethod: "Check"}, policy.AuthorityNone, 1)
	m := &ir.Mesh{
		ExtProc: ir.ExtProc{Enabled: true, Address: paddr.String(), Timeout: time.Second},
		Services: []*ir.Service{{
			Name: "payments", Namespace: "shop", GRPC: true, Port: uint32(baddr.Port),
			Endpoints: []ir.Endpoint{{Host: "127.0.0.1", Port: uint32(baddr.Port), Weight: 1}},
			Routes:    []*ir.Route{r},
		}},
	}
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

	// trusted_xds_server lets the control plane name the ext_proc target
	// and its credentials (gRFC A102).
	bootstrap := fmt.Sprintf(`{"xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}],
		"server_features": ["xds_v3", "trusted_xds_server"]}], "node": {"id": "node-1", "cluster": "client"}}`, xaddr.String())
	rb, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///payments", grpc.WithResolvers(rb), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := healthpb.NewHealthClient(cc)
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("Check through ext_proc: %v", err)
	}
	if _, err := client.List(ctx, &healthpb.HealthListRequest{}); err != nil {
		t.Fatalf("List on the catch-all route: %v", err)
	}
	proc.mu.Lock()
	defer proc.mu.Unlock()
	want := []map[string]string{{MetadataRoute: "shop/check", MetadataPolicy: r.Digest, MetadataSide: "outbound"}}
	if diff := cmp.Diff(proc.streams, want); diff != "" {
		t.Errorf("ext_proc streams (-got +want):\n%s", diff)
	}
}
