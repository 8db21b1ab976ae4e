package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/hopguard/hopguard/filters/engine"
	"github.com/hopguard/hopguard/filters/extproc"
	"github.com/hopguard/hopguard/filters/metrics"
	"github.com/hopguard/hopguard/policy/source"
)

// shutdownGrace bounds how long a stopping server waits for in-flight
// requests before it cuts them off.
const shutdownGrace = 5 * time.Second

type extProcFlags struct {
	addr        string
	metricsAddr string
	configDir   string
	debounce    time.Duration
}

func newExtProcCmd(env Env, g *globalFlags) *cobra.Command {
	f := &extProcFlags{}
	cmd := &cobra.Command{
		Use:   "extproc --config DIR [--addr ADDR] [--metrics-addr ADDR]",
		Short: "Serve the ext_proc filter that enforces budgets per request",
		Long: `extproc serves envoy.service.ext_proc.v3.ExternalProcessor for Envoy sidecars
and proxyless gRPC clients. It reads the same budget YAML as the control plane
from --config (watched for changes; an invalid change is refused and the last
good policies stay in force) and serves /metrics, /healthz and /readyz on
--metrics-addr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serveExtProc(cmd.Context(), env, g, f)
		},
	}
	cmd.Flags().StringVar(&f.addr, "addr", "127.0.0.1:18001", "address of the ext_proc gRPC server")
	cmd.Flags().StringVar(&f.metricsAddr, "metrics-addr", "127.0.0.1:18081", "address of the metrics HTTP server")
	cmd.Flags().StringVar(&f.configDir, "config", "", "directory of budget YAML, watched for changes (required)")
	cmd.Flags().DurationVar(&f.debounce, "debounce", 200*time.Millisecond, "quiet time after a config file change before reloading")
	_ = cmd.MarkFlagRequired("config")
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
}

// sweepEvery is how often expired idempotency records are removed.
const sweepEvery = 10 * time.Second

// newFilter builds an engine whose metrics go to reg and its ext_proc gRPC
// server, not yet serving: callers install the first policies, then call
// serve, so no request is ever decided without policies.
func newFilter(reg prometheus.Registerer, log *zap.Logger) (*filterStack, error) {
	m, err := metrics.New(reg)
	if err != nil {
		return nil, err
	}
	eng := engine.New(engine.Options{Metrics: m, Logger: log})
	gs := grpc.NewServer()
	extproc.New(extproc.Options{Engine: eng, Logger: log}).Register(gs)
	return &filterStack{engine: eng, grpc: gs, served: make(chan error, 1)}, nil
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

// stop drains in-flight Process streams for up to shutdownGrace.
func (s *filterStack) stop() error {
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
	stack, err := newFilter(reg, log)
	if err != nil {
		return err
	}
	src, err := source.Open(f.configDir, stack.engine.SetBundle, source.Options{Debounce: f.debounce, Logger: log})
	if err != nil {
		return fmt.Errorf("extproc: config %s: %w", f.configDir, err)
	}
	if err := stack.serve(f.addr); err != nil {
		_ = src.Close()
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := src.LastError(); err != nil {
			// Still enforcing the last good policies: ready, with the reason shown.
			_, _ = fmt.Fprintf(w, "ok (last change refused: %v)\n", err)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mlis, err := net.Listen("tcp", f.metricsAddr)
	if err != nil {
		_ = src.Close()
		_ = stack.stop()
		return fmt.Errorf("extproc: metrics: %w", err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := hs.Serve(mlis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", zap.Error(err))
		}
	}()

	wctx, stopWatch := context.WithCancel(ctx)
	watched := make(chan error, 1)
	go func() { watched <- src.Run(wctx) }()

	log.Info("ext_proc serving", zap.String("addr", stack.lis.Addr().String()), zap.String("metrics", mlis.Addr().String()), zap.String("config", f.configDir))
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-stack.served:
		stack.served <- runErr // stop reads it again
	}
	log.Info("shutting down")
	stopWatch()
	<-watched
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	_ = hs.Shutdown(shutdownCtx)
	if err := stack.stop(); err != nil {
		return err
	}
	return runErr
}
