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
// applies deadline.default when the caller sent none (max_stream_duration);
// the route timeout, deadline.max, is the outer bound. HTTP callers state
// none, so an HTTP route's timeout is deadline.default.
func applyTimeouts(a *routev3.RouteAction, grpc bool, d policy.Deadline) {
	if !grpc {
		a.Timeout = durationpb.New(d.Default)
		return
	}
	a.Timeout = durationpb.New(d.Max)
	a.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{
		MaxStreamDuration:    durationpb.New(d.Default),
		GrpcTimeoutHeaderMax: durationpb.New(d.Max),
	}
}
