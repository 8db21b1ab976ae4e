package translate

import (
	"slices"
	"strconv"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/policy"
)

// testRoute is a valid compiled route of service svc with the given retry
// authority and attempts.
func testRoute(id, svc string, m policy.Match, auth policy.Authority, attempts int) *ir.Route {
	p := policy.Route{
		ID: id, Service: svc, Match: m,
		Deadline: policy.Deadline{Default: 800 * time.Millisecond, Max: 2 * time.Second, MinRemaining: 20 * time.Millisecond},
		Retry: policy.Retry{
			Authority: auth, Attempts: attempts, On: []string{"unavailable", "reset", "503"},
			PerTryTimeout: 250 * time.Millisecond, BackoffBase: 25 * time.Millisecond, BackoffMax: 250 * time.Millisecond,
			MinRemainingAuto: true, BudgetRatio: 0.1, BudgetMinPerSecond: 5,
		},
		SideEffects: true,
		Idempotency: policy.Idempotency{Require: policy.RequireRetries, Header: "idempotency-key", TTL: time.Hour},
	}
	return &ir.Route{Policy: p, Digest: p.Digest()}
}

// testMesh: api (undeclared dependencies: calls everything), payments (gRPC,
// mesh/app/none routes) calling ledger (gRPC) and web (HTTP, DNS).
func testMesh(t *testing.T) *ir.Mesh {
	t.Helper()
	grpc := func(method string) policy.Match {
		return policy.Match{GRPCService: "shop.Payments", GRPCMethod: method}
	}
	m := &ir.Mesh{
		ExtProc: ir.ExtProc{Enabled: true, Address: "127.0.0.1:18001", Timeout: 200 * time.Millisecond},
		Services: []*ir.Service{
			{Name: "ledger", Namespace: "shop", GRPC: true, Port: 9090,
				Endpoints: []ir.Endpoint{{Host: "10.0.0.1", Port: 9090, Weight: 1}}},
			{Name: "payments", Namespace: "shop", GRPC: true, Port: 8080, DependsOn: []string{"ledger", "web"},
				Endpoints: []ir.Endpoint{
					{Host: "10.0.1.2", Port: 8080, Region: "r", Zone: "b", Weight: 1},
					{Host: "10.0.1.1", Port: 8080, Region: "r", Zone: "a", Weight: 2},
					{Host: "10.0.1.3", Port: 8080, Region: "r", Zone: "a", Weight: 3},
				},
				Routes: []*ir.Route{
					testRoute("shop/mesh", "payments", grpc("Mesh"), policy.AuthorityMesh, 3),
					testRoute("shop/app", "payments", grpc("App"), policy.AuthorityApp, 3),
					testRoute("shop/none", "payments", grpc("*"), policy.AuthorityNone, 1),
				}},
			{Name: "web", Namespace: "shop", Port: 80, DNSHost: "web.example", DNSPort: 8080,
				Routes: []*ir.Route{testRoute("shop/web", "web", policy.Match{PathPrefix: "/api", Methods: []string{"GET", "PUT"}}, policy.AuthorityMesh, 2)}},
		},
	}
	m.Services[1].Routes[1].Policy.Retry.BudgetRatio = 0.35
	m.Services[1].Routes[1].Policy.Retry.BudgetMinPerSecond = 12
	m.Services[1].Routes[1].Digest = m.Services[1].Routes[1].Policy.Digest()
	if err := m.Validate(); err != nil {
		t.Fatalf("test mesh invalid: %v", err)
	}
	return m
}

// translate runs Translate and fails the test on error.
func translate(t *testing.T, m *ir.Mesh, node string, f Flavor) *Resources {
	t.Helper()
	res, err := Translate(m, node, f, Options{})
	if err != nil {
		t.Fatalf("Translate(%s, %v): %v", node, f, err)
	}
	return res
}

// names lists the resources' names.
func names(rs []types.Resource) []string {
	var out []string
	for _, r := range rs {
		out = append(out, cachev3.GetResourceName(r))
	}
	return out
}

// find returns the resource of type T named name.
func find[T types.Resource](t *testing.T, rs []types.Resource, name string) T {
	t.Helper()
	for _, r := range rs {
		if v, ok := r.(T); ok && cachev3.GetResourceName(r) == name {
			return v
		}
	}
	var zero T
	t.Fatalf("no %T named %q in %v", zero, name, names(rs))
	return zero
}

// routeNamed returns the route called name in any virtual host of rc.
func routeNamed(t *testing.T, rc *routev3.RouteConfiguration, vhost, name string) *routev3.Route {
	t.Helper()
	for _, vh := range rc.GetVirtualHosts() {
		if vh.GetName() != vhost {
			continue
		}
		for _, r := range vh.GetRoutes() {
			if r.GetName() == name {
				return r
			}
		}
	}
	t.Fatalf("route config %s: no route %s in virtual host %s", rc.GetName(), name, vhost)
	return nil
}

// hcmOf unpacks the HCM of a listener (first filter chain, or API listener).
func hcmOf(t *testing.T, l *listenerv3.Listener) *hcmv3.HttpConnectionManager {
	t.Helper()
	hcm := &hcmv3.HttpConnectionManager{}
	typed := l.GetApiListener().GetApiListener()
	if typed == nil {
		typed = l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig()
	}
	if err := typed.UnmarshalTo(hcm); err != nil {
		t.Fatalf("listener %s: %v", l.GetName(), err)
	}
	return hcm
}

// extProcOf unpacks the ext_proc filter config of an HCM.
func extProcOf(t *testing.T, hcm *hcmv3.HttpConnectionManager) *extprocv3.ExternalProcessor {
	t.Helper()
	for _, f := range hcm.GetHttpFilters() {
		if f.GetName() == FilterExtProc {
			x := &extprocv3.ExternalProcessor{}
			if err := f.GetTypedConfig().UnmarshalTo(x); err != nil {
				t.Fatal(err)
			}
			return x
		}
	}
	t.Fatal("no ext_proc filter")
	return nil
}

// perRouteOf unpacks a route's ext_proc override.
func perRouteOf(t *testing.T, r *routev3.Route) *extprocv3.ExtProcPerRoute {
	t.Helper()
	per := &extprocv3.ExtProcPerRoute{}
	if err := r.GetTypedPerFilterConfig()[FilterExtProc].UnmarshalTo(per); err != nil {
		t.Fatalf("route %s: %v", r.GetName(), err)
	}
	return per
}

func diffProto(t *testing.T, what string, got, want proto.Message) {
	t.Helper()
	if diff := cmp.Diff(got, want, protocmp.Transform()); diff != "" {
		t.Errorf("%s mismatch (-got +want):\n%s", what, diff)
	}
}

func TestTranslate_EnvoyResourceNames(t *testing.T) {
	m := testMesh(t)
	res := translate(t, m, "payments", Envoy)
	want := map[string][]string{
		"listeners": {"inbound", "outbound"},
		"routes":    {"inbound|payments", "outbound|payments"},
		"clusters":  {"hopguard-extproc", "local|payments", "outbound|ledger", "outbound|web"},
		"endpoints": {"outbound|ledger"},
	}
	got := map[string][]string{"listeners": names(res.Listeners), "routes": names(res.Routes), "clusters": names(res.Clusters), "endpoints": names(res.Endpoints)}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("resource names (-got +want):\n%s", diff)
	}
	out := find[*routev3.RouteConfiguration](t, res.Routes, "outbound|payments")
	var vhosts []string
	for _, vh := range out.GetVirtualHosts() {
		vhosts = append(vhosts, vh.GetName())
		if !vh.GetIncludeRequestAttemptCount() {
			t.Errorf("virtual host %s: include_request_attempt_count is false", vh.GetName())
		}
	}
	if diff := cmp.Diff(vhosts, []string{"ledger", "web"}); diff != "" {
		t.Errorf("outbound virtual hosts scoped to dependsOn (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(out.GetVirtualHosts()[0].GetDomains(), []string{
		"ledger", "ledger:9090", "ledger.shop", "ledger.shop:9090", "ledger.shop.svc", "ledger.shop.svc:9090",
		"ledger.shop.svc.cluster.local", "ledger.shop.svc.cluster.local:9090",
	}); diff != "" {
		t.Errorf("ledger domains (-got +want):\n%s", diff)
	}
}

func TestTranslate_UndeclaredNodeGetsEveryService(t *testing.T) {
	m := testMesh(t)
	tests := []struct {
		flavor             Flavor
		listeners, cluster []string
	}{
		{Envoy, []string{"outbound"}, []string{"hopguard-extproc", "outbound|ledger", "outbound|payments", "outbound|web"}},
		{Proxyless, []string{"ledger", "payments", "web"}, []string{"outbound|ledger", "outbound|payments", "outbound|web"}},
	}
	for _, tt := range tests {
		t.Run(tt.flavor.String(), func(t *testing.T) {
			res := translate(t, m, "stranger", tt.flavor)
			if diff := cmp.Diff(names(res.Listeners), tt.listeners); diff != "" {
				t.Errorf("listeners (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(names(res.Clusters), tt.cluster); diff != "" {
				t.Errorf("clusters (-got +want):\n%s", diff)
			}
		})
	}
}

func TestTranslate_ListenerPorts(t *testing.T) {
	m := testMesh(t)
	port := func(res *Resources, name string) uint32 {
		return find[*listenerv3.Listener](t, res.Listeners, name).GetAddress().GetSocketAddress().GetPortValue()
	}
	res := translate(t, m, "payments", Envoy)
	if in, out := port(res, ListenerInbound), port(res, ListenerOutbound); in != 15006 || out != 15001 {
		t.Errorf("default ports inbound %d outbound %d, want 15006 15001", in, out)
	}
	res, err := Translate(m, "payments", Envoy, Options{InboundPort: 7000, OutboundPort: 7001})
	if err != nil {
		t.Fatal(err)
	}
	if in, out := port(res, ListenerInbound), port(res, ListenerOutbound); in != 7000 || out != 7001 {
		t.Errorf("ports inbound %d outbound %d, want 7000 7001", in, out)
	}
}

func TestTranslate_RetryByAuthority(t *testing.T) {
	m := testMesh(t)
	meshPolicy := &routev3.RetryPolicy{
		RetryOn:              "unavailable,reset,retriable-status-codes",
		NumRetries:           wrapperspb.UInt32(2),
		PerTryTimeout:        durationpb.New(250 * time.Millisecond),
		RetriableStatusCodes: []uint32{503},
		RetryBackOff: &routev3.RetryPolicy_RetryBackOff{
			BaseInterval: durationpb.New(25 * time.Millisecond), MaxInterval: durationpb.New(250 * time.Millisecond),
		},
	}
	zero := &routev3.RetryPolicy{NumRetries: wrapperspb.UInt32(0)}
	proxylessPolicy := proto.Clone(meshPolicy).(*routev3.RetryPolicy)
	proxylessPolicy.RetryOn, proxylessPolicy.RetriableStatusCodes = "unavailable", nil
	tests := []struct {
		name   string
		flavor Flavor
		node   string
		rc     string
		vhost  string
		route  string
		want   *routev3.RetryPolicy
	}{
		{"envoy outbound mesh", Envoy, "stranger", "outbound|stranger", "payments", "shop/mesh", meshPolicy},
		{"envoy outbound app", Envoy, "stranger", "outbound|stranger", "payments", "shop/app", zero},
		{"envoy outbound none", Envoy, "stranger", "outbound|stranger", "payments", "shop/none", zero},
		{"envoy inbound mesh never retries", Envoy, "payments", "inbound|payments", "inbound|payments", "shop/mesh", zero},
		// grpc-go reads only gRPC status names: reset becomes unavailable,
		// HTTP status codes go.
		{"proxyless mesh", Proxyless, "stranger", "outbound|payments", "payments", "shop/mesh", proxylessPolicy},
		{"proxyless app omits the policy", Proxyless, "stranger", "outbound|payments", "payments", "shop/app", nil},
		{"proxyless none omits the policy", Proxyless, "stranger", "outbound|payments", "payments", "shop/none", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := translate(t, m, tt.node, tt.flavor)
			r := routeNamed(t, find[*routev3.RouteConfiguration](t, res.Routes, tt.rc), tt.vhost, tt.route)
			diffProto(t, "retry_policy", r.GetRoute().GetRetryPolicy(), tt.want)
		})
	}
}

func TestTranslate_Timeouts(t *testing.T) {
	res := translate(t, testMesh(t), "payments", Envoy)
	rc := find[*routev3.RouteConfiguration](t, res.Routes, "outbound|payments")
	web := routeNamed(t, rc, "web", "shop/web").GetRoute()
	diffProto(t, "http timeout", web.GetTimeout(), durationpb.New(800*time.Millisecond))
	if web.GetMaxStreamDuration() != nil {
		t.Errorf("http route has max_stream_duration %v", web.GetMaxStreamDuration())
	}
	// At the callee, an HTTP route allows the longest deadline a caller may
	// have been granted (Envoy strips the caller's timeout headers).
	webIn := find[*routev3.RouteConfiguration](t, translate(t, testMesh(t), "web", Envoy).Routes, "inbound|web")
	diffProto(t, "inbound http timeout", routeNamed(t, webIn, "inbound|web", "shop/web").GetRoute().GetTimeout(), durationpb.New(2*time.Second))
	in := find[*routev3.RouteConfiguration](t, res.Routes, "inbound|payments")
	grpc := routeNamed(t, in, "inbound|payments", "shop/app").GetRoute()
	diffProto(t, "grpc timeout", grpc.GetTimeout(), durationpb.New(2*time.Second))
	diffProto(t, "grpc max_stream_duration", grpc.GetMaxStreamDuration(), &routev3.RouteAction_MaxStreamDuration{
		MaxStreamDuration:    durationpb.New(800 * time.Millisecond),
		GrpcTimeoutHeaderMax: durationpb.New(2 * time.Second),
	})
}

func TestTranslate_RouteMatch(t *testing.T) {
	res := translate(t, testMesh(t), "payments", Envoy)
	rc := find[*routev3.RouteConfiguration](t, res.Routes, "inbound|payments")
	vh := rc.GetVirtualHosts()[0]
	var got []string
	for _, r := range vh.GetRoutes() {
		got = append(got, r.GetName()+" "+r.GetMatch().GetPath()+r.GetMatch().GetPrefix())
	}
	want := []string{"shop/mesh /shop.Payments/Mesh", "shop/app /shop.Payments/App", "shop/none /shop.Payments/", "catch-all /"}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("inbound routes (-got +want):\n%s", diff)
	}
	web := routeNamed(t, find[*routev3.RouteConfiguration](t, res.Routes, "outbound|payments"), "web", "shop/web")
	if got := web.GetMatch().GetHeaders()[0].GetStringMatch().GetSafeRegex().GetRegex(); got != "^(GET|PUT)$" {
		t.Errorf(":method regex = %q, want ^(GET|PUT)$", got)
	}
}

func TestTranslate_ExtProcEnvoy(t *testing.T) {
	m := testMesh(t)
	res := translate(t, m, "payments", Envoy)
	for _, name := range []string{ListenerInbound, ListenerOutbound} {
		hcm := hcmOf(t, find[*listenerv3.Listener](t, res.Listeners, name))
		var order []string
		for _, f := range hcm.GetHttpFilters() {
			order = append(order, f.GetName())
		}
		if diff := cmp.Diff(order, []string{FilterExtProc, FilterRouter}); diff != "" {
			t.Errorf("%s filter order (-got +want):\n%s", name, diff)
		}
		x := extProcOf(t, hcm)
		diffProto(t, "ext_proc base", x, &extprocv3.ExternalProcessor{
			GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: ClusterExtProc}}},
			ProcessingMode: &extprocv3.ProcessingMode{
				RequestHeaderMode: extprocv3.ProcessingMode_SEND, ResponseHeaderMode: extprocv3.ProcessingMode_SEND,
				RequestTrailerMode: extprocv3.ProcessingMode_SKIP, ResponseTrailerMode: extprocv3.ProcessingMode_SEND,
			},
			MessageTimeout:    durationpb.New(200 * time.Millisecond),
			MutationRules:     x.GetMutationRules(),
			RequestAttributes: []string{"request.path", "request.host"},
		})
		if !x.GetMutationRules().GetAllowEnvoy().GetValue() {
			t.Errorf("%s: mutation_rules.allow_envoy is not true", name)
		}
	}
	in := find[*routev3.RouteConfiguration](t, res.Routes, "inbound|payments")
	r := routeNamed(t, in, "inbound|payments", "shop/mesh")
	gs := perRouteOf(t, r).GetOverrides().GetGrpcService()
	want := &corev3.GrpcService{
		TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: ClusterExtProc}},
		Timeout:         durationpb.New(2200 * time.Millisecond),
		InitialMetadata: []*corev3.HeaderValue{
			{Key: "x-hopguard-route", Value: "shop/mesh"},
			{Key: "x-hopguard-policy", Value: m.Services[1].Routes[0].Policy.Digest()},
			{Key: "x-hopguard-side", Value: "inbound"},
		},
	}
	diffProto(t, "override grpc_service", gs, want)
	catchAll := routeNamed(t, in, "inbound|payments", RouteCatchAll)
	if !perRouteOf(t, catchAll).GetDisabled() {
		t.Error("catch-all route: ext_proc not disabled")
	}
	ext := find[*clusterv3.Cluster](t, res.Clusters, ClusterExtProc)
	if ext.GetType() != clusterv3.Cluster_STATIC || ext.GetTypedExtensionProtocolOptions()[HTTPProtocolOptionsKey] == nil {
		t.Errorf("ext_proc cluster: type %v, protocol options %v; want STATIC with HTTP/2", ext.GetType(), ext.GetTypedExtensionProtocolOptions())
	}
}

func TestTranslate_ExtProcProxyless(t *testing.T) {
	m := testMesh(t)
	res := translate(t, m, "payments", Proxyless)
	if diff := cmp.Diff(names(res.Listeners), []string{"ledger", "web"}); diff != "" {
		t.Fatalf("listeners (-got +want):\n%s", diff)
	}
	l := find[*listenerv3.Listener](t, res.Listeners, "ledger")
	if len(l.GetFilterChains()) != 0 || l.GetAddress() != nil {
		t.Errorf("proxyless listener has a socket listener part: %v", l)
	}
	hcm := hcmOf(t, l)
	if got := hcm.GetRds().GetRouteConfigName(); got != "outbound|ledger" {
		t.Errorf("rds route_config_name = %q, want outbound|ledger", got)
	}
	if hcm.GetRds().GetConfigSource().GetAds() == nil {
		t.Error("rds config_source is not ads")
	}
	gg := extProcOf(t, hcm).GetGrpcService().GetGoogleGrpc()
	if gg.GetTargetUri() != "127.0.0.1:18001" || len(gg.GetChannelCredentialsPlugin()) != 1 ||
		gg.GetChannelCredentialsPlugin()[0].GetTypeUrl() != "type.googleapis.com/envoy.extensions.grpc_service.channel_credentials.insecure.v3.InsecureCredentials" {
		t.Errorf("base ext_proc google_grpc = %v, want target 127.0.0.1:18001 with insecure credentials", gg)
	}

	res = translate(t, m, "stranger", Proxyless)
	rc := find[*routev3.RouteConfiguration](t, res.Routes, "outbound|payments")
	if diff := cmp.Diff(rc.GetVirtualHosts()[0].GetDomains(), []string{"payments"}); diff != "" {
		t.Errorf("proxyless domains (-got +want):\n%s", diff)
	}
	gs := perRouteOf(t, routeNamed(t, rc, "payments", "shop/mesh")).GetOverrides().GetGrpcService()
	if gs.GetGoogleGrpc().GetTargetUri() != "127.0.0.1:18001" || gs.GetEnvoyGrpc() != nil {
		t.Errorf("override grpc_service = %v, want google_grpc to 127.0.0.1:18001", gs)
	}
	if got := gs.GetInitialMetadata()[2].GetValue(); got != "outbound" {
		t.Errorf("x-hopguard-side = %q, want outbound", got)
	}
	fc := &routev3.FilterConfig{}
	if err := routeNamed(t, rc, "payments", RouteCatchAll).GetTypedPerFilterConfig()[FilterExtProc].UnmarshalTo(fc); err != nil || !fc.GetDisabled() {
		t.Errorf("proxyless catch-all: want FilterConfig{disabled: true}, got %v (%v)", fc, err)
	}
	for _, c := range res.Clusters {
		c := c.(*clusterv3.Cluster)
		if c.GetName() == "outbound|web" {
			if c.GetType() != clusterv3.Cluster_LOGICAL_DNS {
				t.Errorf("proxyless DNS cluster type %v, want LOGICAL_DNS", c.GetType())
			}
			continue
		}
		if c.GetType() != clusterv3.Cluster_EDS || c.GetEdsClusterConfig().GetEdsConfig().GetAds() == nil {
			t.Errorf("proxyless cluster %s: want EDS over ADS, got %v", c.GetName(), c)
		}
	}
}

func TestTranslate_ExtProcDisabled(t *testing.T) {
	m := testMesh(t)
	m.ExtProc.Enabled = false
	for _, f := range []Flavor{Envoy, Proxyless} {
		res := translate(t, m, "payments", f)
		for _, l := range res.Listeners {
			hcm := hcmOf(t, l.(*listenerv3.Listener))
			if n := len(hcm.GetHttpFilters()); n != 1 || hcm.GetHttpFilters()[0].GetName() != FilterRouter {
				t.Errorf("%v: filters %v, want the router only", f, hcm.GetHttpFilters())
			}
		}
		for _, rc := range res.Routes {
			for _, vh := range rc.(*routev3.RouteConfiguration).GetVirtualHosts() {
				for _, r := range vh.GetRoutes() {
					if len(r.GetTypedPerFilterConfig()) != 0 {
						t.Errorf("%v: route %s has per-filter config", f, r.GetName())
					}
				}
			}
		}
		if slices.Contains(names(res.Clusters), ClusterExtProc) {
			t.Errorf("%v: ext_proc cluster present", f)
		}
	}
}

func TestTranslate_ClustersAndEndpoints(t *testing.T) {
	res := translate(t, testMesh(t), "stranger", Envoy)
	pay := find[*clusterv3.Cluster](t, res.Clusters, "outbound|payments")
	diffProto(t, "payments circuit breakers", pay.GetCircuitBreakers(), &clusterv3.CircuitBreakers{
		Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			Priority: corev3.RoutingPriority_DEFAULT,
			RetryBudget: &clusterv3.CircuitBreakers_Thresholds_RetryBudget{
				BudgetPercent:       pay.GetCircuitBreakers().GetThresholds()[0].GetRetryBudget().GetBudgetPercent(),
				MinRetryConcurrency: wrapperspb.UInt32(12),
			},
		}},
	})
	// ratio 0.35 of original requests: 0.35/1.35 of all active requests,
	// retries included, which is how Envoy counts.
	if got := pay.GetCircuitBreakers().GetThresholds()[0].GetRetryBudget().GetBudgetPercent().GetValue(); got != 25.925926 {
		t.Errorf("budget_percent = %v, want 25.925926", got)
	}
	if pay.GetTypedExtensionProtocolOptions()[HTTPProtocolOptionsKey] == nil {
		t.Error("gRPC cluster without HTTP/2 protocol options")
	}
	web := find[*clusterv3.Cluster](t, res.Clusters, "outbound|web")
	if web.GetType() != clusterv3.Cluster_STRICT_DNS || web.GetTypedExtensionProtocolOptions() != nil {
		t.Errorf("web cluster: type %v, options %v; want STRICT_DNS without HTTP/2", web.GetType(), web.GetTypedExtensionProtocolOptions())
	}
	if got := web.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress(); got.GetAddress() != "web.example" || got.GetPortValue() != 8080 {
		t.Errorf("web dns address = %v, want web.example:8080", got)
	}
	if led := find[*clusterv3.Cluster](t, res.Clusters, "outbound|ledger"); led.GetCircuitBreakers() != nil {
		t.Errorf("ledger has no routes but got circuit breakers %v", led.GetCircuitBreakers())
	}
	cla := find[*endpointv3.ClusterLoadAssignment](t, res.Endpoints, "outbound|payments")
	var got []string
	for _, loc := range cla.GetEndpoints() {
		line := loc.GetLocality().GetZone() + " w=" + strconv.Itoa(int(loc.GetLoadBalancingWeight().GetValue())) + ":"
		for _, e := range loc.GetLbEndpoints() {
			line += " " + e.GetEndpoint().GetAddress().GetSocketAddress().GetAddress() + "/" + strconv.Itoa(int(e.GetLoadBalancingWeight().GetValue()))
		}
		got = append(got, line)
	}
	want := []string{"a w=5: 10.0.1.1/2 10.0.1.3/3", "b w=1: 10.0.1.2/1"}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("payments localities (-got +want):\n%s", diff)
	}
}

func TestTranslate_FailureModePerRoute(t *testing.T) {
	for _, tc := range []struct {
		mode        ir.FailureMode
		sideEffects bool
		want        bool
	}{
		{ir.FailureAuto, true, false}, // a side effect without its filter could run twice
		{ir.FailureAuto, false, true}, // reads keep working when the filter is down
		{ir.FailureOpen, true, true},
		{ir.FailureClosed, false, false},
	} {
		for _, f := range []Flavor{Envoy, Proxyless} {
			m := testMesh(t)
			m.ExtProc.FailureMode = tc.mode
			r := m.Services[1].Routes[0]
			r.Policy.SideEffects = tc.sideEffects
			r.Digest = r.Policy.Digest()
			res := translate(t, m, "api", f)
			// Envoy nodes get one outbound route config per node, proxyless
			// nodes one per dependency.
			rcName := RouteConfigOutbound("payments")
			if f == Envoy {
				rcName = RouteConfigOutbound("api")
			}
			rc := find[*routev3.RouteConfiguration](t, res.Routes, rcName)
			vhost := "payments"
			got := perRouteOf(t, routeNamed(t, rc, vhost, "shop/mesh")).GetOverrides().GetFailureModeAllow()
			if got == nil || got.GetValue() != tc.want {
				t.Errorf("%v, mode %s, sideEffects %v: failure_mode_allow = %v, want %v", f, tc.mode, tc.sideEffects, got, tc.want)
			}
		}
	}
}
