package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hopguard/hopguard/controlplane"
	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/controlplane/metrics"
	"github.com/hopguard/hopguard/internal/tlsfiles"
	"github.com/hopguard/hopguard/policy/signing"
)

// controlPlaneFlags are the flags of the commands that run a control plane.
type controlPlaneFlags struct {
	configDir string
	xdsAddr   string
	adminAddr string
	debounce  time.Duration
	// extProcAddr, when set, also serves the ext_proc filter in-process.
	extProcAddr string
	signingKey  string
	auditLog    string
	allowEmpty  bool
	tls         tlsfiles.Server
	// store selects the in-process filter's idempotency store.
	store storeFlags
}

func (f *controlPlaneFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.configDir, "config", "", "directory of budget YAML, watched for changes (required)")
	cmd.Flags().StringVar(&f.xdsAddr, "xds-addr", "127.0.0.1:18000", "address of the xDS gRPC server")
	cmd.Flags().StringVar(&f.adminAddr, "admin-addr", "127.0.0.1:18080", "address of the admin HTTP server (/healthz, /readyz, /metrics, /config, /nodes)")
	cmd.Flags().DurationVar(&f.debounce, "debounce", 200*time.Millisecond, "quiet time after a config file change before reloading")
	cmd.Flags().StringVar(&f.signingKey, "signing-key", "", "ed25519 private key (PEM, mode 0600; see hopguard keygen) that signs policy bundles and manifests; without it they are distributed unsigned")
	cmd.Flags().StringVar(&f.auditLog, "audit-log", "", "hash-chained audit log of changes, refusals and overrides (JSON lines; sources kept beside it for hopguard pin); empty keeps none")
	cmd.Flags().StringVar(&f.tls.Cert, "tls-cert", "", "certificate chain (PEM) to serve xDS and bundle subscriptions over TLS; reloaded when the file changes")
	cmd.Flags().StringVar(&f.tls.Key, "tls-key", "", "private key (PEM) of --tls-cert")
	cmd.Flags().StringVar(&f.tls.ClientCA, "tls-client-ca", "", "CA bundle (PEM) client certificates must chain to: mutual TLS, only nodes and filters with a certificate get config")
	cmd.Flags().BoolVar(&f.allowEmpty, "allow-empty-config", false, "accept a configuration that declares no services while services are served (refused by default: an emptied or unmounted directory would remove every route)")
	_ = cmd.MarkFlagRequired("config")
}

func newControlPlaneCmd(env Env, g *globalFlags) *cobra.Command {
	f := &controlPlaneFlags{}
	cmd := &cobra.Command{
		Use:   "controlplane --config DIR [--xds-addr ADDR] [--admin-addr ADDR]",
		Short: "Serve budgets over xDS to Envoy sidecars and proxyless gRPC clients",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serveControlPlane(cmd.Context(), env, g, f)
		},
	}
	f.register(cmd)
	return cmd
}

func newRunCmd(env Env, g *globalFlags) *cobra.Command {
	f := &controlPlaneFlags{}
	cmd := &cobra.Command{
		Use:   "run --config DIR",
		Short: "All in one process: the control plane and the ext_proc filter",
		Long: `run starts everything hopguard needs in one process, on loopback by default:
the xDS control plane on --xds-addr, its admin API (with the metrics of both)
on --admin-addr, and the ext_proc filter on --extproc-addr, which enforces
exactly the policies the control plane serves. It stops cleanly on SIGINT or
SIGTERM, draining in-flight requests.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serveControlPlane(cmd.Context(), env, g, f)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&f.extProcAddr, "extproc-addr", "127.0.0.1:18001", "address of the in-process ext_proc gRPC server")
	f.store.register(cmd.Flags())
	return cmd
}

// serveControlPlane runs a control plane until ctx is cancelled.
func serveControlPlane(ctx context.Context, env Env, g *globalFlags, f *controlPlaneFlags) error {
	log, err := newLogger(env.Stderr, g)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	b := readBuildInfo(env.Version)
	var key *signing.PrivateKey
	if f.signingKey != "" {
		if key, err = signing.LoadPrivateKey(f.signingKey); err != nil {
			return err
		}
	}
	f.tls.OnReloadError = func(err error) {
		log.Error("TLS certificate files changed but do not load; the previous certificate stays in use", zap.Error(err))
	}
	tlsCfg, err := f.tls.Config()
	if err != nil {
		return fmt.Errorf("--tls-cert/--tls-key/--tls-client-ca: %w", err)
	}
	var filter *filterStack
	var onApply func(*ir.Mesh)
	if f.extProcAddr != "" {
		// The filter's engine takes every config the control plane accepts;
		// the first arrives before Start returns, and only then does the
		// filter start serving.
		if filter, err = newFilter(reg, log, &f.store); err != nil {
			return err
		}
		onApply = func(m *ir.Mesh) { filter.engine.SetBundle(m.Bundle()) }
	}
	cp, err := controlplane.Start(ctx, controlplane.Options{
		ConfigDir:  f.configDir,
		XDSAddr:    f.xdsAddr,
		AdminAddr:  f.adminAddr,
		Logger:     log,
		Registry:   reg,
		Build:      metrics.BuildInfo{Version: b.Version, Revision: b.Revision, GoVersion: b.GoVersion},
		Debounce:   f.debounce,
		OnApply:    onApply,
		SigningKey: key,
		AuditLog:   f.auditLog,
		AllowEmpty: f.allowEmpty,
		TLS:        tlsCfg,
	})
	if err != nil {
		if filter != nil {
			err = errors.Join(err, filter.stop())
		}
		return err
	}
	if filter != nil {
		if err := filter.serve(f.extProcAddr); err != nil {
			cp.Stop()
			return errors.Join(err, cp.Wait())
		}
		log.Info("ext_proc serving", zap.String("addr", filter.lis.Addr().String()))
	}
	<-ctx.Done()
	log.Info("shutting down")
	cp.Stop()
	err = cp.Wait()
	if filter != nil {
		err = errors.Join(err, filter.stop())
	}
	return err
}

// newLogger builds the process logger from the global flags.
func newLogger(w io.Writer, g *globalFlags) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(g.logLevel)
	if err != nil {
		return nil, fmt.Errorf("usage: --log-level: %w", err)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	switch g.logFormat {
	case "json":
		enc = zapcore.NewJSONEncoder(encCfg)
	case "console":
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	default:
		return nil, fmt.Errorf("usage: --log-format must be json or console, got %q", g.logFormat)
	}
	// Lock: the writer may be shared by goroutines and need not be safe for that.
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level)
	return zap.New(core), nil
}
