package translate

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/hopguard/hopguard/controlplane/ir"
)

// proxyless renders a grpc-go client's resources: per dependency D, the API
// listener a xds:///D target resolves, its route config, cluster and
// endpoints. A proxyless node serves nothing through xDS, so it gets no
// inbound side.
func (t *translator) proxyless() {
	for _, d := range t.deps {
		t.addListener(ProxylessListener(d.Name), t.apiListener(d))
		t.addRoute(RouteConfigOutbound(d.Name), t.proxylessRouteConfig(d))
		t.addUpstream(d)
	}
}

// apiListener is the listener grpc-go fetches for xds:///d: an HTTP
// connection manager whose routes come over ADS.
func (t *translator) apiListener(d *ir.Service) *listenerv3.Listener {
	name := ProxylessListener(d.Name)
	typed, err := anypb.New(t.connectionManager(name, RouteConfigOutbound(d.Name)))
	t.fail(wrapAny("listener "+name, err))
	return &listenerv3.Listener{
		Name:        name,
		ApiListener: &listenerv3.ApiListener{ApiListener: typed},
	}
}

// proxylessRouteConfig has one virtual host, matching the target's
// authority d, with the same routes as a sidecar's outbound side.
func (t *translator) proxylessRouteConfig(d *ir.Service) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name:         RouteConfigOutbound(d.Name),
		VirtualHosts: []*routev3.VirtualHost{t.outboundVirtualHost(d, []string{d.Name})},
	}
}
