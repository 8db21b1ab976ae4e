package services

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// keyRecorder records the idempotency keys a server receives.
type keyRecorder struct {
	mu   sync.Mutex
	keys []string
}

func (r *keyRecorder) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	r.mu.Lock()
	r.keys = append(r.keys, md.Get(IdempotencyHeader)...)
	r.mu.Unlock()
	return h(ctx, req)
}

// serve starts a server for reg on loopback and returns a channel to it.
func serve(t *testing.T, reg func(grpc.ServiceRegistrar), opts ...grpc.ServerOption) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(append(ServerOptions(), opts...)...)
	reg(s)
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(lis) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close(); s.Stop(); <-done })
	return cc
}

// shop wires the five services directly (no mesh) and returns the ledger,
// its key recorder and a channel to the gateway.
func shop(t *testing.T) (*Ledger, *keyRecorder, *grpc.ClientConn) {
	t.Helper()
	ledger, rec := NewLedger(), &keyRecorder{}
	lc := serve(t, ledger.Register, grpc.UnaryInterceptor(rec.unary))
	ic := serve(t, NewInventory().Register)
	pc := serve(t, NewPayments(lc).Register)
	oc := serve(t, NewOrders(pc, ic).Register)
	gc := serve(t, NewGateway(oc).Register)
	return ledger, rec, gc
}

func checkout(ctx context.Context, gc *grpc.ClientConn, key string) (*Ack, error) {
	ctx = metadata.AppendToOutgoingContext(ctx, IdempotencyHeader, key)
	var ack Ack
	err := gc.Invoke(ctx, MethodCheckout, &Order{ID: key, SKU: "tea", Quantity: 2, AmountCents: 800}, &ack, CallOptions()...)
	return &ack, err
}

func TestCheckout_Success(t *testing.T) {
	ledger, rec, gc := shop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ack, err := checkout(ctx, gc, "order-1")
	if err != nil {
		t.Fatalf("Checkout: %v", err)
	}
	if ack.ID != "order-1" {
		t.Errorf("Checkout returned id %q, want order-1", ack.ID)
	}
	if ledger.Attempts() != 1 || ledger.Posted() != 1 {
		t.Errorf("ledger saw %d attempts and posted %d, want 1 and 1", ledger.Attempts(), ledger.Posted())
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.keys) != 1 || rec.keys[0] != "order-1" {
		t.Errorf("ledger received idempotency keys %v, want [order-1] forwarded through every hop", rec.keys)
	}
}

func TestCheckout_Errors(t *testing.T) {
	tests := []struct {
		name  string
		fault Fault
		// timeout is the checkout's deadline.
		timeout time.Duration
		want    codes.Code
	}{
		{"a failing ledger's UNAVAILABLE reaches the gateway's caller", Fault{FailRatio: 1}, 5 * time.Second, codes.Unavailable},
		{"ledger latency beyond the caller's deadline", Fault{Latency: time.Second}, 100 * time.Millisecond, codes.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ledger, _, gc := shop(t)
			ledger.SetFault(tt.fault)
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			_, err := checkout(ctx, gc, "order-2")
			if got := status.Code(err); got != tt.want {
				t.Errorf("Checkout: %v, want code %v", err, tt.want)
			}
			if ledger.Attempts() != 1 || ledger.Posted() != 0 {
				t.Errorf("ledger saw %d attempts and posted %d, want 1 and 0", ledger.Attempts(), ledger.Posted())
			}
		})
	}
}

func TestLedger_FailRatio(t *testing.T) {
	l := NewLedger()
	l.SetFault(Fault{FailRatio: 0.5})
	failed := 0
	for range 2000 {
		if _, err := l.PostEntry(context.Background(), &Entry{ChargeID: "c"}); err != nil {
			failed++
		}
	}
	// 2000 draws at 0.5: 1000 ± 5 standard deviations (≈ 112).
	if failed < 888 || failed > 1112 {
		t.Errorf("%d of 2000 calls failed at FailRatio 0.5", failed)
	}
	l.SetFault(Fault{})
	if _, err := l.PostEntry(context.Background(), &Entry{ChargeID: "c"}); err != nil {
		t.Errorf("a recovered ledger failed: %v", err)
	}
}

func TestCodec_RoundTrip(t *testing.T) {
	in := &Order{ID: "o", SKU: "s", Quantity: 3, AmountCents: 42}
	b, err := Codec{}.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Order
	if err := (Codec{}).Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out != *in {
		t.Errorf("round trip = %+v, want %+v", out, *in)
	}
	if err := (Codec{}).Unmarshal([]byte("{"), &out); err == nil {
		t.Error("Unmarshal of broken JSON succeeded")
	}
}
