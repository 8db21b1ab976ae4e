// Package bundles distributes signed policy bundles to ext_proc servers
// over a server-streaming gRPC method, hopguard.bundles.v1.Bundles/Watch,
// served beside xDS on the control plane's gRPC port.
//
// The request is a google.protobuf.StringValue naming the subscriber (for
// logs only); every response is a google.protobuf.BytesValue holding one
// bundle in its JSON encoding (policy/bundle.Marshal). A subscriber gets the
// current bundle at once, then every newer one; it verifies each itself, so
// the transport needs no trust beyond availability.
package bundles

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// ServiceName is the gRPC service name.
const ServiceName = "hopguard.bundles.v1.Bundles"

// WatchMethod is the full method name of the subscription.
const WatchMethod = "/" + ServiceName + "/Watch"

// Publisher holds the current bundle and hands it to every subscriber. It
// is safe for concurrent use; the zero value is not usable (use New).
type Publisher struct {
	log *zap.Logger

	mu      sync.Mutex
	current []byte
	// changed is closed and replaced on every Publish.
	changed chan struct{}
	// subscribers counts open Watch streams.
	subscribers int
	// closed is closed by Close.
	closed    chan struct{}
	closeOnce sync.Once
}

// Keepalive settings of the connections that carry subscriptions (and
// xDS, on the same gRPC port). A subscription stays silent while no bundle
// changes, so without pings a control plane that hangs, or a connection a
// middlebox dropped, would go unnoticed until the kernel's TCP keepalive,
// hours later. Subscribers ping after ClientKeepalive.Time of silence and
// give up after Timeout more; the server allows pings that often
// (ServerEnforcement) and pings idle clients itself (ServerKeepalive).
var (
	ClientKeepalive   = keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}
	ServerEnforcement = keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}
	ServerKeepalive   = keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}
)

// ErrClosed ends the Watch streams of a closed Publisher, as gRPC status
// UNAVAILABLE with this message: subscribers reconnect, to another
// replica or to this one once it is back.
var ErrClosed = status.Error(codes.Unavailable, "bundles: control plane shutting down")

// New returns a Publisher with no bundle: subscribers wait for the first.
func New(log *zap.Logger) *Publisher {
	if log == nil {
		log = zap.NewNop()
	}
	return &Publisher{log: log, changed: make(chan struct{}), closed: make(chan struct{})}
}

// Close ends every Watch stream with ErrClosed, and every later one at
// once, so a graceful stop of the gRPC server need not wait for them.
func (p *Publisher) Close() {
	p.closeOnce.Do(func() { close(p.closed) })
}

// Publish makes raw (a marshalled bundle) the current bundle and wakes
// every subscriber. raw must not be modified afterwards.
func (p *Publisher) Publish(raw []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.current = raw
	close(p.changed)
	p.changed = make(chan struct{})
}

// Current returns the current bundle (nil before the first Publish).
func (p *Publisher) Current() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.current
}

// Subscribers returns the number of open Watch streams.
func (p *Publisher) Subscribers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.subscribers
}

// Register serves the Watch method on g.
func (p *Publisher) Register(g *grpc.Server) {
	g.RegisterService(&serviceDesc, p)
}

// watchServer is the handler type the service descriptor names; Publisher
// is the only implementation.
type watchServer interface {
	watch(grpc.ServerStream) error
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: ServiceName,
	HandlerType: (*watchServer)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "Watch",
		ServerStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			return srv.(watchServer).watch(stream)
		},
	}},
	Metadata: "hopguard/bundles/v1",
}

func (p *Publisher) watch(stream grpc.ServerStream) error {
	var req wrapperspb.StringValue
	if err := stream.RecvMsg(&req); err != nil {
		return fmt.Errorf("bundles: read subscription: %w", err)
	}
	p.mu.Lock()
	p.subscribers++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.subscribers--
		p.mu.Unlock()
	}()
	p.log.Info("bundle subscriber connected", zap.String("subscriber", req.GetValue()))
	ctx := stream.Context()
	var sent []byte
	for {
		p.mu.Lock()
		cur, changed := p.current, p.changed
		p.mu.Unlock()
		if cur != nil && !bytes.Equal(cur, sent) {
			if err := stream.SendMsg(wrapperspb.Bytes(cur)); err != nil {
				return fmt.Errorf("bundles: send: %w", err)
			}
			sent = cur
		}
		select {
		case <-ctx.Done():
			p.log.Info("bundle subscriber left", zap.String("subscriber", req.GetValue()))
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil
			}
			return ctx.Err()
		case <-changed:
		case <-p.closed:
			p.log.Info("bundle subscriber ended: shutting down", zap.String("subscriber", req.GetValue()))
			return ErrClosed
		}
	}
}
