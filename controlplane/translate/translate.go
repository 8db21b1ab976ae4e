// Package translate renders the IR of one node's view of the mesh as xDS
// resources, for an Envoy sidecar or for a proxyless gRPC client.
//
// One file per feature: names.go (every name), listeners.go, httpfilters.go
// (filter order), routes.go (matching), retry.go, timeouts.go, extproc.go,
// clusters.go (with the retry budget), endpoints.go, proxyless.go and
// yaml.go (rendering). Translation is a pure function of its inputs: the
// same IR and options give byte-identical resources on every host.
package translate

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/hopguard/hopguard/controlplane/ir"
)

// Flavor is the kind of data plane a node runs.
type Flavor int

// Flavors.
const (
	// Envoy is an Envoy sidecar: inbound and outbound listeners.
	Envoy Flavor = iota
	// Proxyless is a grpc-go client using xds:/// targets.
	Proxyless
)

// String returns "envoy" or "proxyless".
func (f Flavor) String() string {
	switch f {
	case Envoy:
		return "envoy"
	case Proxyless:
		return "proxyless"
	default:
		return fmt.Sprintf("Flavor(%d)", int(f))
	}
}

// Default listener ports of an Envoy sidecar.
const (
	DefaultInboundPort  uint32 = 15006
	DefaultOutboundPort uint32 = 15001
)

// Options tune rendering; the zero value gives the documented defaults.
type Options struct {
	// InboundPort is the sidecar's inbound listener port (default 15006).
	InboundPort uint32
	// OutboundPort is the sidecar's outbound listener port (default 15001).
	OutboundPort uint32
}

// withDefaults returns o with zero fields set to their defaults.
func (o Options) withDefaults() Options {
	if o.InboundPort == 0 {
		o.InboundPort = DefaultInboundPort
	}
	if o.OutboundPort == 0 {
		o.OutboundPort = DefaultOutboundPort
	}
	return o
}

// Resources is what one node receives, each slice sorted by resource name.
// Every resource has passed ValidateAll.
type Resources struct {
	Listeners []types.Resource
	Routes    []types.Resource
	Clusters  []types.Resource
	Endpoints []types.Resource
}

// translator carries one Translate call's inputs and collects its output.
type translator struct {
	mesh   *ir.Mesh
	node   string
	self   *ir.Service // nil when the mesh does not declare node
	deps   []*ir.Service
	flavor Flavor
	opts   Options

	listeners, routes, clusters, endpoints []named
	errs                                   []error

	// Built once per call and shared by the node's resources.
	filters       []*hcmv3.HttpFilter
	insecureCreds *anypb.Any
}

// named is a resource with its name, for sorting and error messages.
type named struct {
	name string
	res  types.Resource
}

// Translate renders what a node of service (Node.cluster) gets. A service
// name that the mesh does not declare gets outbound config for every service.
// m must have passed Validate. All problems are reported at once, joined,
// each prefixed "translate:".
func Translate(m *ir.Mesh, service string, flavor Flavor, opts Options) (*Resources, error) {
	if m == nil {
		return nil, errors.New("translate: nil mesh")
	}
	if service == "" {
		return nil, errors.New("translate: empty service name")
	}
	t := &translator{
		mesh:   m,
		node:   service,
		self:   m.Service(service),
		flavor: flavor,
		opts:   opts.withDefaults(),
	}
	deps, err := dependencies(m, t.self)
	if err != nil {
		return nil, err
	}
	t.deps = deps
	switch flavor {
	case Envoy:
		t.envoy()
	case Proxyless:
		t.proxyless()
	default:
		return nil, fmt.Errorf("translate: unknown flavor %v", flavor)
	}
	return t.finish()
}

// Inputs returns what Translate reads of m for service besides m.ExtProc:
// the service itself (nil when m does not declare it) and the services its
// nodes call. Translate's output for (m, service, flavor, opts) is a
// function of m.ExtProc, self and deps alone; the xDS server relies on it
// to keep a rendering whose inputs did not change. Reading any other part
// of the mesh in Translate must be reflected here.
func Inputs(m *ir.Mesh, service string) (self *ir.Service, deps []*ir.Service, err error) {
	if m == nil {
		return nil, nil, errors.New("translate: nil mesh")
	}
	self = m.Service(service)
	deps, err = dependencies(m, self)
	return self, deps, err
}

// dependencies returns the services a node of self calls: its dependsOn, or
// every service when self is nil (an undeclared caller).
func dependencies(m *ir.Mesh, self *ir.Service) ([]*ir.Service, error) {
	if self == nil {
		return m.Services, nil
	}
	deps := make([]*ir.Service, 0, len(self.DependsOn))
	var errs []error
	for _, name := range self.DependsOn {
		d := m.Service(name)
		if d == nil {
			errs = append(errs, fmt.Errorf("translate: service %q depends on unknown service %q", self.Name, name))
			continue
		}
		deps = append(deps, d)
	}
	return deps, errors.Join(errs...)
}

// envoy renders a sidecar's resources.
func (t *translator) envoy() {
	if t.self != nil {
		t.addListener(ListenerInbound, t.envoyListener(ListenerInbound, t.opts.InboundPort, RouteConfigInbound(t.self.Name)))
		t.addRoute(RouteConfigInbound(t.self.Name), t.inboundRouteConfig())
		t.addCluster(ClusterLocal(t.self.Name), localCluster(t.self))
	}
	t.addListener(ListenerOutbound, t.envoyListener(ListenerOutbound, t.opts.OutboundPort, RouteConfigOutbound(t.node)))
	t.addRoute(RouteConfigOutbound(t.node), t.outboundRouteConfig())
	for _, d := range t.deps {
		t.addUpstream(d)
	}
	if t.mesh.ExtProc.Enabled {
		c, err := extProcCluster(t.mesh.ExtProc)
		t.fail(err)
		t.addCluster(ClusterExtProc, c)
	}
}

// addUpstream adds dependency d's cluster and, for EDS clusters, its endpoints.
func (t *translator) addUpstream(d *ir.Service) {
	name := ClusterOutbound(d.Name)
	t.addCluster(name, t.outboundCluster(d))
	if d.DNSHost == "" {
		t.endpoints = append(t.endpoints, named{name, loadAssignment(name, d.Endpoints)})
	}
}

func (t *translator) addListener(name string, r types.Resource) {
	t.listeners = append(t.listeners, named{name, r})
}

func (t *translator) addRoute(name string, r types.Resource) {
	t.routes = append(t.routes, named{name, r})
}

func (t *translator) addCluster(name string, r types.Resource) {
	t.clusters = append(t.clusters, named{name, r})
}

// fail records err (nil is ignored).
func (t *translator) fail(err error) {
	if err != nil {
		t.errs = append(t.errs, err)
	}
}

// validator is implemented by every generated xDS message.
type validator interface {
	ValidateAll() error
}

// finish validates and sorts everything produced.
func (t *translator) finish() (*Resources, error) {
	out := &Resources{}
	for _, sec := range []struct {
		kind string
		in   []named
		out  *[]types.Resource
	}{
		{"listener", t.listeners, &out.Listeners},
		{"route configuration", t.routes, &out.Routes},
		{"cluster", t.clusters, &out.Clusters},
		{"cluster load assignment", t.endpoints, &out.Endpoints},
	} {
		slices.SortStableFunc(sec.in, func(a, b named) int { return cmp.Compare(a.name, b.name) })
		for i, n := range sec.in {
			if i > 0 && sec.in[i-1].name == n.name {
				t.errs = append(t.errs, fmt.Errorf("translate: %s %q produced twice", sec.kind, n.name))
			}
			v, ok := n.res.(validator)
			if !ok {
				t.errs = append(t.errs, fmt.Errorf("translate: %s %q: %T has no ValidateAll", sec.kind, n.name, n.res))
				continue
			}
			if err := v.ValidateAll(); err != nil {
				t.errs = append(t.errs, fmt.Errorf("translate: %s %q: %w", sec.kind, n.name, err))
			}
			*sec.out = append(*sec.out, n.res)
		}
	}
	if err := errors.Join(t.errs...); err != nil {
		return nil, err
	}
	return out, nil
}
