package extproc

import (
	"context"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/metadata"
)

// benchProcess runs one Process exchange per iteration over an in-memory
// stream: msgs, then EOF.
func benchProcess(b *testing.B, md metadata.MD, msgs []*extprocv3.ProcessingRequest, wantImmediate bool) {
	clock := newFakeClock(epoch)
	e := newTestEngine(b, clock, newMemStore(), testBundle(nil))
	srv := New(Options{Engine: e, Clock: clock})
	ctx := metadata.NewIncomingContext(context.Background(), md)
	ms := &memStream{ctx: ctx, msgs: msgs, keep: true}
	if err := srv.Process(ms); err != nil {
		b.Fatal(err)
	}
	if got := ms.sent[0].GetImmediateResponse() != nil; got != wantImmediate {
		b.Fatalf("first answer %v, want immediate=%v", ms.sent[0], wantImmediate)
	}
	ms.keep = false
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ms.next, ms.nSent = 0, 0
		if err := srv.Process(ms); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProcessAllow is one Envoy exchange of an allowed request:
// request headers (deadline stamp, stripped retry headers), response
// headers, end of stream.
func BenchmarkProcessAllow(b *testing.B) {
	benchProcess(b, metadata.Pairs("x-hopguard-route", routeGet, "x-hopguard-side", "inbound"),
		[]*extprocv3.ProcessingRequest{
			grpcRequest(pathGet, "grpc-timeout", "1S", "x-envoy-attempt-count", "1"),
			responseHeaders(true, ":status", "200", "grpc-status", "0"),
		}, false)
}

// BenchmarkProcessAllowRequestOnly is request headers → allow, then the
// stream ends (the request's Finish runs as aborted).
func BenchmarkProcessAllowRequestOnly(b *testing.B) {
	benchProcess(b, metadata.Pairs("x-hopguard-route", routeGet),
		[]*extprocv3.ProcessingRequest{grpcRequest(pathGet, "grpc-timeout", "1S")}, false)
}

// BenchmarkProcessRejectHTTP is request headers → a problem+json rejection.
func BenchmarkProcessRejectHTTP(b *testing.B) {
	benchProcess(b, metadata.Pairs("x-hopguard-route", routeOrdersH),
		[]*extprocv3.ProcessingRequest{envoyRequest("POST", pathOrdersH+"/x", "application/json")}, true)
}
