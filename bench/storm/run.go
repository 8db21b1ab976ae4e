package storm

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"go.uber.org/zap"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// bucket is the goodput time series' resolution.
const bucket = 100 * time.Millisecond

// RunOptions configure Run.
type RunOptions struct {
	// Quick runs the scenario's quick size.
	Quick bool
	// Progress receives one line per configuration × fault (may be nil).
	Progress io.Writer
	// Logger receives the mesh's logs (default: none).
	Logger *zap.Logger
	// ExtProcOnClient must be true: the caller confirms that
	// GRPC_EXPERIMENTAL_XDS_EXT_PROC_ON_CLIENT=true was set before the
	// process started (see the package comment).
	ExtProcOnClient bool
}

// Phase names.
const (
	PhaseWarmup   = "warmup"
	PhaseFault    = "fault"
	PhaseRecovery = "recovery"
)

// recorder collects one run's events; safe for concurrent use.
type recorder struct {
	start          time.Time
	warmEnd, fEnd  time.Time
	mu             sync.Mutex
	offered        map[string]int64
	leaf           map[string]int64
	hops           map[string]int64
	wasted         int64
	workLate       int64
	leafTotal      int64
	ok, late, errs map[string]int64
	codes          map[string]int64
	hist           *hdrhistogram.Histogram
	goodput        []int64
}

func newRecorder(start time.Time, w, f, r time.Duration) *recorder {
	return &recorder{start: start, warmEnd: start.Add(w), fEnd: start.Add(w + f),
		offered: map[string]int64{}, leaf: map[string]int64{}, hops: map[string]int64{}, ok: map[string]int64{}, late: map[string]int64{},
		errs: map[string]int64{}, codes: map[string]int64{},
		hist:    hdrhistogram.New(1, 60_000_000, 3),
		goodput: make([]int64, int(math.Ceil(float64(w+f+r)/float64(bucket)))+1)}
}

func (r *recorder) phase(t time.Time) string {
	switch {
	case t.Before(r.warmEnd):
		return PhaseWarmup
	case t.Before(r.fEnd):
		return PhaseFault
	}
	return PhaseRecovery
}

// attempt counts an attempt that reached service name in the fault phase.
func (r *recorder) attempt(name string, t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.phase(t) == PhaseFault {
		r.hops[name]++
	}
}

func (r *recorder) leafAttempt(t time.Time, afterDeadline bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.leaf[r.phase(t)]++
	r.leafTotal++
	if afterDeadline {
		r.wasted++
	}
}

// lateWork counts a leaf attempt whose work ended after the originating
// deadline: work nobody waited for.
func (r *recorder) lateWork() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.workLate++
}

func (r *recorder) done(intended time.Time, latency, deadline time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ph := r.phase(intended)
	switch {
	case err != nil:
		r.errs[ph]++
		if ph == PhaseFault {
			r.codes[status.Code(err).String()]++
		}
	case latency > deadline:
		r.late[ph]++
	default:
		r.ok[ph]++
		if i := int(intended.Sub(r.start) / bucket); i >= 0 && i < len(r.goodput) {
			r.goodput[i]++
		}
		if ph == PhaseFault {
			_ = r.hist.RecordValue(latency.Microseconds())
		}
	}
}

// drive offers load open loop: request i is due at start + i/rate (rate
// from rateAt), and its latency runs from that intended time.
func drive(ctx context.Context, c *chain, rec *recorder, end time.Time, deadline time.Duration, rateAt func(time.Time) float64) {
	client := testgrpc.NewTestServiceClient(c.edge)
	var wg sync.WaitGroup
	next := rec.start
	for next.Before(end) && ctx.Err() == nil {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		intended := next
		next = next.Add(time.Duration(float64(time.Second) / rateAt(intended)))
		rec.mu.Lock()
		rec.offered[rec.phase(intended)]++
		rec.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			dl := intended.Add(deadline)
			cctx, cancel := context.WithDeadline(ctx, dl)
			defer cancel()
			cctx = metadata.AppendToOutgoingContext(cctx, deadlineKey, strconv.FormatInt(dl.UnixNano(), 10))
			_, err := client.UnaryCall(cctx, &testgrpc.SimpleRequest{})
			rec.done(intended, time.Since(intended), deadline, err)
		}()
	}
	wg.Wait()
}

// warm waits until a request goes through the whole chain.
func warm(ctx context.Context, c *chain) error {
	client := testgrpc.NewTestServiceClient(c.edge)
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = client.UnaryCall(cctx, &testgrpc.SimpleRequest{})
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("storm: the chain never answered: %w", err)
}

// runOne runs one configuration under one fault.
func runOne(ctx context.Context, sc *Scenario, size Size, cfg Config, f Fault, log *zap.Logger) (Cell, error) {
	w, fd, rd := time.Duration(size.Warmup), time.Duration(size.Fault), time.Duration(size.Recovery)
	deadline := time.Duration(size.Deadline)
	// The recorder's clock starts after the mesh is up.
	rec := newRecorder(time.Now(), w, fd, rd)
	c, err := startChain(ctx, sc.Chain, cfg, sc.Leaf, deadline, rec, log)
	if err != nil {
		return Cell{}, err
	}
	defer c.stop()
	if err := warm(ctx, c); err != nil {
		return Cell{}, err
	}
	start := time.Now()
	fresh := newRecorder(start, w, fd, rd)
	c.rec.Store(fresh)
	rec = fresh
	faultOn := sync.OnceFunc(func() { c.leaf.fault.Store(&f) })
	faultOff := sync.OnceFunc(func() { c.leaf.fault.Store(nil) })
	rateAt := func(t time.Time) float64 {
		switch rec.phase(t) {
		case PhaseFault:
			faultOn()
			if f.Overload > 0 {
				return f.Overload * sc.Leaf.Capacity()
			}
		case PhaseRecovery:
			faultOff()
		}
		return size.Rate
	}
	drive(ctx, c, rec, start.Add(w+fd+rd), deadline, rateAt)
	if err := ctx.Err(); err != nil {
		return Cell{}, err
	}
	return rec.result(cfg.Name, f.Name, w, fd), nil
}

// result turns the recorder into a Run.
func (r *recorder) result(config, fault string, w, f time.Duration) Cell {
	r.mu.Lock()
	defer r.mu.Unlock()
	run := Cell{Config: config, Fault: fault,
		Offered: r.offered[PhaseFault], LeafAttempts: r.leaf[PhaseFault],
		OfferedTotal:      r.offered[PhaseWarmup] + r.offered[PhaseFault] + r.offered[PhaseRecovery],
		LeafAttemptsTotal: r.leafTotal, Wasted: r.wasted, WorkAfterDeadline: r.workLate,
		HopAttempts: maps.Clone(r.hops), Successes: r.ok[PhaseFault], Late: r.late[PhaseFault], Errors: r.errs[PhaseFault], ErrorCodes: r.codes,
		BaselineGoodput: float64(r.ok[PhaseWarmup]) / w.Seconds(),
		Goodput:         float64(r.ok[PhaseFault]) / f.Seconds(),
		BucketSeconds:   bucket.Seconds(),
	}
	if run.Offered > 0 {
		run.Amplification = float64(run.LeafAttempts) / float64(run.Offered)
	}
	if run.LeafAttemptsTotal > 0 {
		run.WastedShare = float64(run.Wasted) / float64(run.LeafAttemptsTotal)
	}
	if r.hist.TotalCount() > 0 {
		run.P50Ms = float64(r.hist.ValueAtQuantile(50)) / 1000
		run.P99Ms = float64(r.hist.ValueAtQuantile(99)) / 1000
	}
	for _, n := range r.goodput {
		run.GoodputSeries = append(run.GoodputSeries, float64(n)/bucket.Seconds())
	}
	run.RecoverySeconds = recovery(run.GoodputSeries, int((w+f)/bucket), run.BaselineGoodput)
	return run
}

// recovery is the time from the fault's end (bucket from) until goodput,
// averaged over 5 buckets, is back at 95% of baseline; -1 if never.
func recovery(series []float64, from int, baseline float64) float64 {
	const window = 5
	// The last bucket is partial; leave it out.
	for i := from; i+window <= len(series)-1; i++ {
		sum := 0.0
		for _, v := range series[i : i+window] {
			sum += v
		}
		if sum/window >= 0.95*baseline {
			return float64(i-from) * bucket.Seconds()
		}
	}
	return -1
}

// Run runs the scenario's matrix (each configuration under each fault, a
// fresh mesh each time) and returns the result.
func Run(ctx context.Context, sc *Scenario, opts RunOptions) (*Result, error) {
	if !opts.ExtProcOnClient {
		return nil, ErrExtProcDisabled
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	size := sc.Full
	if opts.Quick {
		size = sc.Quick
	}
	res := &Result{Scenario: sc.Name, Chain: sc.Chain, Quick: opts.Quick, Rate: size.Rate, DeadlineMs: float64(time.Duration(size.Deadline).Microseconds()) / 1000,
		LeafCapacity: sc.Leaf.Capacity(), WarmupSeconds: time.Duration(size.Warmup).Seconds(),
		FaultSeconds: time.Duration(size.Fault).Seconds(), RecoverySeconds: time.Duration(size.Recovery).Seconds()}
	for _, c := range sc.Configs {
		if len(size.Configs) == 0 || contains(size.Configs, c.Name) {
			res.Configs = append(res.Configs, ConfigInfo{Name: c.Name, About: c.About, Note: c.Note})
		}
	}
	for _, f := range sc.Faults {
		if len(size.Faults) > 0 && !contains(size.Faults, f.Name) {
			continue
		}
		res.Faults = append(res.Faults, f)
		for _, c := range sc.Configs {
			if len(size.Configs) > 0 && !contains(size.Configs, c.Name) {
				continue
			}
			run, err := runOne(ctx, sc, size, c, f, opts.Logger)
			if err != nil {
				return nil, fmt.Errorf("storm: %s under %s: %w", c.Name, f.Name, err)
			}
			if opts.Progress != nil {
				fmt.Fprintf(opts.Progress, "storm: %-14s %-16s amplification %6.2f×  goodput %6.1f/s  wasted %d\n",
					c.Name, f.Name, run.Amplification, run.Goodput, run.Wasted)
			}
			res.Runs = append(res.Runs, run)
		}
	}
	for _, c := range res.Configs {
		if c.Note != "" {
			res.Notes = append(res.Notes, c.Name+": "+c.Note)
		}
	}
	res.Notes = append(res.Notes, res.goalNotes()...)
	return res, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
