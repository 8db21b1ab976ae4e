package extproc

import (
	"context"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"

	"github.com/hopguard/hopguard/filters/engine"
)

// exchange is the state of one Process stream: the request it carries, the
// engine's decision and what the response said so far. It belongs to the
// goroutine serving the stream.
type exchange struct {
	server         *Server
	info           streamInfo
	streamDeadline time.Time

	// sawRequest is set by the first request_headers message; later ones
	// are answered neutrally.
	sawRequest bool
	req        requestInfo

	// pending is true while an allowed decision awaits engine.Finish.
	pending  bool
	route    *engine.Route
	decision engine.Decision
	start    time.Time
	out      engine.Outcome
	// sawGRPCStatus is set when a valid grpc-status reached the filter.
	sawGRPCStatus bool
}

// handle answers one message of the data plane. done is true when the
// answer ends the exchange (an ImmediateResponse).
func (x *exchange) handle(ctx context.Context, req *extprocv3.ProcessingRequest) (resp *extprocv3.ProcessingResponse, done bool) {
	switch r := req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		if !x.sawRequest {
			x.sawRequest = true
			resp, done = x.decide(ctx, req, r.RequestHeaders)
			if req.GetObservabilityMode() {
				// Answers are ignored in observability mode: the request
				// goes on whatever was decided.
				return nil, false
			}
			return resp, done
		}
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		x.responseHeaders(ctx, r.ResponseHeaders)
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		x.responseTrailers(ctx, r.ResponseTrailers)
	}
	return x.server.neutral.answer(req), false
}

// decide routes the request, asks the engine and turns its decision into
// the answer to request_headers.
func (x *exchange) decide(ctx context.Context, req *extprocv3.ProcessingRequest, h *extprocv3.HttpHeaders) (*extprocv3.ProcessingResponse, bool) {
	s := x.server
	x.req = requestInfoFromHeaders(req, h)
	var route *engine.Route
	if x.info.routeID != "" {
		route = s.engine.Route(x.info.routeID)
	}
	if route == nil {
		route = s.engine.Match(x.req.method, x.req.path)
	}
	if route == nil {
		s.log.Debug("extproc: no route; request continues unchanged",
			zap.String("route_id", x.info.routeID), zap.String("method", x.req.method), zap.String("path", x.req.path))
		return s.neutral.requestHeaders, false
	}

	f := engine.Facts{
		Side:           x.info.side,
		Proxyless:      !x.req.hasPathHeader,
		Method:         x.req.method,
		Path:           x.req.rawPath,
		StreamDeadline: x.streamDeadline,
		PolicyDigest:   x.info.policyDigest,
	}
	mesh := s.engine.Mesh()
	factsFromHeaders(&f, h.GetHeaders(), lowerKey(route.Policy.Idempotency.Header), lowerKey(mesh.PrincipalHeader), x.parseError)
	if f.HasKey && len(route.Policy.Idempotency.FingerprintHeaders) > 0 {
		// ext_proc is sent no body here: headers are all it can add.
		hm, method, path := h.GetHeaders(), f.Method, f.Path
		f.FingerprintFunc = func() uint64 {
			return engine.RequestFingerprint(route, method, path,
				func(name string) (string, bool) { return headerIn(hm, name) }, nil, false)
		}
	}

	x.start = s.clock.Now()
	d := s.engine.Decide(ctx, route, &f)
	switch {
	case d.Replay != nil:
		return replayResponse(d.Replay, x.req.grpc), true
	case d.Reject:
		return rejectResponse(rejection{
			reason: d.Reason, grpc: x.req.grpc, routeID: route.Policy.ID,
			remaining: d.Remaining, attempt: d.Attempt,
		}), true
	}
	// Allowed, or a dry-run rejection that goes on with the allow mutations.
	x.pending, x.route, x.decision = true, route, d
	x.out = engine.Outcome{GRPCStatus: -1}
	return allowResponse(&d.Mutations), false
}

// parseError notes a malformed header value that was ignored.
func (x *exchange) parseError(header string) {
	if x.server.countParseError != nil {
		x.server.countParseError(header)
	}
	x.server.log.Debug("extproc: malformed header ignored", zap.String("header", header))
}

// responseHeaders notes the response status. The response is final here
// for HTTP, for trailers-only gRPC responses (grpc-status in the headers)
// and for responses without a body; gRPC responses otherwise end with
// their trailers.
func (x *exchange) responseHeaders(ctx context.Context, h *extprocv3.HttpHeaders) {
	if !x.pending {
		return
	}
	x.out.HeadersAt = x.server.clock.Now()
	sawGRPCStatus := readStatuses(&x.out, h.GetHeaders())
	x.sawGRPCStatus = x.sawGRPCStatus || sawGRPCStatus
	if sawGRPCStatus || h.GetEndOfStream() || !x.req.grpc {
		x.finish(ctx)
	}
}

// responseTrailers notes the gRPC status of the trailers: the final
// response information.
func (x *exchange) responseTrailers(ctx context.Context, t *extprocv3.HttpTrailers) {
	if !x.pending {
		return
	}
	if x.out.HeadersAt.IsZero() {
		x.out.HeadersAt = x.server.clock.Now()
	}
	x.sawGRPCStatus = readStatuses(&x.out, t.GetTrailers()) || x.sawGRPCStatus
	x.finish(ctx)
}

// end closes the exchange when the stream ends. A request whose response
// headers arrived finishes with what they said (the data plane sends no
// trailers when the filter config skips them); one without a response was
// aborted.
func (x *exchange) end(ctx context.Context) {
	if !x.pending {
		return
	}
	if x.out.HeadersAt.IsZero() {
		x.out.Aborted = true
	}
	x.finish(ctx)
}

// abort finishes a pending decision as aborted: the stream was cancelled
// before the final response, whatever arrived so far.
func (x *exchange) abort(ctx context.Context) {
	if !x.pending {
		return
	}
	x.out.Aborted = true
	x.finish(ctx)
}

// finish reports the outcome to the engine. The store call of a claim
// must happen even when the stream was cancelled (an abort releases the
// key), so it runs without the stream's cancellation.
//
// A gRPC request that ended without a grpc-status reaching the filter has an
// unknown outcome: grpc-go's ext_proc filter strips grpc-status from what it
// forwards, so a proxyless caller's failures would otherwise look like
// successes and complete their idempotency keys.
func (x *exchange) finish(ctx context.Context) {
	x.pending = false
	if x.req.grpc && !x.sawGRPCStatus && !x.out.Aborted {
		x.out.Unknown = true
	}
	if x.decision.Claim != nil {
		ctx = context.WithoutCancel(ctx)
	}
	x.server.engine.Finish(ctx, x.route, &x.decision, x.start, x.out)
}

// readStatuses copies :status and grpc-status of hm into out; malformed
// values are ignored. It reports whether a valid grpc-status was present.
func readStatuses(out *engine.Outcome, hm *corev3.HeaderMap) (sawGRPCStatus bool) {
	for _, h := range hm.GetHeaders() {
		switch lowerKey(h.GetKey()) {
		case headerStatus:
			if n, err := strconv.Atoi(headerValue(h)); err == nil && n >= 100 && n <= 999 {
				out.HTTPStatus = n
			}
		case headerGRPCStatus:
			if n, err := strconv.Atoi(headerValue(h)); err == nil && n >= 0 && n <= 16 {
				out.GRPCStatus, sawGRPCStatus = n, true
			}
		}
	}
	return sawGRPCStatus
}
