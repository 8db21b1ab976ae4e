package extproc

import (
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/hopguard/hopguard/filters/engine"
	"github.com/hopguard/hopguard/filters/idempotency"
)

// Headers the adapter writes besides the engine's (engine.Header*).
const (
	// HeaderReplayed marks an ImmediateResponse that replays the recorded
	// outcome of a completed idempotency key (onDuplicate: replay).
	HeaderReplayed = "x-hopguard-replayed"
	// ContentTypeProblem is the media type of rejection bodies for HTTP
	// requests (RFC 9457).
	ContentTypeProblem = "application/problem+json"
)

// setHeader returns a header mutation entry that overwrites (or adds) key.
// The value goes in `value`, not `raw_value`: grpc-go turns a raw_value-only
// mutation of a non -bin key into an empty value, and Envoy accepts both.
func setHeader(key, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: key, Value: value},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// millis formats d as a whole number of milliseconds, at least 1: a
// timeout header of 0 means "no timeout" to Envoy, the opposite of what a
// nearly spent deadline asks for.
func millis(d time.Duration) string {
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10)
}

// maxAllowHeaders is the number of headers an allow answer may set.
const maxAllowHeaders = 4

// allowAnswer is the whole answer to an allowed request's headers in one
// allocation: the hot path builds one per request.
type allowAnswer struct {
	resp extprocv3.ProcessingResponse
	rh   extprocv3.ProcessingResponse_RequestHeaders
	hr   extprocv3.HeadersResponse
	cr   extprocv3.CommonResponse
	hm   extprocv3.HeaderMutation
	set  [maxAllowHeaders]*corev3.HeaderValueOption
	opts [maxAllowHeaders]corev3.HeaderValueOption
	vals [maxAllowHeaders]corev3.HeaderValue
	rm   [3]string
}

// add appends a set entry overwriting (or adding) key; see setHeader.
func (a *allowAnswer) add(key, value string) {
	i := len(a.hm.SetHeaders)
	a.vals[i].Key, a.vals[i].Value = key, value
	a.opts[i].Header, a.opts[i].AppendAction = &a.vals[i], corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
	a.hm.SetHeaders = append(a.hm.SetHeaders, &a.opts[i])
}

// allowResponse is the answer to an allowed request's headers: continue
// with the engine's mutations converted into an ext_proc header mutation
// (none when there is nothing to change).
func allowResponse(m *engine.Mutations) *extprocv3.ProcessingResponse {
	a := &allowAnswer{}
	a.hm.SetHeaders = a.set[:0]
	if !m.Deadline.IsZero() {
		a.add(engine.HeaderHopguardDeadline, engine.FormatUnixMillis(m.Deadline))
	}
	if m.UpstreamTimeout > 0 {
		a.add(engine.HeaderEnvoyUpstreamTimeout, millis(m.UpstreamTimeout))
	}
	if m.PerTryTimeout > 0 {
		a.add(engine.HeaderEnvoyPerTryTimeout, millis(m.PerTryTimeout))
	}
	if m.SetMaxRetries {
		a.add(engine.HeaderEnvoyMaxRetries, strconv.Itoa(max(m.MaxRetries, 0)))
	}
	if m.StripRetryHeaders {
		a.rm = [3]string{engine.HeaderEnvoyRetryOn, engine.HeaderEnvoyRetryGRPCOn, engine.HeaderEnvoyMaxRetries}
		a.hm.RemoveHeaders = a.rm[:3]
		if m.SetMaxRetries {
			// x-envoy-max-retries is overwritten with the policy's value.
			a.hm.RemoveHeaders = a.rm[:2]
		}
	}
	a.rh.RequestHeaders, a.hr.Response, a.resp.Response = &a.hr, &a.cr, &a.rh
	if len(a.hm.SetHeaders) > 0 || a.hm.RemoveHeaders != nil {
		a.cr.HeaderMutation = &a.hm
	} else {
		a.hm.SetHeaders = nil
	}
	return &a.resp
}

// neutralAnswers are the CONTINUE answers without changes, one per
// message kind. They are built once per Server and only read afterwards:
// proto messages are safe to marshal concurrently.
type neutralAnswers struct {
	requestHeaders, responseHeaders, requestBody, responseBody, requestTrailers, responseTrailers *extprocv3.ProcessingResponse
}

func newNeutralAnswers() *neutralAnswers {
	cont := func() *extprocv3.CommonResponse { return &extprocv3.CommonResponse{} }
	return &neutralAnswers{
		requestHeaders: &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{
			RequestHeaders: &extprocv3.HeadersResponse{Response: cont()}}},
		responseHeaders: &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{
			ResponseHeaders: &extprocv3.HeadersResponse{Response: cont()}}},
		requestBody: &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{
			RequestBody: &extprocv3.BodyResponse{Response: cont()}}},
		responseBody: &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{
			ResponseBody: &extprocv3.BodyResponse{Response: cont()}}},
		requestTrailers: &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{
			RequestTrailers: &extprocv3.TrailersResponse{}}},
		responseTrailers: &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{
			ResponseTrailers: &extprocv3.TrailersResponse{}}},
	}
}

// answer returns the CONTINUE answer to req without any change, or nil
// when req asks for no answer (no request set, or observability mode where
// answers are ignored). The answer is shared: do not modify it.
func (n *neutralAnswers) answer(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	if req.GetObservabilityMode() {
		return nil
	}
	switch req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return n.requestHeaders
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return n.responseHeaders
	case *extprocv3.ProcessingRequest_RequestBody:
		return n.requestBody
	case *extprocv3.ProcessingRequest_ResponseBody:
		return n.responseBody
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return n.requestTrailers
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return n.responseTrailers
	default:
		return nil
	}
}

// rejection describes a refused request for the data plane.
type rejection struct {
	reason  engine.Reason
	grpc    bool
	routeID string
	// remaining and attempt go into the problem detail of HTTP rejections.
	remaining time.Duration
	attempt   int
}

// rejectResponse is the ImmediateResponse refusing a request: gRPC
// requests get grpc_status (the code travels in grpc-status; the HTTP
// status is 200 as on every gRPC response), HTTP requests the reason's
// status and an RFC 9457 problem body. Both carry x-hopguard-reason.
func rejectResponse(r rejection) *extprocv3.ProcessingResponse {
	ir := &extprocv3.ImmediateResponse{
		Headers: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
			setHeader(engine.HeaderHopguardReason, r.reason.String()),
		}},
		Details: r.reason.String(),
	}
	if r.grpc {
		ir.Status = &typev3.HttpStatus{Code: typev3.StatusCode_OK}
		ir.GrpcStatus = &extprocv3.GrpcStatus{Status: uint32(r.reason.GRPCCode())}
	} else {
		status := r.reason.HTTPStatus()
		ir.Status = &typev3.HttpStatus{Code: typev3.StatusCode(status)}
		ir.Headers.SetHeaders = append(ir.Headers.SetHeaders, setHeader(headerContentType, ContentTypeProblem))
		ir.Body = problemBody(r.reason, status, r.routeID, r.remaining, r.attempt)
	}
	return immediate(ir)
}

// replayResponse answers a duplicate of a completed request with its
// recorded outcome, marked with x-hopguard-replayed: for HTTP requests the
// recorded HTTP status (200 when unknown), for gRPC requests the recorded
// gRPC status. Bodies are not recorded, so none is replayed. A gRPC call
// that completed OK (or with no recorded code) cannot be replayed as OK:
// a unary OK without its response message is a protocol error that
// clients report as INTERNAL, which a caller could take for a failure and
// redo under a new key. It is answered, as by the interceptor, with
// ALREADY_EXISTS and x-hopguard-reason: idempotency-completed: the work
// is done.
func replayResponse(rec *idempotency.Record, grpc bool) *extprocv3.ProcessingResponse {
	ir := &extprocv3.ImmediateResponse{
		Headers: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
			setHeader(HeaderReplayed, "true"),
		}},
	}
	if grpc {
		code := uint32(max(rec.GRPCStatus, 0))
		if code == 0 {
			code = uint32(engine.ReasonIdempotencyCompleted.GRPCCode())
			ir.Headers.SetHeaders = append(ir.Headers.SetHeaders, setHeader(engine.HeaderHopguardReason, engine.ReasonIdempotencyCompleted.String()))
			ir.Details = engine.ReasonIdempotencyCompleted.String()
		}
		ir.Status = &typev3.HttpStatus{Code: typev3.StatusCode_OK}
		ir.GrpcStatus = &extprocv3.GrpcStatus{Status: code}
	} else {
		code := rec.HTTPStatus
		if code < 100 || code > 599 {
			code = 200
		}
		ir.Status = &typev3.HttpStatus{Code: typev3.StatusCode(code)}
	}
	return immediate(ir)
}

func immediate(ir *extprocv3.ImmediateResponse) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: ir}}
}
