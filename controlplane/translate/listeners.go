package translate

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// networkFilterHCM is the name of the HTTP connection manager network filter.
const networkFilterHCM = "envoy.filters.network.http_connection_manager"

// anyAddress is the sidecar listeners' bind address.
const anyAddress = "0.0.0.0"

// envoyListener is a sidecar listener on 0.0.0.0:port whose one filter chain
// is an HTTP connection manager fetching routeConfig over ADS.
func (t *translator) envoyListener(name string, port uint32, routeConfig string) *listenerv3.Listener {
	hcm := t.connectionManager(name, routeConfig)
	typed, err := anypb.New(hcm)
	t.fail(wrapAny("listener "+name, err))
	return &listenerv3.Listener{
		Name: name,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address:       anyAddress,
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
		}}},
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       networkFilterHCM,
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: typed},
			}},
		}},
	}
}

// connectionManager is the HCM of a listener (or API listener) whose routes
// come over ADS as routeConfig.
func (t *translator) connectionManager(statName, routeConfig string) *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{
		StatPrefix: statPrefix(statName),
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsConfigSource(),
			RouteConfigName: routeConfig,
		}},
		HttpFilters: t.httpFilters(),
	}
}

// adsConfigSource says "over the ADS stream this node already has".
func adsConfigSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}
