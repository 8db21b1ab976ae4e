package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/hopguard/hopguard/filters/engine"
	"github.com/hopguard/hopguard/filters/extproc"
	"github.com/hopguard/hopguard/filters/idempotency"
	"github.com/hopguard/hopguard/filters/idempotency/redisstore"
	"github.com/hopguard/hopguard/filters/metrics"
)

// shutdownGrace bounds how long a stopping server waits for in-flight
// requests before it cuts them off.
const shutdownGrace = 5 * time.Second

type extProcFlags struct {
	addr        string
	metricsAddr string
	configDir   string
	allowEmpty  bool
	debounce    time.Duration
	store       storeFlags
	sub         subscriptionFlags
}

func newExtProcCmd(env Env, g *globalFlags) *cobra.Command {
	f := &extProcFlags{}
	cmd := &cobra.Command{
		Use:   "extproc (--config DIR | --control-plane ADDR --verify-key FILE --environment ENV) [--addr ADDR] [--metrics-addr ADDR]",
		Short: "Serve the ext_proc filter that enforces budgets per request",
		Long: `extproc serves envoy.service.ext_proc.v3.ExternalProcessor for Envoy sidecars
and proxyless gRPC clients. It reads the same budget YAML as the control plane
from --config (watched for changes; an invalid change is refused and the last
good policies stay in force) and serves /metrics, /healthz and /readyz on
--metrics-addr.

With --control-plane it follows the control plane's signed policy bundles
instead: each is verified against --verify-key, and an unsigned, tampered,
older or other-environment bundle is refused (counted in
hopguard_filter_bundle_refusals_total{reason}); the last good one stays in
force. The stream reconnects on its own with jittered backoff. The filter
does not listen until the first verified bundle has arrived, so data planes
apply their failure mode meanwhile (side effects fail closed).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serveExtProc(cmd.Context(), env, g, f)
		},
	}
	cmd.Flags().StringVar(&f.addr, "addr", "127.0.0.1:18001", "address of the ext_proc gRPC server")
	cmd.Flags().StringVar(&f.metricsAddr, "metrics-addr", "127.0.0.1:18081", "address of the metrics HTTP server")
	cmd.Flags().StringVar(&f.configDir, "config", "", "directory of budget YAML, watched for changes (this or --control-plane)")
	cmd.Flags().BoolVar(&f.allowEmpty, "allow-empty-config", false, "with --config: accept a directory without route budgets (refused by default: an emptied or unmounted directory would turn enforcement off)")
	cmd.Flags().DurationVar(&f.debounce, "debounce", 200*time.Millisecond, "quiet time after a config file change before reloading")
	f.store.register(cmd.Flags())
	cmd.Flags().StringVar(&f.sub.controlPlane, "control-plane", "", "follow the control plane's signed policy bundles at this xDS address instead of reading --config")
	cmd.Flags().StringArrayVar(&f.sub.verifyKeys, "verify-key", nil, "public key (PEM) bundles must be signed with; repeat during a key rotation")
	cmd.Flags().StringVar(&f.sub.environment, "environment", "", "the MeshConfig environment this filter enforces; bundles for another are refused (required with --control-plane)")
	cmd.Flags().BoolVar(&f.sub.allowUnsigned, "allow-unsigned", false, "accept unsigned bundles from --control-plane (trials only)")
	cmd.Flags().StringVar(&f.sub.tls.CA, "control-plane-ca", "", "CA bundle (PEM) that verifies the control plane's TLS certificate; any --control-plane-* flag turns TLS on (default roots: the system's)")
	cmd.Flags().StringVar(&f.sub.tls.Cert, "control-plane-cert", "", "this filter's client certificate (PEM), for a control plane that requires mutual TLS")
	cmd.Flags().StringVar(&f.sub.tls.Key, "control-plane-key", "", "private key (PEM) of --control-plane-cert")
	cmd.Flags().StringVar(&f.sub.tls.ServerName, "control-plane-server-name", "", "name to verify in the control plane's certificate (default: the host of --control-plane)")
	return cmd
}

// filterStack is an engine with its ext_proc gRPC server.
type filterStack struct {
	engine *engine.Engine
	grpc   *grpc.Server
	lis    net.Listener
	served chan error
	// stopSweep ends the sweeper goroutine; swept is closed when it has.
	stopSweep chan struct{}
	swept     chan struct{}
	// closeStore releases the idempotency store's connections.
	closeStore func() error
}

// sweepEvery is how often expired idempotency records are removed.
const sweepEvery = 10 * time.Second

// newFilter builds an engine whose metrics go to reg and its ext_proc gRPC
// server, not yet serving: callers install the first policies, then call
// serve, so no request is ever decided without policies.
//
// sf selects the idempotency store (nil: the in-process LRU). A Redis store
// that cannot be reached at start is only warned about: requests fail
// closed or open per route until Redis answers, with no restart needed.
func newFilter(reg prometheus.Registerer, log *zap.Logger, sf *storeFlags) (*filterStack, error) {
	m, err := metrics.New(reg)
	if err != nil {
		return nil, err
	}
	store, closeStore, err := sf.open(m, log)
	if err != nil {
		return nil, err
	}
	eng := engine.New(engine.Options{Metrics: m, Logger: log, Store: store})
	gs := grpc.NewServer()
	extproc.New(extproc.Options{Engine: eng, Logger: log}).Register(gs)
	return &filterStack{engine: eng, grpc: gs, served: make(chan error, 1), closeStore: closeStore}, nil
}

// storeFlags select the idempotency store of a filter.
type storeFlags struct {
	// store is "memory" or a redis:// or rediss:// URL.
	store        string
	prefix       string
	timeout      time.Duration
	passwordFile string
	tlsCA        string
	tlsInsecure  bool
}

func (s *storeFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&s.store, "idempotency-store", "memory", "idempotency store: memory (per process) or redis://[:PASSWORD@]HOST:PORT/DB, rediss://… for TLS (shared by replicas)")
	fs.StringVar(&s.prefix, "idempotency-store-prefix", redisstore.DefaultPrefix, "prefix of every Redis key; replicas that share records use the same one")
	fs.DurationVar(&s.timeout, "idempotency-store-timeout", redisstore.DefaultTimeout, "bound on each idempotency store call; a slower store counts as down (routes fail closed or open per idempotency.onStoreFailure)")
	fs.StringVar(&s.passwordFile, "redis-password-file", "", "file holding the Redis password (trimmed; overrides a password in the URL)")
	fs.StringVar(&s.tlsCA, "redis-tls-ca", "", "PEM file of the CA that signs the Redis server certificate (implies TLS; default: system roots)")
	fs.BoolVar(&s.tlsInsecure, "redis-tls-insecure-skip-verify", false, "use TLS to Redis without verifying its certificate (tests only)")
}

// open builds the selected store, reporting to m, and a func that closes
// it. A nil store means the engine's default (the in-process LRU).
func (s *storeFlags) open(m *metrics.Filter, log *zap.Logger) (idempotency.Store, func() error, error) {
	noop := func() error { return nil }
	if s == nil || s.store == "" || s.store == "memory" {
		return nil, noop, nil
	}
	o, err := redisstore.ParseURL(s.store)
	if err != nil {
		return nil, nil, fmt.Errorf("usage: --idempotency-store: %w", err)
	}
	if s.timeout <= 0 {
		return nil, nil, fmt.Errorf("usage: --idempotency-store-timeout: must be positive, got %s", s.timeout)
	}
	if s.passwordFile != "" {
		b, err := os.ReadFile(s.passwordFile)
		if err != nil {
			return nil, nil, fmt.Errorf("extproc: --redis-password-file: %w", err)
		}
		o.Password = strings.TrimSpace(string(b))
	}
	if s.tlsCA != "" || s.tlsInsecure || o.TLSConfig != nil {
		var ca []byte
		if s.tlsCA != "" {
			if ca, err = os.ReadFile(s.tlsCA); err != nil {
				return nil, nil, fmt.Errorf("extproc: --redis-tls-ca: %w", err)
			}
		}
		if err := redisstore.ConfigureTLS(o, ca, s.tlsInsecure); err != nil {
			return nil, nil, fmt.Errorf("extproc: --redis-tls-ca: %w", err)
		}
	}
	// A dial or read that outlasts the operation bound is useless.
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout = max(s.timeout, 100*time.Millisecond), s.timeout, s.timeout
	client := redis.NewClient(o)
	store := redisstore.New(client, redisstore.Options{Prefix: s.prefix, Timeout: s.timeout, Observer: engine.StoreObserver(m)})
	ctx, cancel := context.WithTimeout(context.Background(), max(s.timeout, time.Second))
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		log.Warn("idempotency store not reachable yet; requests fail closed or open per route until it is",
			zap.String("addr", o.Addr), zap.Error(err))
	} else {
		log.Info("idempotency store: redis", zap.String("addr", o.Addr), zap.Int("db", o.DB), zap.Bool("tls", o.TLSConfig != nil))
	}
	return store, client.Close, nil
}

// serve starts serving ext_proc on addr.
func (s *filterStack) serve(addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("extproc: %w", err)
	}
	s.lis = lis
	go func() { s.served <- s.grpc.Serve(lis) }()
	s.stopSweep, s.swept = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.swept)
		t := time.NewTicker(sweepEvery)
		defer t.Stop()
		for {
			select {
			case <-s.stopSweep:
				return
			case <-t.C:
				s.engine.Sweep()
			}
		}
	}()
	return nil
}

// stop drains in-flight Process streams for up to shutdownGrace, then
// closes the idempotency store.
func (s *filterStack) stop() error {
	defer func() {
		if s.closeStore != nil {
			_ = s.closeStore()
		}
	}()
	if s.lis == nil { // never served
		s.grpc.Stop()
		return nil
	}
	close(s.stopSweep)
	<-s.swept
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
		s.grpc.Stop()
		<-done
	}
	if err := <-s.served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("extproc: %w", err)
	}
	return nil
}

func serveExtProc(ctx context.Context, env Env, g *globalFlags, f *extProcFlags) error {
	log, err := newLogger(env.Stderr, g)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	stack, err := newFilter(reg, log, &f.store)
	if err != nil {
		return err
	}

	// The metrics server starts first: /healthz answers while the filter
	// waits for its first policies (a liveness probe must not restart a
	// filter whose control plane is down), and /readyz says why it is not
	// ready yet.
	var feed atomic.Pointer[policyFeed]
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		src := feed.Load()
		if src == nil {
			http.Error(w, "not ready: waiting for the first policies", http.StatusServiceUnavailable)
			return
		}
		if err := (*src).LastError(); err != nil {
			// Still enforcing the last good policies: ready, with the reason shown.
			_, _ = fmt.Fprintf(w, "ok (last change refused: %v)\n", err)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mlis, err := net.Listen("tcp", f.metricsAddr)
	if err != nil {
		return errors.Join(fmt.Errorf("extproc: metrics: %w", err), stack.stop())
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := hs.Serve(mlis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", zap.Error(err))
		}
	}()
	stopMetrics := func() {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}

	src, err := openFeed(ctx, f, stack.engine, reg, log)
	if err != nil {
		stopMetrics()
		err = errors.Join(err, stack.stop())
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			// Stopped (SIGINT/SIGTERM) while waiting for the first
			// policies: a clean stop, nothing was served.
			log.Info("stopped before the first policies arrived")
			return nil
		}
		return err
	}
	if err := stack.serve(f.addr); err != nil {
		stopMetrics()
		_ = src.Close()
		return err
	}
	feed.Store(&src)

	wctx, stopWatch := context.WithCancel(ctx)
	watched := make(chan error, 1)
	go func() { watched <- src.Run(wctx) }()

	log.Info("ext_proc serving", zap.String("addr", stack.lis.Addr().String()), zap.String("metrics", mlis.Addr().String()), zap.String("config", f.configDir), zap.String("control_plane", f.sub.controlPlane))
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-stack.served:
		stack.served <- runErr // stop reads it again
	}
	log.Info("shutting down")
	stopWatch()
	<-watched
	stopMetrics()
	if err := stack.stop(); err != nil {
		return err
	}
	return runErr
}
