package translate

// Every xDS resource, cluster, listener, virtual host, route and filter name
// the translator writes is spelled here, so that the control plane, the
// bootstrap generator and the tests agree on them.
const (
	// ListenerInbound is the sidecar listener in front of the local application.
	ListenerInbound = "inbound"
	// ListenerOutbound is the sidecar listener the local application calls through.
	ListenerOutbound = "outbound"
	// ClusterExtProc is the static cluster of the ext_proc server (sidecars only).
	ClusterExtProc = "hopguard-extproc"
	// RouteCatchAll names the last route of every virtual host, which
	// forwards unbudgeted requests without ext_proc.
	RouteCatchAll = "catch-all"
	// FilterExtProc is the ext_proc HTTP filter's name, also the key of its
	// per-route config.
	FilterExtProc = "envoy.filters.http.ext_proc"
	// FilterRouter is the router HTTP filter's name.
	FilterRouter = "envoy.filters.http.router"
	// HTTPProtocolOptionsKey is the typed_extension_protocol_options key of
	// upstream HTTP options.
	HTTPProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)

// Stream metadata the per-route ext_proc override sends to the ext_proc
// server (DESIGN.md §4).
const (
	// MetadataRoute carries the route ID.
	MetadataRoute = "x-hopguard-route"
	// MetadataPolicy carries the route policy's digest.
	MetadataPolicy = "x-hopguard-policy"
	// MetadataSide carries SideInbound or SideOutbound.
	MetadataSide = "x-hopguard-side"
)

// Side is the direction of traffic a route config serves, relative to the node.
type Side string

// Sides.
const (
	// SideInbound is traffic into the node's own application.
	SideInbound Side = "inbound"
	// SideOutbound is traffic from the node to its dependencies.
	SideOutbound Side = "outbound"
)

// RouteConfigInbound names the inbound route configuration of service s.
func RouteConfigInbound(s string) string { return "inbound|" + s }

// RouteConfigOutbound names an outbound route configuration: the sidecar's
// one for node service s, or a proxyless client's one for dependency s.
func RouteConfigOutbound(s string) string { return "outbound|" + s }

// ClusterOutbound names the cluster of dependency d's instances.
func ClusterOutbound(d string) string { return "outbound|" + d }

// ClusterLocal names the sidecar's cluster of its local application s.
func ClusterLocal(s string) string { return "local|" + s }

// VirtualHostInbound names the one virtual host of the inbound route config.
func VirtualHostInbound(s string) string { return "inbound|" + s }

// ProxylessListener names the API listener of dependency d: the host of the
// xds:///d target a grpc-go client dials.
func ProxylessListener(d string) string { return d }

// statPrefix is the stat prefix of an HCM or gRPC service for name.
func statPrefix(name string) string { return "hopguard_" + name }
