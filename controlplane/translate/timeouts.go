package translate

import (
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/hopguard/hopguard/policy"
)

// applyTimeouts sets a route's deadline on its action.
//
// gRPC callers state their deadline in grpc-timeout, so a gRPC route lets
// that header decide, capped at deadline.max (grpc_timeout_header_max), and
// applies deadline.default when the caller sent none (max_stream_duration).
// Envoy then bounds the stream by those two and ignores the route timeout,
// which is set to deadline.max for data planes that read only it. grpc-go
// reads grpc_timeout_header_max before max_stream_duration, so a proxyless
// caller that sends no deadline gets deadline.max, not deadline.default.
//
// HTTP callers state none. On the caller's side (outbound) an HTTP route's
// timeout is deadline.default, and the filter sets what the caller's
// deadline leaves (x-envoy-upstream-rq-timeout-ms). On the callee's side
// (inbound) Envoy strips a caller's x-envoy-* headers, so the route itself
// must allow the longest deadline a caller may have been granted,
// deadline.max: the callee learns the actual one from x-hopguard-deadline.
func applyTimeouts(a *routev3.RouteAction, grpc bool, d policy.Deadline, side Side) {
	if !grpc {
		a.Timeout = durationpb.New(d.Default)
		if side == SideInbound {
			a.Timeout = durationpb.New(d.Max)
		}
		return
	}
	a.Timeout = durationpb.New(d.Max)
	a.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{
		MaxStreamDuration:    durationpb.New(d.Default),
		GrpcTimeoutHeaderMax: durationpb.New(d.Max),
	}
}
