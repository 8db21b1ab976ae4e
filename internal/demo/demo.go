// Package demo runs the example shop (examples/shop) on loopback under a
// fault and shows what hopguard does about it: `hopguard demo`.
//
// Run starts, in this process and on free 127.0.0.1 ports, the control
// plane on a generated copy of the shop's budgets, the ext_proc server
// (the caller side of every proxyless hop) and the five shop services,
// each a grpc.Server guarded by hopguard's interceptor (the callee side)
// and calling its dependencies through grpc-go's xDS resolver. It drives
// checkouts at the gateway, makes the ledger (the leaf) fail half way
// through, lets it recover, and reports per route what was allowed and
// dropped and how many ledger attempts each gateway request cost, next to
// what naive retries at every hop would have cost.
//
// grpc-go registers its client-side ext_proc filter only when the process
// starts with GRPC_EXPERIMENTAL_XDS_EXT_PROC_ON_CLIENT=true; without it the
// services' listeners are refused and Run fails while waiting for the mesh.
// The command line re-executes itself with the variable set.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"
)

// Defaults of Options.
const (
	DefaultDuration = 20 * time.Second
	DefaultRate     = 50
	// DefaultWarmup bounds the wait for the mesh's first successful
	// checkout (xDS configuration reaching every service).
	DefaultWarmup = 15 * time.Second
)

// Phase names of Summary.Phases, in order.
const (
	PhaseSteady    = "steady"
	PhaseFault     = "fault"
	PhaseRecovered = "recovered"
)

// Options configure Run. Zero values give defaults.
type Options struct {
	// Out receives the live view and the summary (default: discarded).
	Out io.Writer
	// Duration is how long traffic is driven (default DefaultDuration).
	// The ledger fails from half of it to three quarters of it.
	Duration time.Duration
	// Rate is the number of checkouts sent to the gateway per second
	// (default DefaultRate).
	Rate int
	// Interactive redraws a live table in place each second (Out is a
	// terminal); otherwise one plain line per second is printed.
	Interactive bool
	// DuplicateEvery makes every n-th checkout reuse the previous one's
	// idempotency key, as a client retrying on its own would (default 20;
	// negative: never).
	DuplicateEvery int
	// Warmup bounds the wait for the mesh to serve its first checkout
	// (default DefaultWarmup).
	Warmup time.Duration
	// Logger receives the components' logs (default: none).
	Logger *zap.Logger
}

// Hop is one call on the path from the gateway to the ledger, with the
// budget of the route it lands on.
type Hop struct {
	// Service serves the call.
	Service string
	// Method is the full gRPC method.
	Method string
	// Route is the route budget's id.
	Route string
	// Authority is the route's retry authority (mesh, app, none).
	Authority string
	// Attempts is the route's declared attempts, first included.
	Attempts int
}

// Phase counts the checkouts sent during one part of the run and the
// ledger attempts made meanwhile.
type Phase struct {
	// Name is PhaseSteady, PhaseFault or PhaseRecovered.
	Name string
	// From and To are offsets from the start of traffic.
	From, To time.Duration
	// Requests is the number of checkouts sent to the gateway.
	Requests int64
	// Succeeded is the number of those that succeeded.
	Succeeded int64
	// LeafAttempts is the number of calls that reached the ledger's handler.
	LeafAttempts int64
}

// Amplification is LeafAttempts per gateway request (0 without requests).
func (p Phase) Amplification() float64 {
	if p.Requests == 0 {
		return 0
	}
	return float64(p.LeafAttempts) / float64(p.Requests)
}

// Goodput is successful checkouts per second.
func (p Phase) Goodput() float64 {
	if d := (p.To - p.From).Seconds(); d > 0 {
		return float64(p.Succeeded) / d
	}
	return 0
}

// RouteStats are hopguard's decisions on one route, on both sides
// (the callers' ext_proc and the callees' interceptors).
type RouteStats struct {
	// Route is the route budget's id.
	Route string
	// Allowed counts requests let through by the callee's interceptor.
	Allowed int64
	// Dropped counts rejected requests by reason (x-hopguard-reason).
	Dropped map[string]int64
	// DryRun counts, by reason, what a dry-run route would have rejected.
	DryRun map[string]int64
}

// Summary is the outcome of a run.
type Summary struct {
	// Duration is how long traffic was driven.
	Duration time.Duration
	// Rate is the checkouts sent per second.
	Rate int
	// Path is the call path to the leaf with each hop's budget.
	Path []Hop
	// NaiveAmplification is NaiveAmplification(Path): ledger attempts per
	// gateway request under a failing ledger if every hop retried.
	NaiveAmplification int
	// Requests, Succeeded count all checkouts sent and those that succeeded.
	Requests, Succeeded int64
	// Failures counts failed checkouts by gRPC code name.
	Failures map[string]int64
	// LeafAttempts counts calls that reached the ledger during the run.
	LeafAttempts int64
	// Phases are the steady, fault and recovered parts of the run.
	Phases []Phase
	// Routes are the decisions per route, sorted by route id.
	Routes []RouteStats
}

// Phase returns the phase called name.
func (s Summary) Phase(name string) (Phase, bool) {
	for _, p := range s.Phases {
		if p.Name == name {
			return p, true
		}
	}
	return Phase{}, false
}

// ErrNotReady is wrapped by Run when the mesh did not serve a checkout
// within Options.Warmup (for instance without grpc-go's ext_proc filter).
var ErrNotReady = errors.New("demo: the mesh did not become ready")

// Run starts the shop on loopback, drives traffic with a fault half way,
// writes the live view and the summary to Out, stops everything it
// started and returns the summary. Cancelling ctx ends the traffic early;
// the summary then covers what ran.
func Run(ctx context.Context, opts Options) (Summary, error) {
	opts = withDefaults(opts)
	if opts.Rate <= 0 || opts.Duration <= 0 {
		return Summary{}, fmt.Errorf("demo: rate %d and duration %v must be positive", opts.Rate, opts.Duration)
	}
	s, err := startShop(ctx, opts.Logger)
	if err != nil {
		return Summary{}, err
	}
	sum, runErr := drive(ctx, s, opts)
	if err := s.stop(); err != nil {
		runErr = errors.Join(runErr, err)
	}
	if runErr != nil {
		return sum, runErr
	}
	return sum, writeSummary(opts.Out, sum)
}

func withDefaults(o Options) Options {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Duration == 0 {
		o.Duration = DefaultDuration
	}
	if o.Rate == 0 {
		o.Rate = DefaultRate
	}
	if o.DuplicateEvery == 0 {
		o.DuplicateEvery = 20
	}
	if o.Warmup == 0 {
		o.Warmup = DefaultWarmup
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return o
}
