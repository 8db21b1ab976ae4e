// Package interceptor applies hopguard's decision engine inside proxyless
// gRPC services, as unary and stream server interceptors.
//
// grpc-go has no server-side ext_proc filter, so a proxyless callee cannot
// be guarded by the ext_proc server. The interceptor makes the same
// decisions in-process on the inbound side, where each attempt of the
// caller's xDS retry arrives as a separate RPC with
// grpc-previous-rpc-attempts: a retry the route's authority does not allow,
// or one whose remaining deadline cannot finish, is refused before the
// handler runs.
//
// It reads its policies from the engine it is given, which the embedding
// process feeds exactly as the ext_proc server's engine is fed (SetBundle),
// and the engine's metrics are the same.
package interceptor

import (
	"context"
	"errors"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"

	"github.com/hopguard/hopguard/filters/engine"
)

// HeaderReplayed marks (as a trailer) a response that replays the recorded
// outcome of a completed idempotency key instead of running the handler.
const HeaderReplayed = "x-hopguard-replayed"

// Options configure an Interceptor. Zero values give defaults.
type Options struct {
	// Logger receives debug logs of malformed metadata (default: none).
	// Rejections are logged by the engine.
	Logger *zap.Logger
	// Clock times handlers for engine.Finish (default: the system clock).
	// Give it the engine's clock.
	Clock engine.Clock
}

// ErrNoEngine is the status message of every RPC through an Interceptor
// built without an engine: refusing is safer than running unguarded.
var ErrNoEngine = errors.New("interceptor: no engine")

// Interceptor guards a gRPC server's handlers with an engine. It is safe
// for concurrent use and holds no goroutines.
type Interceptor struct {
	engine *engine.Engine
	log    *zap.Logger
	clock  engine.Clock
	// countParseError counts a malformed header when the engine can.
	countParseError func(header string)
}

// parseErrorCounter is implemented by engines that count malformed
// request headers (hopguard_header_parse_errors_total). The interceptor
// counts through it when the engine offers it and only logs otherwise.
type parseErrorCounter interface {
	HeaderParseError(header string)
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// New returns an Interceptor deciding with e.
func New(e *engine.Engine, opts Options) *Interceptor {
	i := &Interceptor{engine: e, log: opts.Logger, clock: opts.Clock}
	if i.log == nil {
		i.log = zap.NewNop()
	}
	if i.clock == nil {
		i.clock = systemClock{}
	}
	if pc, ok := any(e).(parseErrorCounter); ok && e != nil {
		i.countParseError = pc.HeaderParseError
	}
	return i
}

// Unary returns the unary server interceptor: a refused RPC ends with the
// reason's gRPC code and an x-hopguard-reason trailer without running the
// handler; an allowed one runs with its context bounded by the decided
// deadline. RPCs no route matches run unchanged.
func (i *Interceptor) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		var a admission
		if trailer, err := i.admit(ctx, info.FullMethod, req, &a); err != nil {
			if terr := grpc.SetTrailer(ctx, trailer); terr != nil {
				i.log.Debug("interceptor: trailer not set", zap.Error(terr))
			}
			return nil, err
		}
		if a.route == nil {
			return handler(ctx, req)
		}
		defer i.abortUnfinished(ctx, &a)
		runCtx, cancel := a.bound(ctx)
		defer cancel()
		resp, err := handler(runCtx, req)
		i.finish(ctx, &a, err)
		return resp, err
	}
}

// Stream returns the stream server interceptor, with the same behaviour as
// Unary: the handler sees a stream whose context is bounded by the decided
// deadline.
func (i *Interceptor) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := ss.Context()
		var a admission
		if trailer, err := i.admit(ctx, info.FullMethod, nil, &a); err != nil {
			ss.SetTrailer(trailer)
			return err
		}
		if a.route == nil {
			return handler(srv, ss)
		}
		defer i.abortUnfinished(ctx, &a)
		runCtx, cancel := a.bound(ctx)
		defer cancel()
		err := handler(srv, &boundStream{ServerStream: ss, ctx: runCtx})
		i.finish(ctx, &a, err)
		return err
	}
}

// boundStream is a ServerStream whose context carries the decided deadline.
type boundStream struct {
	grpc.ServerStream
	ctx context.Context
}

// Context returns the bounded context.
func (s *boundStream) Context() context.Context { return s.ctx }

// admission is an allowed RPC awaiting engine.Finish.
type admission struct {
	route    *engine.Route // nil: no route, the RPC runs unguarded
	d        engine.Decision
	start    time.Time
	finished bool
}

// bound returns ctx limited by the decided deadline. A dry-run route lets
// the RPC through unchanged, its caller's deadline (or none) included.
func (a *admission) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if a.d.Deadline.IsZero() || a.route.Policy.DryRun {
		return ctx, func() {}
	}
	return context.WithDeadline(ctx, a.d.Deadline)
}

// admit routes and decides the RPC into a. A refused RPC (or a replayed
// one) returns the status error to end it with and the trailer to send.
//
// req is a unary call's request message (nil for streams): on routes that
// fingerprint bodies, its deterministic protobuf encoding is part of the
// idempotency fingerprint.
func (i *Interceptor) admit(ctx context.Context, fullMethod string, req any, a *admission) (metadata.MD, error) {
	if i.engine == nil {
		return nil, status.Error(codes.Internal, ErrNoEngine.Error())
	}
	route := i.engine.Match("POST", fullMethod)
	if route == nil {
		return nil, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	var f engine.Facts
	dl, _ := ctx.Deadline()
	factsFromMetadata(&f, md, fullMethod, dl, route.Policy.Idempotency.Header, i.engine.Mesh().PrincipalHeader, i.parseError)
	if id := &route.Policy.Idempotency; f.HasKey && (id.FingerprintBody && req != nil || len(id.FingerprintHeaders) > 0) {
		method, path := f.Method, f.Path
		f.FingerprintFunc = func() uint64 { return i.fingerprint(route, method, path, md, req) }
	}

	a.start = i.clock.Now()
	a.d = i.engine.Decide(ctx, route, &f)
	switch {
	case a.d.Replay != nil:
		return metadata.Pairs(HeaderReplayed, "true"), replayError(a.d.Replay.GRPCStatus)
	case a.d.Reject:
		reason := a.d.Reason.String()
		return metadata.Pairs(engine.HeaderHopguardReason, reason), status.Error(codes.Code(a.d.Reason.GRPCCode()), reason)
	}
	// Allowed, or a dry-run rejection that runs anyway.
	a.route = route
	return nil, nil
}

// fingerprint is the request's idempotency fingerprint: method, path, the
// route's fingerprint headers from md and, for a unary call whose request
// is a protobuf message, the message's deterministic encoding. A message
// that cannot be encoded is left out (logged at debug level): its calls are
// then told apart by method, path and headers only.
func (i *Interceptor) fingerprint(route *engine.Route, method, path string, md metadata.MD, req any) uint64 {
	var body []byte
	hasBody := false
	if route.Policy.Idempotency.FingerprintBody {
		var m proto.Message
		switch v := req.(type) {
		case proto.Message:
			m = v
		case protoadapt.MessageV1:
			m = protoadapt.MessageV2Of(v)
		}
		if m != nil {
			b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
			if err == nil {
				body, hasBody = b, true
			} else {
				i.log.Debug("interceptor: request not fingerprinted by body", zap.String("route", route.Policy.ID), zap.Error(err))
			}
		}
	}
	var header func(string) (string, bool)
	if len(route.Policy.Idempotency.FingerprintHeaders) > 0 {
		header = func(name string) (string, bool) { return lookup(md, name) }
	}
	return engine.RequestFingerprint(route, method, path, header, body, hasBody)
}

// finish reports the handler's outcome: its status code, HeadersAt = now.
func (i *Interceptor) finish(ctx context.Context, a *admission, err error) {
	a.finished = true
	if a.d.Claim != nil {
		// The claim's store call must happen even when the caller went away.
		ctx = context.WithoutCancel(ctx)
	}
	i.engine.Finish(ctx, a.route, &a.d, a.start, engine.Outcome{
		HTTPStatus: 200, // gRPC responses are HTTP 200; the code is in grpc-status
		GRPCStatus: int(statusCode(err)),
		HeadersAt:  i.clock.Now(),
	})
}

// statusCode is the code the caller receives for a handler's err: grpc-go
// turns a bare context error into DEADLINE_EXCEEDED or CANCELLED, which
// status.Code alone would call UNKNOWN (and so complete the key of a call
// that failed for lack of time).
func statusCode(err error) codes.Code {
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	return status.FromContextError(err).Code()
}

// abortUnfinished finishes a as aborted when the handler did not return
// (it panicked): the claim is released instead of staying in flight.
func (i *Interceptor) abortUnfinished(ctx context.Context, a *admission) {
	if a.finished {
		return
	}
	a.finished = true
	i.engine.Finish(context.WithoutCancel(ctx), a.route, &a.d, a.start, engine.Outcome{GRPCStatus: -1, Aborted: true})
}

// replayError answers a duplicate of a completed RPC with its recorded
// code (sent with an x-hopguard-replayed trailer). A recorded OK cannot be
// replayed by an interceptor: the response message was not recorded, and
// an OK status without a message is an error for unary callers. It is
// answered with ALREADY_EXISTS, which tells the caller the work is done.
func replayError(code int) error {
	c := codes.Code(max(code, 0))
	if c == codes.OK {
		return status.Error(codes.AlreadyExists, engine.ReasonIdempotencyCompleted.String())
	}
	return status.Error(c, "replayed: "+strings.ToLower(c.String()))
}

// parseError notes a malformed metadata value that was ignored.
func (i *Interceptor) parseError(header string) {
	if i.countParseError != nil {
		i.countParseError(header)
	}
	i.log.Debug("interceptor: malformed metadata ignored", zap.String("header", header))
}
