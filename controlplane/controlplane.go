// Package controlplane runs hopguard's control plane: it loads the route
// budgets from a configuration directory, compiles them to the IR, serves
// them over xDS, reloads them when the directory changes, and exposes the
// admin HTTP API.
//
// A reload is all or nothing: a configuration with violations, or one that
// fails to compile or render, is refused whole, the last good configuration
// keeps being served, and the refusal is logged, counted
// (hopguard_config_reloads_total{result="invalid"}) and shown at /config.
package controlplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/controlplane/admin"
	"github.com/hopguard/hopguard/controlplane/audit"
	"github.com/hopguard/hopguard/controlplane/bundles"
	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/controlplane/metrics"
	"github.com/hopguard/hopguard/controlplane/watch"
	"github.com/hopguard/hopguard/controlplane/xds"
	"github.com/hopguard/hopguard/policy/bundle"
	"github.com/hopguard/hopguard/policy/signing"
)

// Default addresses (loopback: exposing them is a deliberate act).
const (
	DefaultXDSAddr   = "127.0.0.1:18000"
	DefaultAdminAddr = "127.0.0.1:18080"
)

// SchemaRev is the configuration schema revision reported by
// hopguard_policy_info and carried by bundles and manifests.
const SchemaRev = bundle.SchemaRev

// shutdownGrace bounds how long Stop waits for in-flight requests.
const shutdownGrace = 5 * time.Second

// ErrInvalidConfig is wrapped by the errors of configurations that were
// refused: violations, or failures to compile or render them.
var ErrInvalidConfig = errors.New("controlplane: invalid configuration")

// BuildInfo describes the running binary (hopguard_build_info).
type BuildInfo = metrics.BuildInfo

// Options configure Start.
type Options struct {
	// ConfigDir is the directory of YAML files to serve (required).
	ConfigDir string
	// XDSAddr is the xDS gRPC listen address (default DefaultXDSAddr; ":0"
	// or "127.0.0.1:0" picks a free port, see ControlPlane.XDSAddr).
	XDSAddr string
	// AdminAddr is the admin HTTP listen address (default DefaultAdminAddr).
	AdminAddr string
	// Logger receives logs (default: no logging).
	Logger *zap.Logger
	// Registry holds the exported metrics (default: a new registry with the
	// Go and process collectors).
	Registry *prometheus.Registry
	// Build is reported as hopguard_build_info.
	Build BuildInfo
	// Debounce is the quiet time after a file change before reloading
	// (default watch.DefaultDebounce).
	Debounce time.Duration
	// Render overrides xDS rendering (default: the translator); for tests.
	Render xds.RenderFunc
	// Now is the clock for load times and change windows (default time.Now).
	Now func() time.Time
	// DriftGrace is how long a connected node may take to acknowledge what
	// it was sent before it counts as drifted (default xds.DefaultDriftGrace).
	DriftGrace time.Duration
	// OnApply, when set, is called with every configuration the control
	// plane accepts, after it is served to connected nodes: the first one
	// before Start returns, then one per accepted reload, never concurrently.
	// An in-process ext_proc server installs its policies from it. It must
	// not block for long: reloads wait for it.
	OnApply func(*ir.Mesh)
	// SigningKey signs the distributed bundles and the runtime manifests;
	// nil distributes them unsigned, which /readyz, hopguard_signing_enabled
	// and a warning at start report.
	SigningKey *signing.PrivateKey
	// AuditLog is the path of the hash-chained audit log of configuration
	// changes, refusals and overrides; its sources directory lets Pin
	// rebuild earlier generations. Empty keeps no log (and Pin is
	// unavailable).
	AuditLog string
	// QuarantineInterval is how often drift is re-evaluated for quarantine
	// (default xds.DefaultQuarantineInterval).
	QuarantineInterval time.Duration

	// TLS, when set, serves xDS and the bundle subscriptions (one gRPC
	// port) over TLS; with ClientCAs and a ClientAuth that verifies, only
	// clients with a certificate get config. nil serves plaintext.
	TLS *tls.Config

	// AllowEmpty accepts a configuration that declares no services while
	// services are served (or were, by the audit log). Without it such a
	// reload is refused: a directory caught half-copied, unmounted or
	// emptied by mistake would otherwise remove every node's routes.
	AllowEmpty bool

	// load replaces reading and compiling the configuration; for tests.
	load loadFunc
}

// loadFunc reads and compiles the configuration of dir.
type loadFunc func(dir string) (*loaded, error)

// loaded is a compiled configuration.
type loaded struct {
	mesh     *ir.Mesh
	files    []string
	warnings v1alpha1.Violations
	// configVersion caches version(); set under reloadMu.
	configVersion string
}

// version returns the configuration version of l (meshVersion), computed
// once. A failure to encode is logged and gives "".
func (l *loaded) version(log *zap.Logger) string {
	if l.configVersion == "" {
		v, err := meshVersion(l.mesh)
		if err != nil {
			log.Error("config version", zap.Error(err))
		}
		l.configVersion = v
	}
	return l.configVersion
}

// ControlPlane is a running control plane. Its methods are safe for
// concurrent use.
type ControlPlane struct {
	dir     string
	log     *zap.Logger
	now     func() time.Time
	load    loadFunc
	onApply func(*ir.Mesh)
	reg     *prometheus.Registry
	metrics *metrics.ControlPlane
	xds     *xds.Server
	grpc    *grpc.Server
	http    *http.Server
	xdsLis  net.Listener
	admLis  net.Listener
	cancel  context.CancelFunc
	done    chan struct{}
	// signer signs bundles and manifests (nil: unsigned).
	signer *signing.PrivateKey
	// audit is the audit log (nil: none).
	audit *audit.Log
	// publisher hands bundles to subscribed ext_proc servers.
	publisher *bundles.Publisher
	// quarantineEvery is Options.QuarantineInterval.
	quarantineEvery time.Duration
	// allowEmpty is Options.AllowEmpty.
	allowEmpty bool

	// reloadMu serialises reloads and overrides, and guards dist and lastGen.
	reloadMu sync.Mutex
	dist     distribution
	// lastGen is the highest generation distributed or found in the audit log.
	lastGen uint64

	// mu guards status and errs.
	mu     sync.Mutex
	status configStatus
	errs   []error
}

var _ admin.Source = (*ControlPlane)(nil)

// configStatus is /config's status plus the distributed bundle.
type configStatus struct {
	admin.ConfigStatus
	bundle *bundle.Bundle
}

// Start loads the configuration, then serves xDS and the admin API and
// watches the configuration directory, until ctx ends or Stop is called. An
// invalid initial configuration is an error wrapping ErrInvalidConfig that
// lists every violation. Start returns once everything is listening.
func Start(ctx context.Context, opts Options) (*ControlPlane, error) {
	if opts.ConfigDir == "" {
		return nil, errors.New("controlplane: no configuration directory")
	}
	cp := &ControlPlane{dir: opts.ConfigDir, log: opts.Logger, now: opts.Now, load: opts.load, onApply: opts.OnApply, reg: opts.Registry,
		done: make(chan struct{}), signer: opts.SigningKey, quarantineEvery: opts.QuarantineInterval, allowEmpty: opts.AllowEmpty}
	if cp.log == nil {
		cp.log = zap.NewNop()
	}
	if cp.now == nil {
		cp.now = time.Now
	}
	if cp.load == nil {
		cp.load = loadDir
	}
	if cp.reg == nil {
		cp.reg = prometheus.NewRegistry()
		cp.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m, err := metrics.New(cp.reg, opts.Build)
	if err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	cp.metrics = m
	if cp.signer != nil {
		m.SigningEnabled.Set(1)
	} else {
		// The gauge says so explicitly so the signing alert has a series.
		m.SigningEnabled.Set(0)
		cp.log.Warn("no signing key: bundles and manifests are distributed unsigned; filters verifying them will refuse them (see --signing-key)")
	}
	cp.publisher = bundles.New(cp.log)
	if opts.AuditLog != "" {
		if cp.audit, err = audit.Open(opts.AuditLog); err != nil {
			return nil, fmt.Errorf("controlplane: %w", err)
		}
	} else {
		cp.log.Warn("no audit log: configuration changes are not recorded and pin is unavailable (see --audit-log)")
	}
	cp.xds = xds.New(xds.Options{Logger: cp.log, Metrics: m, Render: opts.Render, Now: cp.now, DriftGrace: opts.DriftGrace})

	// Watch before the first load so that no change is missed in between.
	w, err := watch.New(cp.dir, cp.Reload, watch.Options{Debounce: opts.Debounce, Logger: cp.log})
	if err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	pin, err := cp.restore()
	if err != nil {
		cp.xds.Close()
		return nil, errors.Join(err, w.Close(), cp.closeAudit())
	}
	reloadErr := cp.Reload(ctx)
	if err := reloadErr; err != nil {
		if pin == nil || pin.lifted != nil || !errors.Is(err, ErrInvalidConfig) {
			cp.xds.Close()
			return nil, errors.Join(err, w.Close(), cp.closeAudit())
		}
		// Pinned, quite possibly because the directory went bad: the pin
		// is served whatever the directory holds, at a restart too. The
		// refusal is recorded and shown at /config; unpin waits for a
		// directory that loads.
		cp.log.Warn("the directory's configuration is refused; serving the pinned generation", zap.Uint64("pinned_generation", pin.generation))
	}
	if err := cp.servePinned(pin); err != nil {
		cp.xds.Close()
		return nil, errors.Join(err, w.Close(), cp.closeAudit())
	}
	if reloadErr != nil {
		// Serving the pin cleared the status's error; the directory's
		// refusal still stands.
		cp.mu.Lock()
		cp.status.LastError = &admin.LoadError{Message: reloadErr.Error(), At: cp.now()}
		cp.mu.Unlock()
	}
	if cp.xdsLis, err = net.Listen("tcp", addrOr(opts.XDSAddr, DefaultXDSAddr)); err != nil {
		cp.xds.Close()
		return nil, errors.Join(fmt.Errorf("controlplane: xds listener: %w", err), w.Close(), cp.closeAudit())
	}
	if cp.admLis, err = net.Listen("tcp", addrOr(opts.AdminAddr, DefaultAdminAddr)); err != nil {
		cp.xds.Close()
		return nil, errors.Join(fmt.Errorf("controlplane: admin listener: %w", err), cp.xdsLis.Close(), w.Close(), cp.closeAudit())
	}
	gopts := []grpc.ServerOption{grpc.KeepaliveEnforcementPolicy(bundles.ServerEnforcement), grpc.KeepaliveParams(bundles.ServerKeepalive)}
	if opts.TLS != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(opts.TLS)))
	}
	cp.grpc = grpc.NewServer(gopts...)
	cp.xds.Register(cp.grpc)
	cp.publisher.Register(cp.grpc)
	cp.http = &http.Server{Handler: admin.Handler(cp), ReadHeaderTimeout: 10 * time.Second}

	runCtx, cancel := context.WithCancel(ctx)
	cp.cancel = cancel
	var wg sync.WaitGroup
	wg.Add(4)
	go func() {
		defer wg.Done()
		cp.xds.RunQuarantine(runCtx, cp.quarantineEvery)
	}()
	go func() {
		defer wg.Done()
		// ErrServerStopped: stopped before Serve began, not a failure.
		if err := cp.grpc.Serve(cp.xdsLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			cp.fail(fmt.Errorf("controlplane: xds server: %w", err))
		}
	}()
	go func() {
		defer wg.Done()
		if err := cp.http.Serve(cp.admLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cp.fail(fmt.Errorf("controlplane: admin server: %w", err))
		}
	}()
	go func() {
		defer wg.Done()
		if err := w.Run(runCtx); err != nil {
			cp.fail(err)
		}
	}()
	go func() {
		<-runCtx.Done()
		cp.shutdown()
		wg.Wait()
		if err := cp.closeAudit(); err != nil {
			cp.mu.Lock()
			cp.errs = append(cp.errs, err)
			cp.mu.Unlock()
		}
		close(cp.done)
	}()
	cp.log.Info("control plane started", zap.String("config", cp.dir),
		zap.String("xds", cp.XDSAddr()), zap.String("admin", cp.AdminAddr()))
	return cp, nil
}

func (cp *ControlPlane) closeAudit() error {
	if cp.audit == nil {
		return nil
	}
	if err := cp.audit.Close(); err != nil {
		return fmt.Errorf("controlplane: audit: %w", err)
	}
	return nil
}

func addrOr(addr, def string) string {
	if addr == "" {
		return def
	}
	return addr
}

// fail records a server error and stops the control plane.
func (cp *ControlPlane) fail(err error) {
	cp.log.Error("control plane failed", zap.Error(err))
	cp.mu.Lock()
	cp.errs = append(cp.errs, err)
	cp.mu.Unlock()
	cp.cancel()
}

// shutdown ends xDS streams and bundle subscriptions, stops the gRPC server gracefully within
// shutdownGrace (then forcibly) and shuts the admin server down.
func (cp *ControlPlane) shutdown() {
	cp.xds.Close()
	// Bundle subscriptions never end by themselves: without this, every
	// subscribed filter would hold GracefulStop for the whole grace.
	cp.publisher.Close()
	stopped := make(chan struct{})
	go func() {
		cp.grpc.GracefulStop()
		close(stopped)
	}()
	timer := time.NewTimer(shutdownGrace)
	defer timer.Stop()
	select {
	case <-stopped:
	case <-timer.C:
		cp.grpc.Stop()
		<-stopped
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := cp.http.Shutdown(ctx); err != nil {
		cp.log.Warn("admin server shutdown", zap.Error(err))
		_ = cp.http.Close()
	}
	cp.log.Info("control plane stopped")
}

// XDSAddr returns the address the xDS server listens on.
func (cp *ControlPlane) XDSAddr() string { return cp.xdsLis.Addr().String() }

// AdminAddr returns the address the admin HTTP server listens on.
func (cp *ControlPlane) AdminAddr() string { return cp.admLis.Addr().String() }

// Wait blocks until the control plane has stopped and returns the errors
// that stopped it (nil after Stop or the end of Start's context).
func (cp *ControlPlane) Wait() error {
	<-cp.done
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return errors.Join(cp.errs...)
}

// Stop stops the control plane gracefully and waits until it has stopped.
func (cp *ControlPlane) Stop() {
	cp.cancel()
	<-cp.done
}

// Config returns the served configuration and the last refused reload.
func (cp *ControlPlane) Config() admin.ConfigStatus {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	st := cp.status.ConfigStatus
	st.Files = slices.Clone(st.Files)
	if st.LastError != nil {
		e := *st.LastError
		st.LastError = &e
	}
	return st
}

// Nodes returns the status of every xDS node seen.
func (cp *ControlPlane) Nodes() []xds.NodeStatus { return cp.xds.Nodes() }

// Gatherer returns the registry holding the control plane's metrics.
func (cp *ControlPlane) Gatherer() prometheus.Gatherer { return cp.reg }
