package storm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"

	"github.com/hopguard/hopguard/controlplane"
	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/filters/engine"
	"github.com/hopguard/hopguard/filters/extproc"
	"github.com/hopguard/hopguard/filters/interceptor"
	"github.com/hopguard/hopguard/filters/metrics"
)

// method is the one route every hop serves.
const method = "grpc.testing.TestService/UnaryCall"

// deadlineKey carries the originating request's deadline (Unix ns) down the
// chain, so the leaf can tell work started after the caller gave up.
const deadlineKey = "x-storm-deadline"

// chain is one running mesh: the first service is called by the load
// generator, each calls the next, the last is the leaf.
type chain struct {
	dir     string
	cp      *controlplane.ControlPlane
	cancel  context.CancelFunc
	servers []*grpc.Server
	conns   []*grpc.ClientConn
	wg      sync.WaitGroup
	edge    *grpc.ClientConn
	leaf    *leaf
	// rec is the recorder every service reports to; runOne swaps it.
	rec atomic.Pointer[recorder]
}

// meshYAML is the hopguard configuration of cfg for the chain at addrs.
func meshYAML(chainNames []string, cfg Config, addrs map[string]string, extProc string, deadline time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: hopguard.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: default}\nspec:\n  environment: storm\n  extProc: {address: %q, timeout: 1s}\n", extProc)
	for i, h := range chainNames {
		port := addrs[h][strings.LastIndexByte(addrs[h], ':')+1:]
		fmt.Fprintf(&b, "---\napiVersion: hopguard.dev/v1alpha1\nkind: Service\nmetadata: {name: %s, namespace: storm}\nspec:\n  port: %s\n  endpoints: [{address: %q}]\n", h, port, addrs[h])
		if i+1 < len(chainNames) {
			fmt.Fprintf(&b, "  dependsOn: [%s]\n", chainNames[i+1])
		}
		hp := cfg.hop(h)
		minPS := 1
		if hp.MinPerSecond != nil {
			minPS = *hp.MinPerSecond
		}
		minRem := hp.MinRemaining
		if minRem == "" {
			minRem = "1ms"
		}
		budget := hp.Budget
		if budget == 0 {
			budget = 1
		}
		fmt.Fprintf(&b, `---
apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: %s-call, namespace: storm}
spec:
  service: %s
  match: {grpcMethod: %s}
  deadline: {default: %s, max: 10s, minRemaining: 1ms}
  retry:
    authority: %s
    attempts: %d
    on: [unavailable]
    backoff: {base: 5ms, max: 20ms}
    minRemaining: %s
    budget: {ratio: %g, minPerSecond: %d}
  sideEffects: false
`, h, h, method, deadline, hp.Authority, hp.Attempts, minRem, budget, minPS)
	}
	return b.String()
}

// leaf is the chain's last service: fixed capacity, injectable faults.
type leaf struct {
	testgrpc.UnimplementedTestServiceServer
	name  string
	cfg   Leaf
	slots chan struct{}
	queue atomic.Int64
	fault atomic.Pointer[Fault]
	rec   *atomic.Pointer[recorder]
}

func (l *leaf) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	now := time.Now()
	var origin time.Time
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(deadlineKey); len(v) > 0 {
			if ns, err := strconv.ParseInt(v[0], 10, 64); err == nil {
				origin = time.Unix(0, ns)
			}
		}
	}
	l.rec.Load().attempt(l.name, now)
	l.rec.Load().leafAttempt(now, !origin.IsZero() && now.After(origin))
	f := l.fault.Load()
	if f != nil && f.Unavailable > 0 && rand.Float64() < f.Unavailable {
		return nil, status.Error(codes.Unavailable, "leaf: injected failure")
	}
	if l.cfg.QueueLimit > 0 && l.queue.Load() >= int64(l.cfg.QueueLimit) {
		return nil, status.Error(codes.Unavailable, "leaf: over capacity, shedding")
	}
	l.queue.Add(1)
	select {
	case l.slots <- struct{}{}:
		l.queue.Add(-1)
	case <-ctx.Done():
		l.queue.Add(-1)
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	work := time.Duration(l.cfg.ServiceTime)
	if f != nil {
		work += time.Duration(f.Latency)
	}
	// The work runs to its end whether or not the caller still waits, as a
	// real handler's would.
	time.Sleep(work)
	<-l.slots
	if !origin.IsZero() && time.Now().After(origin) {
		l.rec.Load().lateWork()
	}
	return &testgrpc.SimpleResponse{}, nil
}

// hop is edge, b or c: it calls the next service.
type hop struct {
	testgrpc.UnimplementedTestServiceServer
	name string
	next testgrpc.TestServiceClient
	rec  *atomic.Pointer[recorder]
}

func (h *hop) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	h.rec.Load().attempt(h.name, time.Now())
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(deadlineKey); len(v) > 0 {
			ctx = metadata.AppendToOutgoingContext(ctx, deadlineKey, v[0])
		}
	}
	return h.next.UnaryCall(ctx, req)
}

// startChain starts the mesh for cfg. On error everything started is stopped.
func startChain(ctx context.Context, chainNames []string, cfg Config, l Leaf, deadline time.Duration, rec *recorder, log *zap.Logger) (c *chain, err error) {
	c = &chain{}
	c.rec.Store(rec)
	defer func() {
		if err != nil {
			c.stop()
			c = nil
		}
	}()
	fm, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		return c, err
	}
	newEngine := func() *engine.Engine { return engine.New(engine.Options{Metrics: fm, Logger: log}) }
	lis := map[string]net.Listener{}
	addrs := map[string]string{}
	for _, name := range append([]string{"extproc"}, chainNames...) {
		li, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			for _, o := range lis {
				_ = o.Close()
			}
			return c, fmt.Errorf("storm: listen: %w", err)
		}
		lis[name], addrs[name] = li, li.Addr().String()
	}
	c.dir, err = os.MkdirTemp("", "hopguard-storm-")
	if err != nil {
		return c, fmt.Errorf("storm: %w", err)
	}
	if err := os.WriteFile(filepath.Join(c.dir, "mesh.yaml"), []byte(meshYAML(chainNames, cfg, addrs, addrs["extproc"], deadline)), 0o600); err != nil {
		return c, fmt.Errorf("storm: %w", err)
	}
	caller := newEngine()
	engines := []*engine.Engine{caller}
	inbound := map[string]*engine.Engine{}
	for _, h := range chainNames {
		inbound[h] = newEngine()
		engines = append(engines, inbound[h])
	}
	cctx, cancel := context.WithCancel(ctx)
	c.cancel = cancel
	c.cp, err = controlplane.Start(cctx, controlplane.Options{
		ConfigDir: c.dir, XDSAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Logger: log,
		Registry: prometheus.NewRegistry(),
		OnApply: func(m *ir.Mesh) {
			b := m.Bundle()
			for _, e := range engines {
				e.SetBundle(b)
			}
		},
	})
	if err != nil {
		for _, o := range lis {
			_ = o.Close()
		}
		return c, fmt.Errorf("storm: control plane (config %s): %w", cfg.Name, err)
	}
	serve := func(gs *grpc.Server, li net.Listener) {
		c.servers = append(c.servers, gs)
		c.wg.Add(1)
		go func() { defer c.wg.Done(); _ = gs.Serve(li) }()
	}
	eps := grpc.NewServer()
	extproc.New(extproc.Options{Engine: caller, Logger: log}).Register(eps)
	serve(eps, lis["extproc"])

	// The control plane's port makes node IDs unique within the process.
	seq := c.cp.XDSAddr()[strings.LastIndexByte(c.cp.XDSAddr(), ':')+1:]
	last := chainNames[len(chainNames)-1]
	for i, name := range chainNames {
		ic := interceptor.New(inbound[name], interceptor.Options{Logger: log})
		gs := grpc.NewServer(grpc.UnaryInterceptor(ic.Unary()))
		if name == last {
			c.leaf = &leaf{name: name, cfg: l, slots: make(chan struct{}, l.Concurrency), rec: &c.rec}
			testgrpc.RegisterTestServiceServer(gs, c.leaf)
		} else {
			cc, err := dialXDS(c.cp.XDSAddr(), addrs["extproc"], name, fmt.Sprintf("%s-%d-%s", name, os.Getpid(), seq), chainNames[i+1])
			if err != nil {
				gs.Stop()
				return c, err
			}
			c.conns = append(c.conns, cc)
			testgrpc.RegisterTestServiceServer(gs, &hop{name: name, next: testgrpc.NewTestServiceClient(cc), rec: &c.rec})
		}
		serve(gs, lis[name])
	}
	c.edge, err = grpc.NewClient(addrs[chainNames[0]], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return c, fmt.Errorf("storm: dial edge: %w", err)
	}
	return c, nil
}

func dialXDS(xdsAddr, extProcAddr, cluster, nodeID, target string) (*grpc.ClientConn, error) {
	creds := []any{map[string]any{"type": "insecure"}}
	raw, err := json.Marshal(map[string]any{
		"xds_servers":           []any{map[string]any{"server_uri": xdsAddr, "channel_creds": creds, "server_features": []any{"xds_v3"}}},
		"node":                  map[string]any{"id": nodeID, "cluster": cluster},
		"allowed_grpc_services": map[string]any{extProcAddr: map[string]any{"channel_creds": creds}},
	})
	if err != nil {
		return nil, fmt.Errorf("storm: bootstrap: %w", err)
	}
	rb, err := xds.NewXDSResolverWithConfigForTesting(raw)
	if err != nil {
		return nil, fmt.Errorf("storm: xds resolver: %w", err)
	}
	cc, err := grpc.NewClient("xds:///"+target, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(rb))
	if err != nil {
		return nil, fmt.Errorf("storm: dial xds:///%s: %w", target, err)
	}
	return cc, nil
}

// stop stops everything, callers first.
func (c *chain) stop() {
	if c.edge != nil {
		_ = c.edge.Close()
	}
	for i := len(c.servers) - 1; i >= 0; i-- {
		c.servers[i].Stop()
	}
	for _, cc := range c.conns {
		_ = cc.Close()
	}
	c.wg.Wait()
	if c.cp != nil {
		c.cp.Stop()
		_ = c.cp.Wait()
	}
	if c.cancel != nil {
		c.cancel()
	}
	if c.dir != "" {
		_ = os.RemoveAll(c.dir)
	}
}

// ErrExtProcDisabled is returned by Run when grpc-go's client-side ext_proc
// filter is not enabled in this process.
var ErrExtProcDisabled = errors.New("storm: set GRPC_EXPERIMENTAL_XDS_EXT_PROC_ON_CLIENT=true in the environment before the process starts (grpc-go reads it at init)")
