// Package extproc serves envoy.service.ext_proc.v3.ExternalProcessor: the
// gRPC adapter that puts hopguard's decision engine into the request path of
// both data planes, Envoy sidecars and proxyless grpc-go clients.
//
// One Process stream carries one request. The adapter turns the stream's
// metadata (x-hopguard-route, x-hopguard-policy, x-hopguard-side) and the
// request_headers message into engine.Facts, asks the engine, and answers
// with a header mutation (allow) or an ImmediateResponse (reject, replay).
// The response headers and trailers that follow tell the engine how the
// request ended (engine.Finish), which drives idempotency records and the
// latency estimate.
//
// Envoy and grpc-go send different shapes: Envoy sends pseudo-headers
// (:method, :path, :authority) and grpc-timeout; grpc-go sends only the
// application metadata, the method in the request.path attribute and the
// caller's deadline as the stream's own deadline. Both are handled; a
// request without a :path header is proxyless.
//
// Shutdown: the Server holds no goroutines or resources of its own, so
// grpc.Server.GracefulStop drains it: in-flight streams finish their
// exchange (and call engine.Finish) before it returns. A hard Stop cancels
// the streams; each one then finishes its decision as aborted.
package extproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hopguard/hopguard/filters/engine"
)

// Options configure a Server.
type Options struct {
	// Engine decides requests; required (without it every stream fails
	// with ErrNoEngine).
	Engine *engine.Engine
	// Logger receives debug logs of unrouted requests and malformed
	// headers (default: no logging). Rejections are logged by the engine.
	Logger *zap.Logger
	// Clock times requests (start, response headers) for engine.Finish
	// (default: the system clock). Give it the engine's clock.
	Clock engine.Clock
}

// Server implements the ext_proc ExternalProcessor service. It is safe for
// concurrent use: every Process stream keeps its state on its own stack.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer

	engine  *engine.Engine
	log     *zap.Logger
	clock   engine.Clock
	neutral *neutralAnswers
	// countParseError counts a malformed header when the engine can.
	countParseError func(header string)
}

// ErrNoEngine is returned (as the stream's status message) by a Server
// built without an engine.
var ErrNoEngine = errors.New("extproc: no engine")

// parseErrorCounter is implemented by engines that count malformed
// request headers (hopguard_header_parse_errors_total). The adapter counts
// through it when the engine offers it and only logs otherwise.
type parseErrorCounter interface {
	HeaderParseError(header string)
}

var _ extprocv3.ExternalProcessorServer = (*Server)(nil)

// systemClock is the wall clock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// New returns a Server deciding with opts.Engine.
func New(opts Options) *Server {
	s := &Server{engine: opts.Engine, log: opts.Logger, clock: opts.Clock, neutral: newNeutralAnswers()}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.clock == nil {
		s.clock = systemClock{}
	}
	if pc, ok := any(opts.Engine).(parseErrorCounter); ok && opts.Engine != nil {
		s.countParseError = pc.HeaderParseError
	}
	return s
}

// Register registers the Server as envoy.service.ext_proc.v3.ExternalProcessor on gs.
func (s *Server) Register(gs *grpc.Server) {
	extprocv3.RegisterExternalProcessorServer(gs, s)
}

// Process serves one Process stream, i.e. one request of the data plane. It
// answers every message that expects an answer, never fails the stream
// over malformed input, and calls engine.Finish exactly once for an allowed
// request: at its final response, or as aborted when the stream ends first.
// It returns nil when the data plane closes or cancels the stream and after
// an ImmediateResponse, and the stream's error (wrapped) when receiving or
// sending fails otherwise.
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	if s.engine == nil {
		return status.Error(codes.FailedPrecondition, ErrNoEngine.Error())
	}
	ctx := stream.Context()
	x := exchange{server: s, info: streamInfoFromContext(ctx)}
	if dl, ok := ctx.Deadline(); ok {
		x.streamDeadline = dl
	}
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			// The data plane closed its side: no more response information.
			x.end(ctx)
			return nil
		}
		if err != nil {
			x.abort(ctx)
			if isStreamGone(err) {
				return nil
			}
			return fmt.Errorf("extproc: receive: %w", err)
		}
		resp, done := x.handle(ctx, req)
		if resp != nil {
			if err := stream.Send(resp); err != nil {
				x.abort(ctx)
				if isStreamGone(err) {
					return nil
				}
				return fmt.Errorf("extproc: send: %w", err)
			}
		}
		if done {
			x.end(ctx)
			return nil
		}
	}
}

// isStreamGone reports whether err says the data plane went away
// (cancelled or timed out): the normal end of an aborted request, not a
// server error.
func isStreamGone(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	switch status.Code(err) {
	case codes.Canceled, codes.DeadlineExceeded:
		return true
	}
	return false
}
