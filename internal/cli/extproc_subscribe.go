package cli

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hopguard/hopguard/controlplane/bundles"
	"github.com/hopguard/hopguard/filters/engine"
	"github.com/hopguard/hopguard/filters/subscribe"
	"github.com/hopguard/hopguard/internal/tlsfiles"
	"github.com/hopguard/hopguard/policy/bundle"
	"github.com/hopguard/hopguard/policy/signing"
	"github.com/hopguard/hopguard/policy/source"
)

// policyFeed keeps an engine's policies current: a watched directory or a
// subscription to the control plane.
type policyFeed interface {
	// Run keeps the policies current until ctx ends.
	Run(ctx context.Context) error
	// LastError is the last refused change (nil when the last one was accepted).
	LastError() error
	// Close releases the feed.
	Close() error
}

// subscriptionFlags are extproc's flags for following a control plane.
type subscriptionFlags struct {
	controlPlane  string
	verifyKeys    []string
	environment   string
	allowUnsigned bool
	// tls reaches the control plane over TLS when any file is set.
	tls tlsfiles.Client
}

// tlsEnabled reports whether any TLS flag is set.
func (f *subscriptionFlags) tlsEnabled() bool {
	return f.tls.CA != "" || f.tls.Cert != "" || f.tls.Key != "" || f.tls.ServerName != ""
}

// openFeed installs the first policies into eng from the configured source
// and returns the feed that keeps them current. With --control-plane it
// waits for the first verified bundle (until ctx ends): the filter does not
// serve before it has policies it can trust.
func openFeed(ctx context.Context, f *extProcFlags, eng *engine.Engine, reg prometheus.Registerer, log *zap.Logger) (policyFeed, error) {
	switch {
	case f.configDir != "" && f.sub.controlPlane != "":
		return nil, errors.New("usage: --config and --control-plane are exclusive: read budgets from a directory or from the control plane")
	case f.configDir != "" && (len(f.sub.verifyKeys) > 0 || f.sub.environment != "" || f.sub.allowUnsigned || f.sub.tlsEnabled()):
		return nil, errors.New("usage: --verify-key, --environment, --allow-unsigned and --control-plane-* apply to --control-plane; with --config the directory is trusted as it is")
	case f.configDir != "":
		src, err := source.Open(f.configDir, eng.SetBundle, source.Options{Debounce: f.debounce, Logger: log, AllowEmpty: f.allowEmpty})
		if err != nil {
			return nil, fmt.Errorf("extproc: config %s: %w", f.configDir, err)
		}
		return src, nil
	case f.sub.controlPlane != "":
		return openSubscription(ctx, &f.sub, eng, reg, log)
	default:
		return nil, errors.New("usage: one of --config DIR or --control-plane ADDR is required")
	}
}

// subscriptionFeed follows the control plane's bundle stream.
type subscriptionFeed struct {
	cancel context.CancelFunc
	done   chan struct{}
	conn   *grpc.ClientConn

	mu      sync.Mutex
	lastErr error
}

func openSubscription(ctx context.Context, f *subscriptionFlags, eng *engine.Engine, reg prometheus.Registerer, log *zap.Logger) (*subscriptionFeed, error) {
	if f.environment == "" {
		return nil, errors.New("usage: --control-plane needs --environment (the MeshConfig environment this filter enforces; bundles for another are refused)")
	}
	var keys []*signing.PublicKey
	for _, p := range f.verifyKeys {
		k, err := signing.LoadPublicKey(p)
		if err != nil {
			return nil, fmt.Errorf("extproc: --verify-key: %w", err)
		}
		keys = append(keys, k)
	}
	v := bundle.NewVerifier(f.environment, keys...)
	switch {
	case f.allowUnsigned:
		v.AllowUnsigned()
		log.Warn("--allow-unsigned: unsigned policy bundles are accepted; anyone able to reach this filter's subscription can change what it enforces")
	case len(keys) == 0:
		return nil, errors.New("usage: --control-plane needs --verify-key FILE (or --allow-unsigned for a trial)")
	}
	m, err := subscribe.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if f.tlsEnabled() {
		f.tls.OnReloadError = func(err error) {
			log.Error("TLS client certificate files changed but do not load; the previous certificate stays in use", zap.Error(err))
		}
		cfg, err := f.tls.Config()
		if err != nil {
			return nil, fmt.Errorf("--control-plane-ca/-cert/-key: %w", err)
		}
		creds = credentials.NewTLS(cfg)
	}
	conn, err := grpc.NewClient(f.controlPlane, grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(bundles.ClientKeepalive))
	if err != nil {
		return nil, fmt.Errorf("extproc: --control-plane: %w", err)
	}
	s := &subscriptionFeed{conn: conn, done: make(chan struct{})}
	first := make(chan struct{})
	var once sync.Once
	accept := func(raw []byte) (uint64, error) {
		b, err := v.Accept(raw)
		unchanged := errors.Is(err, bundle.ErrUnchanged)
		s.mu.Lock()
		if unchanged {
			s.lastErr = nil // in step with the control plane again
		} else {
			s.lastErr = err
		}
		s.mu.Unlock()
		if unchanged {
			return v.Generation(), fmt.Errorf("%w: %w", subscribe.ErrUnchanged, err)
		}
		if err != nil {
			return 0, err
		}
		eng.SetBundle(&b.Policies)
		once.Do(func() { close(first) })
		return b.Generation, nil
	}
	rctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		defer close(s.done)
		_ = subscribe.Run(rctx, subscribe.Options{Conn: conn, Subscriber: "extproc", Accept: accept,
			Reason: bundle.Reason, Metrics: m, Logger: log})
	}()
	log.Info("waiting for the first verified policy bundle", zap.String("control_plane", f.controlPlane))
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-first:
			return s, nil
		case <-ctx.Done():
			return nil, errors.Join(fmt.Errorf("extproc: no verified bundle from %s: %w", f.controlPlane, ctx.Err()), s.Close())
		case <-tick.C:
			log.Warn("still waiting for the first verified policy bundle; not serving yet",
				zap.String("control_plane", f.controlPlane), zap.NamedError("last_refusal", s.LastError()))
		}
	}
}

// Run blocks until ctx ends; the subscription runs on its own since open.
func (s *subscriptionFeed) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// LastError is the last refusal, nil once a later bundle was accepted or
// the bundle in force was received again.
func (s *subscriptionFeed) LastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// Close ends the subscription and its connection.
func (s *subscriptionFeed) Close() error {
	s.cancel()
	<-s.done
	if err := s.conn.Close(); err != nil {
		return fmt.Errorf("extproc: close subscription: %w", err)
	}
	return nil
}
