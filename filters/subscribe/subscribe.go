// Package subscribe keeps an ext_proc server's policies in step with the
// control plane: it holds a bundles Watch stream open, hands every bundle
// received to an Accept function that verifies and installs it, and
// reconnects with jittered exponential backoff when the stream breaks.
//
// A refused bundle changes nothing: the last accepted one stays enforced.
// Refusals are counted by reason and logged; so are reconnects.
package subscribe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/hopguard/hopguard/controlplane/bundles"
)

// AcceptFunc verifies and installs one marshalled bundle. It returns the
// bundle's generation, or an error when the bundle is refused (and nothing
// was installed). An error wrapping ErrUnchanged is not a refusal: the
// bundle verified and carries what is already enforced; generation is then
// the generation now in force (0: unknown).
type AcceptFunc func(raw []byte) (generation uint64, err error)

// ErrUnchanged, wrapped by an AcceptFunc's error, says the bundle verified
// but carries the policies already in force (e.g. sent again after a
// reconnect). It is counted as result "unchanged", not as a refusal.
var ErrUnchanged = errors.New("subscribe: bundle unchanged")

// Options configure Run.
type Options struct {
	// Conn is the connection to the control plane (required); Run does not close it.
	Conn grpc.ClientConnInterface
	// Subscriber names this process in the control plane's logs.
	Subscriber string
	// Accept verifies and installs a bundle (required).
	Accept AcceptFunc
	// Reason maps a refusal to a bounded metric label (default "refused").
	Reason func(error) string
	// Metrics receives the subscription's metrics (default: discarded).
	Metrics *Metrics
	// Logger logs refusals and reconnects (default: none).
	Logger *zap.Logger
	// BackoffBase and BackoffMax bound the reconnect delay (defaults 100ms
	// and 10s): attempt n waits a uniformly random time in [0, min(max,
	// base·2ⁿ)], and a stream that delivered a bundle resets n.
	BackoffBase, BackoffMax time.Duration
}

// Metrics are the subscription's metrics.
type Metrics struct {
	// Generation is hopguard_filter_bundle_generation: the generation of
	// the bundle being enforced (0 before the first).
	Generation prometheus.Gauge
	// Received is hopguard_filter_bundles_total{result}: bundles accepted,
	// unchanged (verified, policies already in force) or refused.
	Received *prometheus.CounterVec
	// Refusals is hopguard_filter_bundle_refusals_total{reason}.
	Refusals *prometheus.CounterVec
	// Connected is hopguard_filter_bundle_stream_up: 1 while the stream is open.
	Connected prometheus.Gauge
	// Reconnects is hopguard_filter_bundle_reconnects_total.
	Reconnects prometheus.Counter
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Generation: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hopguard_filter_bundle_generation",
			Help: "Generation of the verified policy bundle being enforced (0 before the first)."}),
		Received: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hopguard_filter_bundles_total",
			Help: "Policy bundles received from the control plane, by result (accepted, unchanged, refused)."}, []string{"result"}),
		Refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hopguard_filter_bundle_refusals_total",
			Help: "Policy bundles refused, by reason; the last accepted bundle stays enforced."}, []string{"reason"}),
		Connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hopguard_filter_bundle_stream_up",
			Help: "1 while the bundle subscription stream to the control plane is open."}),
		Reconnects: prometheus.NewCounter(prometheus.CounterOpts{Name: "hopguard_filter_bundle_reconnects_total",
			Help: "Bundle subscription streams that ended and were retried."}),
	}
	if reg != nil {
		var errs []error
		for _, c := range []prometheus.Collector{m.Generation, m.Received, m.Refusals, m.Connected, m.Reconnects} {
			errs = append(errs, reg.Register(c))
		}
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("subscribe: register metrics: %w", err)
		}
	}
	m.Received.WithLabelValues("accepted")
	m.Received.WithLabelValues("unchanged")
	m.Received.WithLabelValues("refused")
	return m, nil
}

// Run subscribes until ctx ends, reconnecting after every failure. It
// returns nil when ctx ends and an error only for invalid options.
func Run(ctx context.Context, opts Options) error {
	if opts.Conn == nil || opts.Accept == nil {
		return errors.New("subscribe: Conn and Accept are required")
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Metrics == nil {
		m, err := NewMetrics(nil)
		if err != nil {
			return err
		}
		opts.Metrics = m
	}
	if opts.Reason == nil {
		opts.Reason = func(error) string { return "refused" }
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = 100 * time.Millisecond
	}
	if opts.BackoffMax < opts.BackoffBase {
		opts.BackoffMax = max(10*time.Second, opts.BackoffBase)
	}
	failures := 0
	for {
		got, err := stream(ctx, &opts)
		opts.Metrics.Connected.Set(0)
		if ctx.Err() != nil {
			return nil
		}
		if got {
			failures = 0
		}
		wait := backoff(opts.BackoffBase, opts.BackoffMax, failures)
		failures++
		opts.Metrics.Reconnects.Inc()
		opts.Logger.Warn("bundle subscription ended; reconnecting", zap.Error(err), zap.Duration("in", wait))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// backoff is full jitter over a capped exponential.
func backoff(base, limit time.Duration, n int) time.Duration {
	d := base
	for i := 0; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// stream runs one Watch stream until it fails; got reports whether it
// delivered at least one bundle.
func stream(ctx context.Context, opts *Options) (got bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := opts.Conn.NewStream(sctx, &grpc.StreamDesc{StreamName: "Watch", ServerStreams: true}, bundles.WatchMethod)
	if err != nil {
		return false, fmt.Errorf("subscribe: open stream: %w", err)
	}
	if err := s.SendMsg(wrapperspb.String(opts.Subscriber)); err != nil {
		return false, fmt.Errorf("subscribe: send: %w", err)
	}
	if err := s.CloseSend(); err != nil {
		return false, fmt.Errorf("subscribe: close send: %w", err)
	}
	opts.Metrics.Connected.Set(1)
	for {
		var msg wrapperspb.BytesValue
		if err := s.RecvMsg(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return got, errors.New("subscribe: control plane ended the stream")
			}
			return got, fmt.Errorf("subscribe: receive: %w", err)
		}
		got = true
		gen, err := opts.Accept(msg.GetValue())
		if errors.Is(err, ErrUnchanged) {
			opts.Metrics.Received.WithLabelValues("unchanged").Inc()
			if gen > 0 {
				opts.Metrics.Generation.Set(float64(gen))
			}
			opts.Logger.Info("policy bundle unchanged; the bundle in force stays", zap.Error(err))
			continue
		}
		if err != nil {
			reason := opts.Reason(err)
			opts.Metrics.Received.WithLabelValues("refused").Inc()
			opts.Metrics.Refusals.WithLabelValues(reason).Inc()
			opts.Logger.Error("policy bundle refused; the last accepted bundle stays enforced",
				zap.String("reason", reason), zap.Error(err))
			continue
		}
		opts.Metrics.Received.WithLabelValues("accepted").Inc()
		opts.Metrics.Generation.Set(float64(gen))
		opts.Logger.Info("policy bundle installed", zap.Uint64("generation", gen))
	}
}
