// Package overhead measures what hopguard's ext_proc filter costs a
// request: an open-loop generator (bench/loadgen) speaks the ext_proc
// protocol as an Envoy sidecar does to (a) hopguard's ext_proc server
// enforcing a realistic policy mix and (b) a no-op processor that answers
// CONTINUE to everything, interleaved A/B/A/B at every rate, and a bare
// gRPC bidi round trip gives the floor.
//
// Both servers run in the harness's own process on 127.0.0.1. That is the
// fairer placement on a small shared machine: both get the same runtime,
// scheduler and GC settings and compete with the same generator for the
// same cores, so the difference between them is the processing logic, not
// process placement. Child processes would add a second and third Go
// runtime contending with the generator in ways that differ run to run.
package overhead

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/hopguard/hopguard/bench/loadgen"
	"github.com/hopguard/hopguard/bench/result"
	"github.com/hopguard/hopguard/bench/scenario"
	"github.com/hopguard/hopguard/policy"
	"github.com/hopguard/hopguard/policy/source"
)

// Placement is reported with every result (see the package doc).
const Placement = "in-process: hopguard's ext_proc server, the no-op processor and the load generator share one Go process on 127.0.0.1, so both servers get the same runtime, scheduler and cores; only their processing differs"

// minAchieved is the share of the offered rate a sustained rate must reach.
const minAchieved = 0.95

// Options configure Run.
type Options struct {
	// Quick selects the scenario's quick size.
	Quick bool
	// Progress receives one line per measured step (nil: none).
	Progress func(format string, args ...any)
}

// Run runs the scenario: it loads the policy, starts both servers, measures
// the floor, then every rate for every round as noop, hopguard, noop,
// hopguard ... and merges the rounds.
func Run(ctx context.Context, sc *scenario.Overhead, opts Options) (res *result.Overhead, err error) {
	progress := opts.Progress
	if progress == nil {
		progress = func(string, ...any) {}
	}
	bundle, err := source.LoadDir(sc.Policy)
	if err != nil {
		return nil, fmt.Errorf("overhead: policy %s: %w", sc.Policy, err)
	}
	if err := checkRoutes(bundle, sc.Mix); err != nil {
		return nil, err
	}
	size := sc.Size(opts.Quick)
	res = &result.Overhead{
		Placement:   Placement,
		Rates:       size.Rates,
		StepSeconds: size.Step.D().Seconds(),
		Rounds:      size.Rounds,
		P99BoundUs:  float64(sc.P99Bound.D().Microseconds()),
		// The reference applies to the full size only: quick rates differ.
		ReferenceRate: referenceRate(sc, opts.Quick),
		MinAchieved:   minAchieved,
		Mix:           map[string]int{},
	}
	for _, k := range sc.Mix {
		res.Mix[k.Name] += k.Weight
	}

	noop, err := startNoop()
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, noop.stop()) }()
	hg, err := startHopguard(bundle)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, hg.stop()) }()

	clients := map[string]*envoyClient{}
	for name, s := range map[string]*server{result.ServerNoop: noop, result.ServerHopguard: hg} {
		c, cerr := newEnvoyClient(s.addr, sc.Mix, name == result.ServerNoop)
		if cerr != nil {
			return nil, cerr
		}
		defer func() { err = errors.Join(err, c.close()) }()
		clients[name] = c
	}

	progress("overhead: floor (%d sequential round trips)", sc.FloorRoundTrips)
	if res.Floor, err = floor(ctx, clients[result.ServerNoop], sc.FloorRoundTrips); err != nil {
		return nil, err
	}
	// Warm both servers (connections, pools, the LRU's first allocations).
	for _, name := range []string{result.ServerNoop, result.ServerHopguard} {
		if _, err := loadgen.Run(ctx, loadgen.Step{Rate: size.Rates[0], Duration: 200 * time.Millisecond, MaxInFlight: sc.MaxInFlight, FirstSeq: 1 << 40}, clients[name].do); err != nil {
			return nil, err
		}
	}
	var seq int64
	for _, rate := range size.Rates {
		merged := map[string]*loadgen.Stats{}
		cpu := map[string]time.Duration{}
		for round := range size.Rounds {
			for _, name := range []string{result.ServerNoop, result.ServerHopguard} {
				if err := ctx.Err(); err != nil {
					return nil, fmt.Errorf("overhead: %w", err)
				}
				cpu0 := processCPU()
				st, err := loadgen.Run(ctx, loadgen.Step{Rate: rate, Duration: size.Step.D(), MaxInFlight: sc.MaxInFlight, FirstSeq: seq}, clients[name].do)
				if err != nil {
					return nil, err
				}
				cpu[name] += processCPU() - cpu0
				seq += st.Scheduled
				if merged[name] == nil {
					merged[name] = &loadgen.Stats{}
				}
				merged[name].Merge(st)
				s := loadgen.Summary(st.Hist)
				lag := loadgen.Summary(st.Lag)
				progress("overhead: %-8s %6.0f/s round %d/%d: achieved %.0f/s, p50 %s p99 %s (send lag p99 %s), %d errors, %d dropped",
					name, rate, round+1, size.Rounds, float64(st.Completed)/st.Elapsed.Seconds(), us(s.P50), us(s.P99), us(lag.P99), st.Errors, st.Dropped)
			}
		}
		for _, name := range []string{result.ServerHopguard, result.ServerNoop} {
			res.Steps = append(res.Steps, stepResult(name, rate, merged[name], cpu[name]))
		}
	}
	res.Derive()
	return res, nil
}

// referenceRate is the scenario's reference rate when the run offers it.
func referenceRate(sc *scenario.Overhead, quick bool) float64 {
	if slices.Contains(sc.Size(quick).Rates, sc.ReferenceRate) {
		return sc.ReferenceRate
	}
	return 0
}

// stepResult turns merged stats into a result step.
func stepResult(server string, rate float64, st *loadgen.Stats, cpu time.Duration) result.OverheadStep {
	s := result.OverheadStep{
		Server:     server,
		Rate:       rate,
		Scheduled:  st.Scheduled,
		Completed:  st.Completed,
		Errors:     st.Errors,
		Dropped:    st.Dropped,
		Unexpected: st.Unexpected,
		Seconds:    st.Elapsed.Seconds(),
		Achieved:   float64(st.Completed) / st.Elapsed.Seconds(),
		Outcomes:   st.Outcomes,
		Latency:    loadgen.Summary(st.Hist),
		Service:    loadgen.Summary(st.Service),
		Lag:        loadgen.Summary(st.Lag),
	}
	if sent := st.Completed + st.Errors; sent > 0 {
		s.CPUPerRequestUs = float64(cpu.Microseconds()) / float64(sent)
	}
	return s
}

// us formats microseconds for progress lines.
func us(v float64) string {
	return time.Duration(v * float64(time.Microsecond)).String()
}

// checkRoutes fails when a request kind names a route the policy lacks:
// the comparison would otherwise measure "unrouted" answers.
func checkRoutes(b *policy.Bundle, mix []scenario.RequestKind) error {
	ids := map[string]bool{}
	for _, r := range b.Routes {
		ids[r.ID] = true
	}
	var errs []error
	for _, k := range mix {
		if !ids[k.Route] {
			errs = append(errs, fmt.Errorf("overhead: mix %q: route %q is not in the policy", k.Name, k.Route))
		}
	}
	return errors.Join(errs...)
}

// floor measures n sequential round trips of one request_headers message
// on one open stream to the no-op processor: the cost of gRPC bidi
// messaging on loopback, with no stream setup and no processing.
func floor(ctx context.Context, c *envoyClient, n int) (result.Latency, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.client.Process(ctx)
	if err != nil {
		return result.Latency{}, fmt.Errorf("overhead: floor: %w", err)
	}
	req := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: c.kinds[0].headers}},
	}}
	h := loadgen.NewHistogram()
	for range n {
		start := time.Now()
		if err := stream.Send(req); err != nil {
			return result.Latency{}, fmt.Errorf("overhead: floor: send: %w", err)
		}
		if _, err := stream.Recv(); err != nil {
			return result.Latency{}, fmt.Errorf("overhead: floor: receive: %w", err)
		}
		loadgen.Record(h, time.Since(start))
	}
	if err := stream.CloseSend(); err != nil {
		return result.Latency{}, fmt.Errorf("overhead: floor: %w", err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		return result.Latency{}, fmt.Errorf("overhead: floor: stream did not end: %w", err)
	}
	return loadgen.Summary(h), nil
}
