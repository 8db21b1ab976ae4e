// Package services holds the example shop's gRPC services: a gateway that
// takes checkouts, orders that reserves stock and charges, payments that
// books a ledger entry, inventory, and the ledger itself, whose faults can
// be switched at run time:
//
//	gateway ─► orders ─┬─► payments ─► ledger
//	                   └─► inventory
//
// The services are transport-agnostic: each takes the connections to its
// dependencies as grpc.ClientConnInterface values, so the same code runs
// behind proxyless xDS channels (xds:///payments), plain channels or
// sidecars. They forward the caller's idempotency-key metadata and deadline
// to every dependency and return a dependency's gRPC status unchanged, so
// the mesh's retry policy and hopguard's decisions see the real cause.
//
// Messages are plain Go structs carried by Codec (JSON), and each service
// is a hand-written grpc.ServiceDesc: no generated code, no protoc.
package services

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Full method names, as budgets match them (spec.match.grpcMethod without
// the leading slash).
const (
	MethodCheckout     = "/shop.Gateway/Checkout"
	MethodPlaceOrder   = "/shop.Orders/PlaceOrder"
	MethodCreateCharge = "/shop.Payments/CreateCharge"
	MethodPostEntry    = "/shop.Ledger/PostEntry"
	MethodReserve      = "/shop.Inventory/Reserve"
)

// IdempotencyHeader is the metadata key that carries a request's
// idempotency key; services copy it to the calls they make.
const IdempotencyHeader = "idempotency-key"

// CallOptions returns the options every call to a shop service needs: the
// JSON codec.
func CallOptions() []grpc.CallOption { return []grpc.CallOption{grpc.ForceCodec(Codec{})} }

// ServerOptions returns the options a grpc.Server hosting shop services
// needs: the JSON codec.
func ServerOptions() []grpc.ServerOption { return []grpc.ServerOption{grpc.ForceServerCodec(Codec{})} }

// Invoke calls method on cc with the shop codec, forwarding the incoming
// idempotency key of ctx (if any) as outgoing metadata.
func Invoke(ctx context.Context, cc grpc.ClientConnInterface, method string, in, out any) error {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if keys := md.Get(IdempotencyHeader); len(keys) > 0 {
			ctx = metadata.AppendToOutgoingContext(ctx, IdempotencyHeader, keys[0])
		}
	}
	return cc.Invoke(ctx, method, in, out, CallOptions()...)
}

// Gateway is the shop's edge: Checkout places the order with orders.
type Gateway struct {
	orders grpc.ClientConnInterface
}

// NewGateway returns a Gateway calling orders.
func NewGateway(orders grpc.ClientConnInterface) *Gateway { return &Gateway{orders: orders} }

// Checkout places o with orders and returns the order id.
func (g *Gateway) Checkout(ctx context.Context, o *Order) (*Ack, error) {
	var ack Ack
	if err := Invoke(ctx, g.orders, MethodPlaceOrder, o, &ack); err != nil {
		return nil, err
	}
	return &Ack{ID: o.ID}, nil
}

// Register adds the shop.Gateway service to s.
func (g *Gateway) Register(s grpc.ServiceRegistrar) {
	s.RegisterService(serviceDesc("shop.Gateway", unary("shop.Gateway", "Checkout", g.Checkout)), g)
}

// Orders reserves stock with inventory, then charges with payments.
type Orders struct {
	payments  grpc.ClientConnInterface
	inventory grpc.ClientConnInterface
}

// NewOrders returns an Orders calling payments and inventory.
func NewOrders(payments, inventory grpc.ClientConnInterface) *Orders {
	return &Orders{payments: payments, inventory: inventory}
}

// PlaceOrder reserves o's stock, then charges its amount.
func (s *Orders) PlaceOrder(ctx context.Context, o *Order) (*Ack, error) {
	var ack Ack
	if err := Invoke(ctx, s.inventory, MethodReserve, &Reservation{OrderID: o.ID, SKU: o.SKU, Quantity: o.Quantity}, &ack); err != nil {
		return nil, err
	}
	if err := Invoke(ctx, s.payments, MethodCreateCharge, &Charge{OrderID: o.ID, AmountCents: o.AmountCents}, &ack); err != nil {
		return nil, err
	}
	return &Ack{ID: o.ID}, nil
}

// Register adds the shop.Orders service to s.
func (s *Orders) Register(r grpc.ServiceRegistrar) {
	r.RegisterService(serviceDesc("shop.Orders", unary("shop.Orders", "PlaceOrder", s.PlaceOrder)), s)
}

// Payments books every charge in the ledger.
type Payments struct {
	ledger grpc.ClientConnInterface
}

// NewPayments returns a Payments calling ledger.
func NewPayments(ledger grpc.ClientConnInterface) *Payments { return &Payments{ledger: ledger} }

// CreateCharge books c in the ledger and returns the charge id.
func (s *Payments) CreateCharge(ctx context.Context, c *Charge) (*Ack, error) {
	id := "ch-" + c.OrderID
	var ack Ack
	if err := Invoke(ctx, s.ledger, MethodPostEntry, &Entry{ChargeID: id, AmountCents: c.AmountCents}, &ack); err != nil {
		return nil, err
	}
	return &Ack{ID: id}, nil
}

// Register adds the shop.Payments service to s.
func (s *Payments) Register(r grpc.ServiceRegistrar) {
	r.RegisterService(serviceDesc("shop.Payments", unary("shop.Payments", "CreateCharge", s.CreateCharge)), s)
}

// Inventory holds stock for orders; it always succeeds.
type Inventory struct{}

// NewInventory returns an Inventory.
func NewInventory() *Inventory { return &Inventory{} }

// Reserve holds r's stock.
func (s *Inventory) Reserve(_ context.Context, r *Reservation) (*Ack, error) {
	return &Ack{ID: "res-" + r.OrderID}, nil
}

// Register adds the shop.Inventory service to s.
func (s *Inventory) Register(r grpc.ServiceRegistrar) {
	r.RegisterService(serviceDesc("shop.Inventory", unary("shop.Inventory", "Reserve", s.Reserve)), s)
}

// Fault is what the ledger does wrong.
type Fault struct {
	// FailRatio is the share of calls, in [0, 1], that end with UNAVAILABLE.
	FailRatio float64
	// Latency is added to every call (cut short when the call ends).
	Latency time.Duration
}

// Ledger is the leaf service. It counts every call that reaches its handler
// (the leaf attempts a demo compares with the gateway's requests) and
// misbehaves as its Fault says. Safe for concurrent use.
type Ledger struct {
	// failPermyriad is FailRatio in 1/10000.
	failPermyriad atomic.Int64
	latency       atomic.Int64
	attempts      atomic.Int64
	posted        atomic.Int64
}

// NewLedger returns a healthy Ledger.
func NewLedger() *Ledger { return &Ledger{} }

// SetFault changes the ledger's behaviour for the calls that start after it.
func (l *Ledger) SetFault(f Fault) {
	l.failPermyriad.Store(int64(min(max(f.FailRatio, 0), 1) * 10000))
	l.latency.Store(int64(max(f.Latency, 0)))
}

// Attempts returns how many calls reached PostEntry's handler.
func (l *Ledger) Attempts() int64 { return l.attempts.Load() }

// Posted returns how many entries were booked.
func (l *Ledger) Posted() int64 { return l.posted.Load() }

// PostEntry books e, after the configured latency, unless the fault makes
// it fail with UNAVAILABLE.
func (l *Ledger) PostEntry(ctx context.Context, e *Entry) (*Ack, error) {
	l.attempts.Add(1)
	if d := time.Duration(l.latency.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	if p := l.failPermyriad.Load(); p > 0 && rand.Int64N(10000) < p {
		return nil, status.Error(codes.Unavailable, "ledger: injected fault")
	}
	l.posted.Add(1)
	return &Ack{ID: "entry-" + e.ChargeID}, nil
}

// Register adds the shop.Ledger service to s.
func (l *Ledger) Register(r grpc.ServiceRegistrar) {
	r.RegisterService(serviceDesc("shop.Ledger", unary("shop.Ledger", "PostEntry", l.PostEntry)), l)
}

// serviceDesc describes a service of methods. The handlers are closures
// over the implementation, so HandlerType accepts any registered value.
func serviceDesc(name string, methods ...grpc.MethodDesc) *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: name,
		HandlerType: (*any)(nil),
		Methods:     methods,
		Metadata:    "examples/shop/services",
	}
}

// unary describes a unary method whose request decodes into a new Req and
// which runs call, through the server's interceptor when there is one.
func unary[Req any](service, method string, call func(context.Context, *Req) (*Ack, error)) grpc.MethodDesc {
	full := "/" + service + "/" + method
	return grpc.MethodDesc{
		MethodName: method,
		Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			in := new(Req)
			if err := dec(in); err != nil {
				return nil, err
			}
			if ic == nil {
				return call(ctx, in)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: full}
			return ic(ctx, in, info, func(ctx context.Context, req any) (any, error) {
				r, ok := req.(*Req)
				if !ok {
					return nil, status.Error(codes.Internal, fmt.Sprintf("services: %s got a %T request", full, req))
				}
				return call(ctx, r)
			})
		},
	}
}
