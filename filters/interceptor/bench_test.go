package interceptor

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/hopguard/hopguard/filters/engine"
)

// BenchmarkUnaryAllow is one allowed unary call through the interceptor,
// without the transport: metadata to facts, decision, handler, Finish.
func BenchmarkUnaryAllow(b *testing.B) {
	e := engine.New(engine.Options{Store: newMemStore()})
	e.SetBundle(testBundle())
	intercept := New(e, Options{}).Unary()
	info := &grpc.UnaryServerInfo{FullMethod: "/" + testService + "/EmptyCall"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("user-agent", "grpc-go", "x-client-id", "a"))
	calls := 0
	handler := func(context.Context, any) (any, error) { calls++; return nil, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := intercept(ctx, nil, info, handler); err != nil {
			b.Fatal(err)
		}
	}
	if calls != b.N {
		b.Fatalf("handler ran %d times for %d calls", calls, b.N)
	}
}
