package bundles

import (
	"context"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve runs p on a loopback gRPC server and returns a client connection.
func serve(t *testing.T, p *Publisher) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	p.Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// watch opens a subscription named name.
func watch(t *testing.T, ctx context.Context, cc *grpc.ClientConn, name string) grpc.ClientStream {
	t.Helper()
	s, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, WatchMethod)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SendMsg(wrapperspb.String(name)); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	return s
}

func recv(t *testing.T, s grpc.ClientStream) (string, error) {
	t.Helper()
	var b wrapperspb.BytesValue
	err := s.RecvMsg(&b)
	return string(b.GetValue()), err
}

func TestWatch_CurrentThenNewerThenClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := New(nil)
	p.Publish([]byte("gen-1"))
	cc := serve(t, p)
	s := watch(t, ctx, cc, "filter-a")
	if got, err := recv(t, s); err != nil || got != "gen-1" {
		t.Fatalf("first message = %q, %v; want the current bundle", got, err)
	}
	p.Publish([]byte("gen-2"))
	if got, err := recv(t, s); err != nil || got != "gen-2" {
		t.Fatalf("after Publish = %q, %v; want gen-2", got, err)
	}

	p.Close()
	if _, err := recv(t, s); status.Code(err) != codes.Unavailable || status.Convert(err).Message() != status.Convert(ErrClosed).Message() {
		t.Errorf("open stream after Close ended with %v, want %v", err, ErrClosed)
	}
	// A subscription opened after Close ends at once, current bundle first.
	late := watch(t, ctx, cc, "filter-b")
	if got, err := recv(t, late); err != nil || got != "gen-2" {
		t.Fatalf("late subscriber's first message = %q, %v; want gen-2", got, err)
	}
	if _, err := recv(t, late); status.Code(err) != codes.Unavailable {
		t.Errorf("late stream after Close ended with %v, want UNAVAILABLE", err)
	}
	p.Close() // a second Close is harmless
}
