package cpscale

import (
	"context"
	"errors"
	"fmt"
	"net"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"

	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/controlplane/translate"
	"github.com/hopguard/hopguard/controlplane/xds"
)

// snapshots are the pre-built Envoy-flavor snapshots of a mesh, by service.
type snapshots struct {
	mesh      *ir.Mesh
	rendered  map[string]*translate.Resources
	byService map[string]*cachev3.Snapshot
	versions  map[string]string
	resources int
}

// buildSnapshots renders, versions and wraps every service's resources the
// way hopguard's xDS server does (translate.Translate, xds.Version).
func buildSnapshots(m *ir.Mesh) (*snapshots, error) {
	s := &snapshots{mesh: m, rendered: map[string]*translate.Resources{}, byService: map[string]*cachev3.Snapshot{}, versions: map[string]string{}}
	for _, svc := range m.Services {
		res, err := translate.Translate(m, svc.Name, translate.Envoy, translate.Options{})
		if err != nil {
			return nil, fmt.Errorf("cpscale: %w", err)
		}
		v, err := xds.Version(res)
		if err != nil {
			return nil, fmt.Errorf("cpscale: %w", err)
		}
		snap, err := cachev3.NewSnapshot(v, map[resourcev3.Type][]types.Resource{
			resourcev3.ListenerType: res.Listeners,
			resourcev3.RouteType:    res.Routes,
			resourcev3.ClusterType:  res.Clusters,
			resourcev3.EndpointType: res.Endpoints,
		})
		if err != nil {
			return nil, fmt.Errorf("cpscale: %w", err)
		}
		s.rendered[svc.Name] = res
		s.byService[svc.Name] = snap
		s.versions[svc.Name] = v
		s.resources += len(res.Listeners) + len(res.Routes) + len(res.Clusters) + len(res.Endpoints)
	}
	return s, nil
}

// xdsServer is a server under test: hopguard's or the bare one.
type xdsServer interface {
	// addr is the gRPC listen address.
	addr() string
	// set makes the configuration of next the served one for the nodes
	// (node id → service); for hopguard the mesh, for bare the snapshots.
	set(ctx context.Context, m *ir.Mesh, snaps *snapshots, nodes map[string]string) error
	// stop ends the streams and the server.
	stop() error
}

// grpcServing is a grpc.Server serving on loopback.
type grpcServing struct {
	lis    net.Listener
	gs     *grpc.Server
	served chan error
}

func serveGRPC(gs *grpc.Server) (*grpcServing, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("cpscale: %w", err)
	}
	g := &grpcServing{lis: lis, gs: gs, served: make(chan error, 1)}
	go func() { g.served <- gs.Serve(lis) }()
	return g, nil
}

func (g *grpcServing) addr() string { return g.lis.Addr().String() }

func (g *grpcServing) stopGRPC() error {
	g.gs.Stop()
	if err := <-g.served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("cpscale: serve: %w", err)
	}
	return nil
}

// hopguardServer is controlplane/xds: it renders per service and flavor,
// versions, tracks ACK/NACK and drift per node.
type hopguardServer struct {
	*grpcServing
	x *xds.Server
}

// startHopguard starts hopguard's xDS server serving m. With prebuilt
// set, the server's rendering is replaced by a lookup of the pre-rendered
// resources of those snapshots (by mesh), which isolates the server's own
// cost (versioning, snapshot cache, ACK/NACK and drift bookkeeping) from
// the translator's.
func startHopguard(m *ir.Mesh, prebuilt ...*snapshots) (*hopguardServer, error) {
	var opts xds.Options
	if len(prebuilt) > 0 {
		opts.Render = func(m *ir.Mesh, service string, flavor translate.Flavor) (*translate.Resources, error) {
			for _, p := range prebuilt {
				if p.mesh == m && flavor == translate.Envoy && p.rendered[service] != nil {
					return p.rendered[service], nil
				}
			}
			return nil, fmt.Errorf("cpscale: no pre-rendered %v resources of service %q for this mesh", flavor, service)
		}
	}
	x := xds.New(opts)
	if err := x.Update(m); err != nil {
		return nil, fmt.Errorf("cpscale: %w", err)
	}
	gs := grpc.NewServer()
	x.Register(gs)
	g, err := serveGRPC(gs)
	if err != nil {
		return nil, err
	}
	return &hopguardServer{grpcServing: g, x: x}, nil
}

// set hands the compiled mesh to the server: it renders every connected
// node's service itself (snaps is not used).
func (h *hopguardServer) set(_ context.Context, m *ir.Mesh, _ *snapshots, _ map[string]string) error {
	if err := h.x.Update(m); err != nil {
		return fmt.Errorf("cpscale: %w", err)
	}
	return nil
}

func (h *hopguardServer) stop() error {
	h.x.Close()
	return h.stopGRPC()
}

// bareServer is go-control-plane alone: a snapshot cache (ads=false, as
// hopguard uses) and its server, handed pre-built snapshots per node.
type bareServer struct {
	*grpcServing
	cache  cachev3.SnapshotCache
	cancel context.CancelFunc
}

func startBare() (*bareServer, error) {
	cache := cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	srv := serverv3.NewServer(ctx, cache, nil)
	gs := grpc.NewServer()
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(gs, srv)
	g, err := serveGRPC(gs)
	if err != nil {
		cancel()
		return nil, err
	}
	return &bareServer{grpcServing: g, cache: cache, cancel: cancel}, nil
}

// set gives every node its service's pre-built snapshot.
func (b *bareServer) set(ctx context.Context, _ *ir.Mesh, snaps *snapshots, nodes map[string]string) error {
	for id, svc := range nodes {
		if err := b.cache.SetSnapshot(ctx, id, snaps.byService[svc]); err != nil {
			return fmt.Errorf("cpscale: %w", err)
		}
	}
	return nil
}

func (b *bareServer) stop() error {
	b.cancel()
	return b.stopGRPC()
}
