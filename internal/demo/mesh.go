package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/xds"

	"github.com/hopguard/hopguard/controlplane"
	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/examples/shop/services"
	"github.com/hopguard/hopguard/filters/engine"
	"github.com/hopguard/hopguard/filters/extproc"
	"github.com/hopguard/hopguard/filters/interceptor"
	"github.com/hopguard/hopguard/filters/metrics"
)

// shop is the running demo mesh: control plane, ext_proc server and the
// five services, each a guarded grpc.Server calling its dependencies over
// proxyless xDS channels. stop releases everything it started.
type shop struct {
	dir      string
	reg      *prometheus.Registry
	cp       *controlplane.ControlPlane
	cpCancel context.CancelFunc
	extProc  *grpc.Server
	servers  []*grpc.Server
	conns    []*grpc.ClientConn
	served   chan error
	ledger   *services.Ledger
	gateway  *grpc.ClientConn
	hops     []Hop
	nServing int
	// pending are listeners no server owns yet; stop closes them.
	pending map[string]net.Listener
}

// shopNames are the services in start order: callees before callers.
func shopNames() []string { return []string{"ledger", "inventory", "payments", "orders", "gateway"} }

// shopDeps are each service's dependencies.
func shopDeps() map[string][]string {
	return map[string][]string{
		"gateway":  {"orders"},
		"orders":   {"inventory", "payments"},
		"payments": {"ledger"},
	}
}

// startShop starts the mesh on free loopback ports. On error everything
// already started is stopped.
func startShop(ctx context.Context, log *zap.Logger) (s *shop, err error) {
	s = &shop{
		reg: prometheus.NewRegistry(), ledger: services.NewLedger(),
		pending: map[string]net.Listener{}, served: make(chan error, len(shopNames())+1),
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.stop())
			s = nil
		}
	}()
	fm, err := metrics.New(s.reg)
	if err != nil {
		return s, fmt.Errorf("demo: metrics: %w", err)
	}
	newEngine := func() *engine.Engine { return engine.New(engine.Options{Metrics: fm, Logger: log}) }

	// Listeners first: the configuration names their addresses.
	listen := func() (net.Listener, error) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("demo: listen: %w", err)
		}
		return lis, nil
	}
	epLis, err := listen()
	if err != nil {
		return s, err
	}
	s.pending[extProcName] = epLis
	callerEngine := newEngine()
	engines := []*engine.Engine{callerEngine}
	data := configData{ExtProc: epLis.Addr().String()}
	for _, name := range shopNames() {
		lis, err := listen()
		if err != nil {
			return s, err
		}
		s.pending[name] = lis
		port := lis.Addr().(*net.TCPAddr).Port
		data.Services = append(data.Services, serviceSpec{Name: name, Addr: lis.Addr().String(), Port: port, DependsOn: shopDeps()[name]})
	}
	if s.dir, err = writeConfig(data); err != nil {
		return s, err
	}
	inbound := map[string]*engine.Engine{}
	for _, name := range shopNames() {
		inbound[name] = newEngine()
		engines = append(engines, inbound[name])
	}
	cpCtx, cancel := context.WithCancel(ctx)
	s.cp, err = controlplane.Start(cpCtx, controlplane.Options{
		ConfigDir: s.dir, XDSAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		Logger: log, Registry: prometheus.NewRegistry(), Debounce: 100 * time.Millisecond,
		OnApply: func(m *ir.Mesh) {
			b := m.Bundle()
			for _, e := range engines {
				e.SetBundle(b)
			}
		},
	})
	if err != nil {
		cancel()
		return s, fmt.Errorf("demo: control plane: %w", err)
	}
	s.cpCancel = cancel
	if s.hops, err = hopsFrom(callerEngine); err != nil {
		return s, err
	}
	s.extProc = grpc.NewServer()
	extproc.New(extproc.Options{Engine: callerEngine, Logger: log}).Register(s.extProc)
	s.serve(s.extProc, extProcName)

	for _, name := range shopNames() {
		dial := func(target string) (grpc.ClientConnInterface, error) {
			cc, err := dialXDS(s.cp.XDSAddr(), data.ExtProc, name, target)
			if err != nil {
				return nil, err
			}
			s.conns = append(s.conns, cc)
			return cc, nil
		}
		ic := interceptor.New(inbound[name], interceptor.Options{Logger: log})
		opts := append(services.ServerOptions(), grpc.UnaryInterceptor(ic.Unary()), grpc.StreamInterceptor(ic.Stream()))
		gs := grpc.NewServer(opts...)
		if err := register(gs, name, s.ledger, dial); err != nil {
			gs.Stop()
			return s, err
		}
		s.servers = append(s.servers, gs)
		s.serve(gs, name)
	}
	gw, err := grpc.NewClient(data.Services[len(data.Services)-1].Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return s, fmt.Errorf("demo: dial gateway: %w", err)
	}
	s.gateway = gw
	return s, nil
}

// extProcName keys the ext_proc server's listener in shop.pending.
const extProcName = "ext_proc"

// serve runs gs on the pending listener of name in a goroutine owned by s:
// gs owns the listener from here, and stop stops gs and waits for it.
func (s *shop) serve(gs *grpc.Server, name string) {
	lis := s.pending[name]
	delete(s.pending, name)
	s.nServing++
	go func() { s.served <- gs.Serve(lis) }()
}

// register adds service name's implementation to gs, dialling its
// dependencies with dial.
func register(gs *grpc.Server, name string, ledger *services.Ledger, dial func(string) (grpc.ClientConnInterface, error)) error {
	deps := map[string]grpc.ClientConnInterface{}
	for _, d := range shopDeps()[name] {
		cc, err := dial(d)
		if err != nil {
			return err
		}
		deps[d] = cc
	}
	switch name {
	case "gateway":
		services.NewGateway(deps["orders"]).Register(gs)
	case "orders":
		services.NewOrders(deps["payments"], deps["inventory"]).Register(gs)
	case "payments":
		services.NewPayments(deps["ledger"]).Register(gs)
	case "inventory":
		services.NewInventory().Register(gs)
	case "ledger":
		ledger.Register(gs)
	default:
		return fmt.Errorf("demo: unknown service %q", name)
	}
	return nil
}

// dialXDS opens a proxyless channel to xds:///target for a node of service
// cluster, bootstrapped to the control plane at xdsAddr and allowed to call
// the ext_proc server at extProcAddr (gRFC A102).
func dialXDS(xdsAddr, extProcAddr, cluster, target string) (*grpc.ClientConn, error) {
	insecureCreds := []any{map[string]any{"type": "insecure"}}
	raw, err := json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri": xdsAddr, "channel_creds": insecureCreds, "server_features": []any{"xds_v3"},
		}},
		"node": map[string]any{
			"id":       cluster + "-demo-" + strconv.Itoa(os.Getpid()),
			"cluster":  cluster,
			"locality": map[string]any{"region": "eu-west-1", "zone": "a"},
		},
		"allowed_grpc_services": map[string]any{extProcAddr: map[string]any{"channel_creds": insecureCreds}},
	})
	if err != nil {
		return nil, fmt.Errorf("demo: bootstrap: %w", err)
	}
	rb, err := xds.NewXDSResolverWithConfigForTesting(raw)
	if err != nil {
		return nil, fmt.Errorf("demo: xds resolver for %s: %w", cluster, err)
	}
	cc, err := grpc.NewClient("xds:///"+target, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(rb))
	if err != nil {
		return nil, fmt.Errorf("demo: dial xds:///%s from %s: %w", target, cluster, err)
	}
	return cc, nil
}

// stop stops everything startShop started, callers first, and removes the
// configuration directory.
func (s *shop) stop() error {
	var errs []error
	if s.gateway != nil {
		errs = append(errs, s.gateway.Close())
	}
	for i := len(s.servers) - 1; i >= 0; i-- {
		s.servers[i].Stop()
	}
	for _, cc := range s.conns {
		errs = append(errs, cc.Close())
	}
	if s.extProc != nil {
		s.extProc.Stop()
	}
	for _, lis := range s.pending {
		_ = lis.Close()
	}
	for range s.nServing {
		if err := <-s.served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errs = append(errs, fmt.Errorf("demo: serve: %w", err))
		}
	}
	if s.cp != nil {
		s.cp.Stop()
		s.cpCancel()
		errs = append(errs, s.cp.Wait())
	}
	if s.dir != "" {
		errs = append(errs, os.RemoveAll(s.dir))
	}
	return errors.Join(errs...)
}
