package translate

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/hopguard/hopguard/controlplane/ir"
)

// connectTimeout bounds connection setup to every upstream.
const connectTimeout = time.Second

// localhost is where a sidecar reaches its own application.
const localhost = "127.0.0.1"

// outboundCluster is the cluster of dependency d's instances: EDS over ADS,
// or DNS-resolved when d declares a DNS name (STRICT_DNS for Envoy;
// LOGICAL_DNS for grpc-go, which supports no other DNS type), speaking
// HTTP/2 to gRPC services, with d's retry budget.
func (t *translator) outboundCluster(d *ir.Service) *clusterv3.Cluster {
	name := ClusterOutbound(d.Name)
	c := &clusterv3.Cluster{
		Name:           name,
		ConnectTimeout: durationpb.New(connectTimeout),
		LbPolicy:       clusterv3.Cluster_ROUND_ROBIN,
	}
	switch {
	case d.DNSHost == "":
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
		c.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsConfigSource(), ServiceName: name}
	case t.flavor == Proxyless:
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS}
		c.LoadAssignment = singleHostAssignment(name, d.DNSHost, d.DNSPort)
	default:
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
		c.LoadAssignment = singleHostAssignment(name, d.DNSHost, d.DNSPort)
	}
	if d.GRPC && t.flavor == Envoy {
		t.fail(setHTTP2(c))
	}
	if th := retryBudget(d); th != nil {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{th}}
	}
	return c
}

// retryBudget maps the most generous retry budget among d's routes onto
// Envoy's cluster retry budget. hopguard's budget is a rate (retries ≤ ratio
// × original requests, plus minPerSecond retries per second); Envoy's is
// concurrency (active retries ≤ budget_percent % of all active requests,
// retries among them, and at least min_retry_concurrency). With requests
// and retries of similar latency the concurrencies follow the rates, so
// retries ≤ r × originals is retries ≤ r/(1+r) × (originals + retries):
// budget_percent is 100 × r/(1+r). Since a route's requests finish within
// their deadline (normally under a second), N retries per second keep at
// most about N in flight, so min_retry_concurrency is minPerSecond. The
// exact per-route budget is enforced by the ext_proc server; this is the
// data plane's backstop (and what limits Envoy's own router retries, which
// the downstream ext_proc filter does not see one by one). d without routes
// gets none (nothing of it is retried).
func retryBudget(d *ir.Service) *clusterv3.CircuitBreakers_Thresholds {
	if len(d.Routes) == 0 {
		return nil
	}
	var ratio float64
	var minPerSecond int
	for _, r := range d.Routes {
		ratio = max(ratio, r.Policy.Retry.BudgetRatio)
		minPerSecond = max(minPerSecond, r.Policy.Retry.BudgetMinPerSecond)
	}
	// Rounded to 1e-6 % so that the rendering is stable and short.
	percent := math.Round(ratio/(1+ratio)*100*1e6) / 1e6
	return &clusterv3.CircuitBreakers_Thresholds{
		Priority: corev3.RoutingPriority_DEFAULT,
		RetryBudget: &clusterv3.CircuitBreakers_Thresholds_RetryBudget{
			BudgetPercent:       &typev3.Percent{Value: percent},
			MinRetryConcurrency: wrapperspb.UInt32(uint32(min(minPerSecond, math.MaxUint32))),
		},
	}
}

// localCluster is a sidecar's static cluster of its own application.
func localCluster(s *ir.Service) *clusterv3.Cluster {
	name := ClusterLocal(s.Name)
	c := &clusterv3.Cluster{
		Name:                 name,
		ConnectTimeout:       durationpb.New(connectTimeout),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment:       singleHostAssignment(name, localhost, s.Port),
	}
	return c
}

// extProcCluster is a sidecar's cluster of the ext_proc server: static for
// an IP address, STRICT_DNS for a host name; always HTTP/2 (gRPC).
func extProcCluster(x ir.ExtProc) (*clusterv3.Cluster, error) {
	host, portText, err := net.SplitHostPort(x.Address)
	if err != nil {
		return nil, fmt.Errorf("translate: ext_proc address %q: %w", x.Address, err)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("translate: ext_proc address %q: bad port", x.Address)
	}
	kind := clusterv3.Cluster_STRICT_DNS
	if _, err := netip.ParseAddr(host); err == nil {
		kind = clusterv3.Cluster_STATIC
	}
	c := &clusterv3.Cluster{
		Name:                 ClusterExtProc,
		ConnectTimeout:       durationpb.New(connectTimeout),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: kind},
		LoadAssignment:       singleHostAssignment(ClusterExtProc, host, uint32(port)),
	}
	if err := setHTTP2(c); err != nil {
		return nil, err
	}
	return c, nil
}

// setHTTP2 makes c speak HTTP/2 (prior knowledge) upstream, as gRPC needs.
func setHTTP2(c *clusterv3.Cluster) error {
	opts, err := anypb.New(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
					Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
				},
			},
		},
	})
	if err != nil {
		return wrapAny("cluster "+c.GetName()+" protocol options", err)
	}
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{HTTPProtocolOptionsKey: opts}
	return nil
}

// singleHostAssignment is a load assignment of one host:port, for static
// and DNS clusters.
func singleHostAssignment(cluster, host string, port uint32) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: cluster,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint(host, port, 0)},
		}},
	}
}
