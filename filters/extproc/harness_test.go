package extproc

import (
	"context"
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/hopguard/hopguard/filters/engine"
	"github.com/hopguard/hopguard/filters/idempotency"
	"github.com/hopguard/hopguard/filters/metrics"
	"github.com/hopguard/hopguard/policy"
)

// epoch is the fake clock's start: a fixed instant so stamped deadlines are exact.
var epoch = time.UnixMilli(1_800_000_000_000)

// harness is a real ext_proc gRPC server on loopback with a client, driven
// the way Envoy drives it: one Process stream per request.
type harness struct {
	t      *testing.T
	clock  *fakeClock
	store  *memStore
	engine *engine.Engine
	client extprocv3.ExternalProcessorClient
	// registry holds the engine's metrics.
	registry *prometheus.Registry
}

// counter returns the sum of the series of counter name whose labels
// include labels (0 when there are none).
func (h *harness) counter(name string, labels map[string]string) float64 {
	h.t.Helper()
	mfs, err := h.registry.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// newHarness serves a Server over an engine with bundle b (testBundle(nil)
// when nil) and store (a fresh memStore when nil).
func newHarness(t *testing.T, b *policy.Bundle, store idempotency.Store) *harness {
	t.Helper()
	return newHarnessAt(t, epoch, b, store)
}

// newHarnessAt is newHarness with the fake clock starting at start.
func newHarnessAt(t *testing.T, start time.Time, b *policy.Bundle, store idempotency.Store) *harness {
	t.Helper()
	h := &harness{t: t, clock: newFakeClock(start)}
	if _, ok := store.(engineDefaultStore); ok {
		store = nil // the engine builds its default store
	} else if store == nil {
		h.store = newMemStore()
		store = h.store
	}
	if b == nil {
		b = testBundle(nil)
	}
	h.registry = prometheus.NewRegistry()
	m, err := metrics.New(h.registry)
	if err != nil {
		t.Fatal(err)
	}
	h.engine = newTestEngineWithMetrics(t, h.clock, store, m, b)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	New(Options{Engine: h.engine, Clock: h.clock}).Register(gs)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cc.Close()
		gs.GracefulStop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	h.client = extprocv3.NewExternalProcessorClient(cc)
	return h
}

// engineDefaultStore asks newHarness for the engine's own default store
// (the production LRU) instead of a memStore; h.store is then nil.
type engineDefaultStore struct{ idempotency.Store }

// stream is one open Process stream.
type stream struct {
	t      *testing.T
	s      extprocv3.ExternalProcessor_ProcessClient
	cancel context.CancelFunc
}

// open opens a Process stream carrying the per-route initial metadata the
// control plane renders (pairs of x-hopguard-route, -policy, -side ...).
func (h *harness) open(md ...string) *stream {
	return h.openCtx(context.Background(), md...)
}

func (h *harness) openCtx(ctx context.Context, md ...string) *stream {
	h.t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	h.t.Cleanup(cancel)
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	s, err := h.client.Process(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	return &stream{t: h.t, s: s, cancel: cancel}
}

// exchange sends req and returns the answer, failing after 5 s.
func (s *stream) exchange(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	s.t.Helper()
	if err := s.s.Send(req); err != nil {
		s.t.Fatalf("send: %v", err)
	}
	type result struct {
		resp *extprocv3.ProcessingResponse
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := s.s.Recv()
		got <- result{resp, err}
	}()
	select {
	case r := <-got:
		if r.err != nil {
			s.t.Fatalf("recv: %v", r.err)
		}
		return r.resp
	case <-time.After(5 * time.Second):
		s.cancel()
		<-got
		s.t.Fatal("no answer within 5s")
		return nil
	}
}

// closeSend half-closes the stream (the data plane is done) and waits for
// the server to end it, so engine.Finish has run when it returns.
func (s *stream) closeSend() {
	s.t.Helper()
	if err := s.s.CloseSend(); err != nil {
		s.t.Fatalf("close send: %v", err)
	}
	s.waitEnd()
}

// waitEnd waits until the server ends the stream.
func (s *stream) waitEnd() {
	s.t.Helper()
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := s.s.Recv(); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.cancel()
		<-done
		s.t.Fatal("stream did not end within 5s")
	}
}

// envoyRequest is request_headers as an Envoy sidecar sends them: pseudo
// headers, content-type and extra headers (key, value pairs) in `value`.
func envoyRequest(method, path, contentType string, kv ...string) *extprocv3.ProcessingRequest {
	hs := []*corev3.HeaderValue{hv(":method", method), hv(":path", path), hv(":authority", "payments.shop"), hv("content-type", contentType)}
	for i := 0; i+1 < len(kv); i += 2 {
		hs = append(hs, hv(kv[i], kv[i+1]))
	}
	return reqHeaders(headerMap(hs...), nil)
}

// grpcRequest is an Envoy gRPC request (POST, application/grpc).
func grpcRequest(path string, kv ...string) *extprocv3.ProcessingRequest {
	return envoyRequest("POST", path, "application/grpc", kv...)
}

// responseHeaders is a response_headers message.
func responseHeaders(endOfStream bool, kv ...string) *extprocv3.ProcessingRequest {
	var hs []*corev3.HeaderValue
	for i := 0; i+1 < len(kv); i += 2 {
		hs = append(hs, hv(kv[i], kv[i+1]))
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: headerMap(hs...), EndOfStream: endOfStream},
	}}
}

// responseTrailers is a response_trailers message with grpc-status.
func responseTrailers(grpcStatus string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseTrailers{
		ResponseTrailers: &extprocv3.HttpTrailers{Trailers: headerMap(hv("grpc-status", grpcStatus))},
	}}
}

// mustContinue fails unless resp lets the request headers through, and
// returns their mutation.
func mustContinue(t *testing.T, resp *extprocv3.ProcessingResponse) *extprocv3.HeaderMutation {
	t.Helper()
	rh := resp.GetRequestHeaders()
	if rh == nil {
		t.Fatalf("want a request_headers answer (continue), got %v", resp)
	}
	if st := rh.GetResponse().GetStatus(); st != extprocv3.CommonResponse_CONTINUE {
		t.Fatalf("want CONTINUE, got %v", st)
	}
	return rh.GetResponse().GetHeaderMutation()
}

// completeGRPC runs one allowed gRPC request with key on a fresh stream
// through response headers and trailers with grpcStatus.
func (h *harness) completeGRPC(key, grpcStatus string, extra ...string) {
	h.t.Helper()
	s := h.open("x-hopguard-route", routeCharge)
	mustContinue(h.t, s.exchange(grpcRequest(pathCharge, append([]string{"idempotency-key", key}, extra...)...)))
	if s.exchange(responseHeaders(false, ":status", "200")).GetResponseHeaders() == nil {
		h.t.Fatal("want a response_headers answer")
	}
	if s.exchange(responseTrailers(grpcStatus)).GetResponseTrailers() == nil {
		h.t.Fatal("want a response_trailers answer")
	}
	s.closeSend()
}
