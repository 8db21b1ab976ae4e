package cpscale

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/hopguard/hopguard/controlplane/xds"
)

// ack is one client's acknowledgement of a version.
type ack struct {
	client  int
	version string
	at      time.Time
}

// fleet is a set of lightweight ADS clients: each one a distinct node
// (node.cluster = its service, Envoy flavor) with its own connection and
// one ADS stream subscribed to its listeners, ACKing every response at
// once. Close stops every goroutine it started.
type fleet struct {
	acks    chan ack
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	conns   []*grpc.ClientConn
	nodes   map[string]string
	service []string
	mu      sync.Mutex
	errs    []error
}

// startFleet connects n clients to addr; client i serves service
// serviceName(i % services).
func startFleet(addr string, n, services int) (*fleet, error) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fleet{acks: make(chan ack, 4*n), cancel: cancel, nodes: map[string]string{}}
	for i := range n {
		svc := serviceName(i % services)
		id := fmt.Sprintf("bench-node-%05d", i)
		f.nodes[id] = svc
		f.service = append(f.service, svc)
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, errors.Join(fmt.Errorf("cpscale: %w", err), f.close())
		}
		f.conns = append(f.conns, cc)
		node := &corev3.Node{Id: id, Cluster: svc, Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			xds.FlavorMetadataKey: structpb.NewStringValue(xds.FlavorEnvoy),
		}}}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			if err := runClient(ctx, cc, node, i, f.acks); err != nil && ctx.Err() == nil {
				f.mu.Lock()
				f.errs = append(f.errs, err)
				f.mu.Unlock()
			}
		}()
	}
	return f, nil
}

// runClient subscribes to the node's listeners and ACKs every response.
func runClient(ctx context.Context, cc *grpc.ClientConn, node *corev3.Node, idx int, acks chan<- ack) error {
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		return fmt.Errorf("cpscale: client %d: %w", idx, err)
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ListenerType}); err != nil {
		return fmt.Errorf("cpscale: client %d: %w", idx, err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("cpscale: client %d: %w", idx, err)
		}
		if err := stream.Send(&discoveryv3.DiscoveryRequest{
			Node: node, TypeUrl: resp.GetTypeUrl(), VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce(),
		}); err != nil {
			return fmt.Errorf("cpscale: client %d: ack: %w", idx, err)
		}
		select {
		case acks <- ack{client: idx, version: resp.GetVersionInfo(), at: time.Now()}:
		case <-ctx.Done():
			return nil
		}
	}
}

// await waits until every client has ACKed its service's version in want
// and returns, per client, the time of that ACK. ACKs of other versions
// are skipped.
func (f *fleet) await(ctx context.Context, want map[string]string, timeout time.Duration) ([]time.Time, error) {
	return f.awaitSome(ctx, want, timeout, func(int) bool { return true })
}

// awaitChanged is await for the clients whose service's version differs
// between prev and want; the others' times are zero.
func (f *fleet) awaitChanged(ctx context.Context, want, prev map[string]string, timeout time.Duration) ([]time.Time, error) {
	return f.awaitSome(ctx, want, timeout, func(c int) bool { return want[f.service[c]] != prev[f.service[c]] })
}

// awaitSome is await for the clients include selects.
func (f *fleet) awaitSome(ctx context.Context, want map[string]string, timeout time.Duration, include func(client int) bool) ([]time.Time, error) {
	got := make([]time.Time, len(f.service))
	left := 0
	for c := range f.service {
		if include(c) {
			left++
		}
	}
	total := left
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for left > 0 {
		select {
		case a := <-f.acks:
			if include(a.client) && got[a.client].IsZero() && a.version == want[f.service[a.client]] {
				got[a.client] = a.at
				left--
			}
		case <-timer.C:
			f.mu.Lock()
			errs := errors.Join(f.errs...)
			f.mu.Unlock()
			return got, fmt.Errorf("cpscale: %d of %d clients did not ACK within %v: %w", left, total, timeout, errs)
		case <-ctx.Done():
			return got, fmt.Errorf("cpscale: %w", ctx.Err())
		}
	}
	return got, nil
}

// close cancels every stream, waits for the clients and closes the connections.
func (f *fleet) close() error {
	f.cancel()
	f.wg.Wait()
	var errs []error
	for _, cc := range f.conns {
		if err := cc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("cpscale: %w", err))
		}
	}
	return errors.Join(errs...)
}
