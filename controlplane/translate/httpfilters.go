package translate

import (
	"fmt"

	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// httpFilters is the one place that decides the HTTP filter chain and its
// order, for every listener of both flavors: ext_proc first (when enabled),
// so it sees each downstream request before the router routes and retries
// it, then the router, which must be last. The chain is built once per
// Translate call and shared by the node's listeners (resources are never
// modified after translation).
func (t *translator) httpFilters() []*hcmv3.HttpFilter {
	if t.filters == nil {
		t.filters = t.buildHTTPFilters()
	}
	return t.filters
}

// buildHTTPFilters builds the chain httpFilters describes.
func (t *translator) buildHTTPFilters() []*hcmv3.HttpFilter {
	var filters []*hcmv3.HttpFilter
	if t.mesh.ExtProc.Enabled {
		typed, err := anypb.New(t.extProcConfig())
		t.fail(wrapAny("ext_proc filter", err))
		filters = append(filters, &hcmv3.HttpFilter{
			Name:       FilterExtProc,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: typed},
		})
	}
	router, err := anypb.New(&routerv3.Router{})
	t.fail(wrapAny("router filter", err))
	return append(filters, &hcmv3.HttpFilter{
		Name:       FilterRouter,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router},
	})
}

// wrapAny wraps a failure to pack what into an Any (nil stays nil).
func wrapAny(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("translate: %s: packing Any: %w", what, err)
}
