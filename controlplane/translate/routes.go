package translate

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/policy"
)

// inboundRouteConfig routes every request reaching the sidecar to the local
// application: one route per budget of the node's service, then a catch-all.
// Inbound routes never retry: retries belong to the caller's side.
func (t *translator) inboundRouteConfig() *routev3.RouteConfiguration {
	s := t.self
	cluster := ClusterLocal(s.Name)
	return &routev3.RouteConfiguration{
		Name: RouteConfigInbound(s.Name),
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    VirtualHostInbound(s.Name),
			Domains: []string{"*"},
			Routes:  t.serviceRoutes(s, cluster, SideInbound),
		}},
	}
}

// outboundRouteConfig is the sidecar's outbound route config: one virtual
// host per dependency, reachable by its short and qualified names.
func (t *translator) outboundRouteConfig() *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: RouteConfigOutbound(t.node)}
	for _, d := range t.deps {
		rc.VirtualHosts = append(rc.VirtualHosts, t.outboundVirtualHost(d, outboundDomains(d)))
	}
	return rc
}

// outboundVirtualHost routes calls to dependency d. The attempt count header
// lets the ext_proc server on d's side tell mesh retries from first tries.
func (t *translator) outboundVirtualHost(d *ir.Service, domains []string) *routev3.VirtualHost {
	return &routev3.VirtualHost{
		Name:                       d.Name,
		Domains:                    domains,
		Routes:                     t.serviceRoutes(d, ClusterOutbound(d.Name), SideOutbound),
		IncludeRequestAttemptCount: true,
	}
}

// outboundDomains are the host names (with and without port) under which a
// sidecar's application may call d.
func outboundDomains(d *ir.Service) []string {
	names := []string{
		d.Name,
		d.Name + "." + d.Namespace,
		d.Name + "." + d.Namespace + ".svc",
		d.Name + "." + d.Namespace + ".svc.cluster.local",
	}
	port := ":" + strconv.FormatUint(uint64(d.Port), 10)
	out := make([]string, 0, 2*len(names))
	for _, n := range names {
		out = append(out, n, n+port)
	}
	return out
}

// serviceRoutes is one route per budget of s (most specific first, as the
// IR orders them) and a final catch-all, all to cluster.
func (t *translator) serviceRoutes(s *ir.Service, cluster string, side Side) []*routev3.Route {
	routes := make([]*routev3.Route, 0, len(s.Routes)+1)
	for _, r := range s.Routes {
		routes = append(routes, t.budgetRoute(s, r, cluster, side))
	}
	return append(routes, t.catchAllRoute(cluster))
}

// budgetRoute renders one route budget: its match, timeouts, retry policy
// and ext_proc override.
func (t *translator) budgetRoute(s *ir.Service, r *ir.Route, cluster string, side Side) *routev3.Route {
	action := &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}
	applyTimeouts(action, s.GRPC, r.Policy.Deadline, side)
	rp, err := t.retryPolicy(r.Policy.Retry, side)
	if err != nil {
		t.fail(fmt.Errorf("translate: route %q: %w", r.Policy.ID, err))
	}
	action.RetryPolicy = rp
	route := &routev3.Route{
		Name:   r.Policy.ID,
		Match:  routeMatch(r.Policy.Match),
		Action: &routev3.Route_Route{Route: action},
	}
	if t.mesh.ExtProc.Enabled {
		route.TypedPerFilterConfig = map[string]*anypb.Any{FilterExtProc: t.extProcRouteConfig(r, side)}
	}
	return route
}

// catchAllRoute forwards requests no budget matches, untouched by ext_proc.
func (t *translator) catchAllRoute(cluster string) *routev3.Route {
	route := &routev3.Route{
		Name:   RouteCatchAll,
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}},
	}
	if t.mesh.ExtProc.Enabled {
		route.TypedPerFilterConfig = map[string]*anypb.Any{FilterExtProc: t.extProcDisabledConfig()}
	}
	return route
}

// routeMatch turns a policy match into a route match: gRPC methods become
// exact paths ("/pkg.Svc/Method") or prefixes ("/pkg.Svc/"), and HTTP method
// restrictions a :method header matcher (exact for one method, an anchored
// alternation of quoted names for several).
func routeMatch(m policy.Match) *routev3.RouteMatch {
	path, prefix := m.HTTPPath()
	rm := &routev3.RouteMatch{}
	if prefix {
		rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: path}
	} else {
		rm.PathSpecifier = &routev3.RouteMatch_Path{Path: path}
	}
	switch len(m.Methods) {
	case 0:
	case 1:
		rm.Headers = []*routev3.HeaderMatcher{methodMatcher(&matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Exact{Exact: m.Methods[0]},
		})}
	default:
		quoted := make([]string, len(m.Methods))
		for i, meth := range m.Methods {
			quoted[i] = regexp.QuoteMeta(meth)
		}
		rm.Headers = []*routev3.HeaderMatcher{methodMatcher(&matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{
				Regex: "^(" + strings.Join(quoted, "|") + ")$",
			}},
		})}
	}
	return rm
}

// methodMatcher matches the :method pseudo-header with sm.
func methodMatcher(sm *matcherv3.StringMatcher) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{
		Name:                 ":method",
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm},
	}
}
