// Package xdstest provides fixtures for tests of the xDS server and of code
// built on it: a small render function that turns an IR into valid Envoy
// resources without the translator, and a raw ADS client that ACKs or NACKs
// what it receives.
package xdstest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/controlplane/translate"
)

// ErrUnknownService is returned by Render for a service the mesh lacks.
var ErrUnknownService = errors.New("xdstest: unknown service")

// Render renders one listener (HCM with RDS), one route configuration, and
// an EDS cluster plus its endpoints per service of m. The route timeout is
// m.ExtProc.Timeout, so changing it changes the rendered resources. It
// fails for a service that m does not declare, which lets tests provoke
// render errors. Every resource passes ValidateAll.
func Render(m *ir.Mesh, service string, flavor translate.Flavor) (*translate.Resources, error) {
	found := false
	for _, s := range m.Services {
		found = found || s.Name == service
	}
	if !found {
		return nil, fmt.Errorf("%w %q", ErrUnknownService, service)
	}
	ads := &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		return nil, fmt.Errorf("xdstest: %w", err)
	}
	hcm, err := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix:     "outbound",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads, RouteConfigName: "outbound"}},
		HttpFilters:    []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}},
	})
	if err != nil {
		return nil, fmt.Errorf("xdstest: %w", err)
	}
	res := &translate.Resources{}
	res.Listeners = append(res.Listeners, &listenerv3.Listener{
		Name: "outbound",
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 15001},
		}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm},
		}}}},
	})
	vh := &routev3.VirtualHost{Name: "outbound", Domains: []string{"*"}}
	for _, s := range m.Services {
		vh.Routes = append(vh.Routes, &routev3.Route{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/" + s.Name + "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: s.Name},
				Timeout:          durationpb.New(m.ExtProc.Timeout),
			}},
		})
		res.Clusters = append(res.Clusters, &clusterv3.Cluster{
			Name:                 s.Name,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads},
			ConnectTimeout:       durationpb.New(time.Second),
		})
		res.Endpoints = append(res.Endpoints, &endpointv3.ClusterLoadAssignment{
			ClusterName: s.Name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{
					Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: s.Port},
					}},
				}}},
			}}}},
		})
	}
	res.Routes = append(res.Routes, &routev3.RouteConfiguration{Name: "outbound", VirtualHosts: []*routev3.VirtualHost{vh}})
	for _, group := range [][]types.Resource{res.Listeners, res.Routes, res.Clusters, res.Endpoints} {
		for _, r := range group {
			if v, ok := r.(interface{ ValidateAll() error }); ok {
				if err := v.ValidateAll(); err != nil {
					return nil, fmt.Errorf("xdstest: invalid fixture: %w", err)
				}
			}
		}
	}
	return res, nil
}

// Mesh returns a mesh with the named services (ports 9001, 9002, …) and
// the given ext_proc timeout, which Render uses as route timeout.
func Mesh(timeout time.Duration, services ...string) *ir.Mesh {
	m := &ir.Mesh{ExtProc: ir.ExtProc{Timeout: timeout}}
	for i, name := range services {
		m.Services = append(m.Services, &ir.Service{Name: name, Namespace: "default", Port: uint32(9001 + i)})
	}
	return m
}

// Response is one discovery response as a client saw it.
type Response struct {
	TypeURL string
	Version string
	Nonce   string
	// Names are the names of the resources in the response.
	Names []string
	// Resources are the response's resources as sent.
	Resources []*anypb.Any
}

// Client is a raw ADS client: it subscribes to types and answers every
// response with an ACK, or with a NACK when Nack is set. Create it with
// Dial; it is safe for concurrent use.
type Client struct {
	conn   *grpc.ClientConn
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	cancel context.CancelFunc
	node   *corev3.Node
	nack   bool

	sendMu sync.Mutex
	mu     sync.Mutex
	got    []Response
	// accepted is the last ACKed version per type.
	accepted map[string]string
	recvErr  error
	done     chan struct{}
}

// Dial opens an ADS stream to addr as node, in plaintext. With nack set
// the client rejects every response.
func Dial(ctx context.Context, addr string, node *corev3.Node, nack bool) (*Client, error) {
	return DialWith(ctx, addr, node, nack, insecure.NewCredentials())
}

// DialWith is Dial with the given transport credentials (TLS, say).
func DialWith(ctx context.Context, addr string, node *corev3.Node, nack bool, creds credentials.TransportCredentials) (*Client, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("xdstest: dial: %w", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
	if err != nil {
		cancel()
		return nil, errors.Join(fmt.Errorf("xdstest: open stream: %w", err), conn.Close())
	}
	c := &Client{conn: conn, stream: stream, cancel: cancel, node: node, nack: nack,
		accepted: map[string]string{}, done: make(chan struct{})}
	go c.recvLoop()
	return c, nil
}

// Subscribe sends the initial request for a type (names empty = wildcard).
func (c *Client) Subscribe(typeURL string, names ...string) error {
	return c.send(&discoveryv3.DiscoveryRequest{Node: c.node, TypeUrl: typeURL, ResourceNames: names})
}

func (c *Client) send(req *discoveryv3.DiscoveryRequest) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if err := c.stream.Send(req); err != nil {
		return fmt.Errorf("xdstest: send: %w", err)
	}
	return nil
}

func (c *Client) recvLoop() {
	defer close(c.done)
	for {
		resp, err := c.stream.Recv()
		if err != nil {
			c.mu.Lock()
			c.recvErr = err
			c.mu.Unlock()
			return
		}
		r := Response{TypeURL: resp.GetTypeUrl(), Version: resp.GetVersionInfo(), Nonce: resp.GetNonce(), Resources: resp.GetResources()}
		for _, a := range resp.GetResources() {
			r.Names = append(r.Names, resourceName(a))
		}
		c.mu.Lock()
		c.got = append(c.got, r)
		req := &discoveryv3.DiscoveryRequest{TypeUrl: r.TypeURL, ResponseNonce: r.Nonce, VersionInfo: r.Version}
		if c.nack {
			req.VersionInfo = c.accepted[r.TypeURL]
			req.ErrorDetail = &status.Status{Code: 3, Message: "xdstest: rejected version " + r.Version}
		} else {
			c.accepted[r.TypeURL] = r.Version
		}
		c.mu.Unlock()
		if err := c.send(req); err != nil {
			return
		}
	}
}

// resourceName reads the name field of the common resource types.
func resourceName(a *anypb.Any) string {
	m, err := a.UnmarshalNew()
	if err != nil {
		return ""
	}
	if n, ok := m.(interface{ GetName() string }); ok {
		return n.GetName()
	}
	if cla, ok := m.(*endpointv3.ClusterLoadAssignment); ok {
		return cla.GetClusterName()
	}
	return string(proto.MessageName(m).Name())
}

// Responses returns a copy of every response received so far.
func (c *Client) Responses() []Response {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Response(nil), c.got...)
}

// Count returns how many responses of typeURL have arrived.
func (c *Client) Count(typeURL string) int {
	n := 0
	for _, r := range c.Responses() {
		if r.TypeURL == typeURL {
			n++
		}
	}
	return n
}

// WaitFor polls until a response of typeURL with the given version (any
// version when empty) has arrived, or ctx ends.
func (c *Client) WaitFor(ctx context.Context, typeURL, version string) (Response, error) {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		for _, r := range c.Responses() {
			if r.TypeURL == typeURL && (version == "" || r.Version == version) {
				return r, nil
			}
		}
		select {
		case <-ctx.Done():
			return Response{}, fmt.Errorf("xdstest: no %s response at version %q: %w", typeURL, version, ctx.Err())
		case <-t.C:
		}
	}
}

// Done is closed when the stream has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns the error that ended the stream, or nil while it is open.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.recvErr
}

// Close ends the stream and the connection and waits for the receiver.
func (c *Client) Close() error {
	c.cancel()
	err := c.conn.Close()
	<-c.done
	return err
}
