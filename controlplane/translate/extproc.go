package translate

import (
	"slices"
	"time"

	mutationrulesv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	insecurev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/grpc_service/channel_credentials/insecure/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/hopguard/hopguard/controlplane/ir"
)

// extProcRequestAttributes are the attributes the ext_proc server needs when
// the data plane sends no pseudo-headers (grpc-go sends none: the method
// reaches the server only as request.path).
var extProcRequestAttributes = []string{"request.path", "request.host"}

// extProcStatPrefix is the stat prefix of grpc-go's ext_proc channel.
const extProcStatPrefix = "hopguard_extproc"

// extProcConfig is the base ext_proc filter config: request and response
// headers and response trailers are sent, bodies are not (decisions need
// headers only; a gRPC call's final status arrives in the trailers, and the
// idempotency record of a side effect completes on it), and the server may
// set x-envoy-* headers (allow_envoy) to clamp timeouts and retries. Every
// budgeted route overrides failure_mode_allow; the base value applies to
// nothing else and fails closed unless the mesh fails open everywhere.
func (t *translator) extProcConfig() *extprocv3.ExternalProcessor {
	x := t.mesh.ExtProc
	return &extprocv3.ExternalProcessor{
		GrpcService:      t.extProcGrpcService(0, nil),
		FailureModeAllow: x.FailureMode == ir.FailureOpen,
		ProcessingMode: &extprocv3.ProcessingMode{
			RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
			ResponseHeaderMode:  extprocv3.ProcessingMode_SEND,
			RequestBodyMode:     extprocv3.ProcessingMode_NONE,
			ResponseBodyMode:    extprocv3.ProcessingMode_NONE,
			RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
			ResponseTrailerMode: extprocv3.ProcessingMode_SEND,
		},
		MessageTimeout:    durationpb.New(x.Timeout),
		MutationRules:     &mutationrulesv3.HeaderMutationRules{AllowEnvoy: wrapperspb.Bool(true)},
		RequestAttributes: slices.Clone(extProcRequestAttributes), // each proto owns its slice
	}
}

// extProcGrpcService addresses the ext_proc server in the form the flavor
// accepts: an envoy_grpc reference to ClusterExtProc for Envoy, a
// google_grpc target with insecure channel credentials for grpc-go (which
// accepts nothing else). A zero timeout leaves the field unset.
func (t *translator) extProcGrpcService(timeout time.Duration, metadata []*corev3.HeaderValue) *corev3.GrpcService {
	gs := &corev3.GrpcService{InitialMetadata: metadata}
	if timeout > 0 {
		gs.Timeout = durationpb.New(timeout)
	}
	switch t.flavor {
	case Proxyless:
		if t.insecureCreds == nil {
			creds, err := anypb.New(&insecurev3.InsecureCredentials{})
			t.fail(wrapAny("ext_proc channel credentials", err))
			t.insecureCreds = creds
		}
		gs.TargetSpecifier = &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{
			TargetUri:                t.mesh.ExtProc.Address,
			StatPrefix:               extProcStatPrefix,
			ChannelCredentialsPlugin: []*anypb.Any{t.insecureCreds},
		}}
	default:
		gs.TargetSpecifier = &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
			ClusterName: ClusterExtProc,
		}}
	}
	return gs
}

// extProcRouteConfig is the per-route override of a budgeted route. It
// carries the route's identity as stream metadata, so the ext_proc server
// needs no matching of its own. The override replaces the base grpc_service
// as a whole, hence the repeated target.
//
// failure_mode_allow follows the mesh's failure mode: by default a route
// without side effects fails open (an unreachable filter must not take reads
// down) and a route with side effects fails closed (no unchecked duplicate
// payment).
//
// The timeout bounds the whole Process stream, which lives as long as the
// request (request headers first, response headers last): the route's
// largest deadline plus one message exchange.
func (t *translator) extProcRouteConfig(r *ir.Route, side Side) *anypb.Any {
	md := []*corev3.HeaderValue{
		{Key: MetadataRoute, Value: r.Policy.ID},
		{Key: MetadataPolicy, Value: r.Digest},
		{Key: MetadataSide, Value: string(side)},
	}
	per := &extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Overrides{
		Overrides: &extprocv3.ExtProcOverrides{
			GrpcService:      t.extProcGrpcService(t.extProcStreamTimeout(r), md),
			FailureModeAllow: wrapperspb.Bool(t.mesh.ExtProc.FailureMode.AllowsFailure(r.Policy.SideEffects)),
		},
	}}
	typed, err := anypb.New(per)
	t.fail(wrapAny("ext_proc override of route "+r.Policy.ID, err))
	return typed
}

// extProcStreamTimeout is the override's grpc_service timeout. grpc-go
// makes it the Process stream's deadline, and the filter reads the caller's
// deadline from that stream: any timeout set here would look like a caller
// deadline, so proxyless routes get none and the stream carries the caller's
// own (or none, and the route's deadline.default applies).
func (t *translator) extProcStreamTimeout(r *ir.Route) time.Duration {
	if t.flavor == Proxyless {
		return 0
	}
	return r.Policy.Deadline.Max + t.mesh.ExtProc.Timeout
}

// extProcDisabledConfig turns ext_proc off on a route. Envoy honours
// ExtProcPerRoute{disabled}; grpc-go ignores that field and disables a
// filter only through the generic route FilterConfig{disabled} wrapper.
func (t *translator) extProcDisabledConfig() *anypb.Any {
	var typed *anypb.Any
	var err error
	switch t.flavor {
	case Proxyless:
		typed, err = anypb.New(&routev3.FilterConfig{Disabled: true})
	default:
		typed, err = anypb.New(&extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Disabled{Disabled: true}})
	}
	t.fail(wrapAny("ext_proc disabled override", err))
	return typed
}
