// Package xds serves the control plane's configuration to data planes over
// xDS v3 (state of the world, over gRPC, with go-control-plane).
//
// Every node gets one snapshot, rendered from the current IR for the node's
// service (Node.cluster) and flavor (Envoy sidecar or proxyless gRPC). Nodes
// of the same service and flavor share one rendering. A snapshot's version is
// a hash of its resources, so it is the same on every replica and after
// every restart, and a node's acknowledged version says exactly what it runs.
//
// The server tracks ACKs and NACKs per node and resource type, and keeps a
// NACKed version from being sent to that node again until the configuration
// changes (see nackGuard).
package xds

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/controlplane/metrics"
	"github.com/hopguard/hopguard/controlplane/translate"
)

// RenderFunc renders what a node of service with the given flavor receives.
// It must be safe for concurrent use and must not modify m.
type RenderFunc func(m *ir.Mesh, service string, flavor translate.Flavor) (*translate.Resources, error)

// Options configure a Server. The zero value is usable.
type Options struct {
	// Logger receives the server's logs (default: no logging).
	Logger *zap.Logger
	// Metrics records pushes, NACKs and node states (default: discarded).
	Metrics *metrics.ControlPlane
	// Render renders a node's resources (default: translate.Translate with
	// zero translate.Options). With the default, an update re-renders only
	// the keys whose inputs (translate.Inputs) changed; a custom Render is
	// called for every key on every update, since what it reads is unknown.
	Render RenderFunc
	// Now is the clock for node timestamps (default time.Now).
	Now func() time.Time
	// DriftGrace is how long a connected node may take to acknowledge the
	// version it was sent before it counts as drifted (default
	// DefaultDriftGrace).
	DriftGrace time.Duration
	// ForgetAfter is how long a disconnected node's status and snapshot are
	// kept (default DefaultForgetAfter): node ids change with every
	// restarted pod, so they must not be kept for ever.
	ForgetAfter time.Duration
}

// DefaultForgetAfter is the default of Options.ForgetAfter.
const DefaultForgetAfter = 10 * time.Minute

// DefaultDriftGrace is the default of Options.DriftGrace.
const DefaultDriftGrace = 30 * time.Second

// Server is an xDS server over one snapshot cache. It is safe for
// concurrent use.
type Server struct {
	log     *zap.Logger
	metrics *metrics.ControlPlane
	render  RenderFunc
	// reuse is true when render is translate's: renderings whose inputs
	// did not change are kept across updates.
	reuse bool
	now   func() time.Time
	// driftGrace and forgetAfter are the Options, defaulted.
	driftGrace  time.Duration
	forgetAfter time.Duration
	cache       cachev3.SnapshotCache
	xds         serverv3.Server
	// endStreams cancels the context the xDS streams run under.
	endStreams context.CancelFunc

	// quarantine is the served quarantine (nil: none evaluated yet).
	quarantine atomic.Pointer[quarantineState]

	// updateMu serialises Update so renders can run outside mu.
	updateMu sync.Mutex

	// mu guards everything below. Lock order: mu before the cache's own
	// lock (SetSnapshot is called with mu held; the cache never calls back).
	mu       sync.Mutex
	mesh     *ir.Mesh
	rendered map[renderKey]*rendering
	nodes    map[string]*node
	streams  map[int64]*stream
}

// rendering is one rendered snapshot, shared by the nodes of a renderKey,
// with the inputs it was rendered from.
type rendering struct {
	snap    *cachev3.Snapshot
	version string
	inputs  renderInputs
}

// stream is the server's view of one xDS stream.
type stream struct {
	// nodeID is set by the stream's first request.
	nodeID string
	// sent maps a type URL to the nonce and version of the last response of
	// that type, so a NACK can name the version it rejects.
	sent map[string]sentResponse
}

type sentResponse struct {
	nonce, version string
}

// New returns a Server with no configuration: nodes may connect and are
// answered once Update has been called.
func New(opts Options) *Server {
	s := &Server{
		log:      opts.Logger,
		metrics:  opts.Metrics,
		render:   opts.Render,
		now:      opts.Now,
		rendered: map[renderKey]*rendering{},
		nodes:    map[string]*node{},
		streams:  map[int64]*stream{},
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.metrics == nil {
		s.metrics = metrics.Discard()
	}
	if s.render == nil {
		s.reuse = true
		s.render = func(m *ir.Mesh, service string, flavor translate.Flavor) (*translate.Resources, error) {
			return translate.Translate(m, service, flavor, translate.Options{})
		}
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.driftGrace = opts.DriftGrace
	if s.driftGrace <= 0 {
		s.driftGrace = DefaultDriftGrace
	}
	s.forgetAfter = opts.ForgetAfter
	if s.forgetAfter <= 0 {
		s.forgetAfter = DefaultForgetAfter
	}
	// Drift depends on time as well as on events: ACK, NACK, Update and
	// stream events recount a node at once, and every scrape re-evaluates
	// all nodes first, so no goroutine is needed to notice a grace period
	// running out.
	s.metrics.SetNodesRefresh(s.recountAll)
	s.metrics.SetDriftSource(s.drift)
	// ads=false: with ads=true the cache waits for a request naming every
	// resource of a type, and grpc-go asks for one listener at a time.
	s.cache = cachev3.NewSnapshotCache(false, cachev3.IDHash{}, s.log.Sugar())
	// The go-control-plane server keeps this context; cancelling it (Close)
	// ends every stream, which grpc.Server.GracefulStop waits for.
	ctx, cancel := context.WithCancel(context.Background())
	s.endStreams = cancel
	s.xds = serverv3.NewServer(ctx, &nackGuard{inner: s.cache, s: s}, callbacks{s})
	return s
}

// Close ends every open xDS stream and every stream opened later. Call it
// before grpc.Server.GracefulStop: xDS streams never end on their own, so a
// graceful stop would otherwise wait for its deadline. Clients reconnect
// (to this or another replica). Close is idempotent.
func (s *Server) Close() {
	s.endStreams()
}

// Register registers the aggregated (ADS) and the per-type LDS, RDS, CDS
// and EDS services on g.
func (s *Server) Register(g *grpc.Server) {
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, s.xds)
	listenerservice.RegisterListenerDiscoveryServiceServer(g, s.xds)
	routeservice.RegisterRouteDiscoveryServiceServer(g, s.xds)
	clusterservice.RegisterClusterDiscoveryServiceServer(g, s.xds)
	endpointservice.RegisterEndpointDiscoveryServiceServer(g, s.xds)
}

// Update makes m the served configuration: it renders a snapshot for every
// known node (once per service and flavor) and remembers m for nodes that
// connect later. It is all or nothing for connected nodes: when rendering
// fails for any of them, nothing changes and the errors are returned.
// Disconnected nodes whose rendering fails lose their snapshot instead (they
// get one rendered when they reconnect), so a node that left cannot block
// every later update. m must not be modified afterwards.
func (s *Server) Update(m *ir.Mesh) error {
	if m == nil {
		return errors.New("xds: update with nil mesh")
	}
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	return s.updateLocked(m)
}

// updateLocked is Update with updateMu held.
func (s *Server) updateLocked(m *ir.Mesh) error {
	s.mu.Lock()
	s.forgetLocked(s.now())
	required, optional := s.nodeKeysLocked()
	// The renderings in force: a key whose inputs did not change keeps its
	// own (a copy, since new nodes add to s.rendered while rendering runs).
	prev := maps.Clone(s.rendered)
	s.mu.Unlock()

	rendered := map[renderKey]*rendering{}
	if err := s.renderInto(rendered, prev, m, required, optional); err != nil {
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	// Nodes that connected while rendering ran outside the lock.
	required, optional = s.nodeKeysLocked()
	if err := s.renderInto(rendered, s.rendered, m, required, optional); err != nil {
		return err
	}
	s.mesh = m
	s.rendered = rendered
	var errs []error
	for _, n := range s.nodes {
		r := rendered[n.key]
		if r == nil {
			s.cache.ClearSnapshot(n.status.ID)
			n.status.Expected = ""
			s.recountLocked(n)
			continue
		}
		if err := s.setSnapshotLocked(n, r); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// renderInto renders the keys not yet in rendered, on up to GOMAXPROCS
// goroutines (translation and versioning only read the mesh). A key whose
// rendering in prev was made from equal inputs keeps it instead: a change
// to one service re-renders only the nodes that see that service. Failures
// of required keys are returned, in key order; failures of optional keys
// leave them out.
func (s *Server) renderInto(rendered, prev map[renderKey]*rendering, m *ir.Mesh, required, optional []renderKey) error {
	type job struct {
		key      renderKey
		required bool
		r        *rendering
		err      error
	}
	var jobs []job
	for _, k := range required {
		if rendered[k] == nil {
			jobs = append(jobs, job{key: k, required: true})
		}
	}
	for _, k := range optional {
		if rendered[k] == nil {
			jobs = append(jobs, job{key: k})
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(jobs)) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(jobs)); i = next.Add(1) - 1 {
				jobs[i].r, jobs[i].err = s.renderOrReuse(m, jobs[i].key, prev[jobs[i].key])
			}
		})
	}
	wg.Wait()
	var errs []error
	for _, j := range jobs {
		switch {
		case j.err == nil:
			rendered[j.key] = j.r
		case j.required:
			errs = append(errs, j.err)
		default:
			s.log.Info("xds: dropping snapshot of disconnected nodes", zap.String("service", j.key.service), zap.Error(j.err))
		}
	}
	return errors.Join(errs...)
}

// Nodes returns the status of every node seen since the server started,
// connected or not, sorted by ID.
func (s *Server) Nodes() []NodeStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]NodeStatus, 0, len(s.nodes))
	q := s.quarantine.Load()
	for _, n := range s.nodes {
		st := n.snapshot(s.now(), s.driftGrace)
		st.Quarantined = n.endpoint != "" && q.drains(n.status.Service, n.endpoint)
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b NodeStatus) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// nodeKeysLocked returns the distinct render keys of connected nodes
// (required) and those used only by disconnected nodes (optional).
func (s *Server) nodeKeysLocked() (required, optional []renderKey) {
	connected := map[renderKey]bool{}
	for _, n := range s.nodes {
		if n.streams > 0 {
			connected[n.key] = true
		}
	}
	seen := map[renderKey]bool{}
	for _, n := range s.nodes {
		if seen[n.key] {
			continue
		}
		seen[n.key] = true
		if connected[n.key] {
			required = append(required, n.key)
		} else {
			optional = append(optional, n.key)
		}
	}
	return required, optional
}

// renderOrReuse returns prev, with the new mesh's inputs, when it was
// rendered from inputs equal to k's in m; else it renders k.
func (s *Server) renderOrReuse(m *ir.Mesh, k renderKey, prev *rendering) (*rendering, error) {
	if prev != nil && s.reuse {
		if in := s.inputsOf(m, k); in.equal(&prev.inputs) {
			return &rendering{snap: prev.snap, version: prev.version, inputs: in}, nil
		}
	}
	return s.renderKey(m, k)
}

// renderKey renders and versions one snapshot.
func (s *Server) renderKey(m *ir.Mesh, k renderKey) (*rendering, error) {
	inputs := s.inputsOf(m, k)
	res, err := s.render(m, k.service, k.flavor)
	if err != nil {
		return nil, fmt.Errorf("xds: render %s for service %q: %w", flavorName(k.flavor), k.service, err)
	}
	if res == nil {
		return nil, fmt.Errorf("xds: render %s for service %q: no resources", flavorName(k.flavor), k.service)
	}
	if q := inputs.quarantine; q != nil {
		res = applyQuarantine(res, q.drained)
	}
	version, err := Version(res)
	if err != nil {
		return nil, fmt.Errorf("xds: service %q: %w", k.service, err)
	}
	snap, err := cachev3.NewSnapshot(version, map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: res.Listeners,
		resourcev3.RouteType:    res.Routes,
		resourcev3.ClusterType:  res.Clusters,
		resourcev3.EndpointType: res.Endpoints,
	})
	if err != nil {
		return nil, fmt.Errorf("xds: snapshot for service %q: %w", k.service, err)
	}
	// Consistent does not follow ApiListener → RDS references and would
	// report a false mismatch for proxyless snapshots.
	if k.flavor == translate.Envoy {
		if err := snap.Consistent(); err != nil {
			return nil, fmt.Errorf("xds: inconsistent envoy snapshot for service %q: %w", k.service, err)
		}
	}
	return &rendering{snap: snap, version: version, inputs: inputs}, nil
}

// ensureSnapshotLocked gives n the snapshot of the current mesh for its key,
// rendering it when no node of that key has been served yet.
func (s *Server) ensureSnapshotLocked(n *node) error {
	if s.mesh == nil {
		return nil
	}
	r := s.rendered[n.key]
	if r == nil {
		var err error
		if r, err = s.renderKey(s.mesh, n.key); err != nil {
			return err
		}
		s.rendered[n.key] = r
	}
	return s.setSnapshotLocked(n, r)
}

func (s *Server) setSnapshotLocked(n *node, r *rendering) error {
	if n.status.Expected == r.version {
		return nil
	}
	if err := s.cache.SetSnapshot(context.Background(), n.status.ID, r.snap); err != nil {
		return fmt.Errorf("xds: set snapshot of node %q: %w", n.status.ID, err)
	}
	// A node in sync starts its grace period now; a node already behind
	// keeps the time it fell behind, or a stream of new versions (e.g. a
	// quarantine that follows its own drift) would keep it from ever
	// counting as drifted.
	if n.status.Expected == "" || n.state() == metrics.StateAcked {
		n.expectedSince = s.now()
	}
	n.status.Expected = r.version
	s.recountLocked(n)
	return nil
}

// drift reports every connected node's drift for hopguard_manifest_drift.
// A node's series goes when its last stream closes: node ids change with
// every restarted pod, and a gone pod's drift would otherwise alert forever.
func (s *Server) drift() []metrics.NodeDrift {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make([]metrics.NodeDrift, 0, len(s.nodes))
	for _, n := range s.nodes {
		if n.streams == 0 {
			continue
		}
		out = append(out, metrics.NodeDrift{
			Node: n.status.ID, Service: n.status.Service, Region: n.status.Locality.Region,
			Drifted: n.drifted(now, s.driftGrace),
		})
	}
	return out
}

// recountAll re-evaluates every node's state in hopguard_xds_nodes: the
// scrape-time refresh that turns pending nodes into drifted ones.
func (s *Server) recountAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.nodes {
		s.recountLocked(n)
	}
}

// recountLocked moves n to its current state in hopguard_xds_nodes.
// Disconnected nodes are not counted.
func (s *Server) recountLocked(n *node) {
	want := ""
	if n.streams > 0 {
		want = n.countedState(s.now(), s.driftGrace)
	}
	if want == n.counted {
		return
	}
	if n.counted != "" {
		s.metrics.XDSNodes.WithLabelValues(n.counted).Dec()
	}
	if want != "" {
		s.metrics.XDSNodes.WithLabelValues(want).Inc()
	}
	n.counted = want
}

// forgetLocked drops the status and snapshot of nodes disconnected for
// longer than forgetAfter. It runs when streams open and on Update, so its
// cost follows the churn that makes it necessary.
func (s *Server) forgetLocked(now time.Time) {
	for id, n := range s.nodes {
		if n.streams == 0 && !n.disconnectedAt.IsZero() && now.Sub(n.disconnectedAt) > s.forgetAfter {
			s.cache.ClearSnapshot(id)
			delete(s.nodes, id)
		}
	}
}
