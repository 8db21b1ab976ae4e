package demo

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/hopguard/hopguard/examples/shop/services"
)

const (
	// callTimeout is each checkout's deadline.
	callTimeout = 2 * time.Second
	// maxInFlight bounds concurrent checkouts; a tick finding them all
	// busy sends nothing (and the view shows fewer requests).
	maxInFlight = 256
)

// tally counts checkouts per phase and failures per code. Safe for
// concurrent use.
type tally struct {
	sent, ok [3]atomic.Int64
	mu       sync.Mutex
	failures map[string]int64
}

func (t *tally) done(phase int, err error) {
	if err == nil {
		t.ok[phase].Add(1)
		return
	}
	t.mu.Lock()
	t.failures[status.Code(err).String()]++
	t.mu.Unlock()
}

func (t *tally) totals() (sent, ok int64) {
	for i := range t.sent {
		sent += t.sent[i].Load()
		ok += t.ok[i].Load()
	}
	return sent, ok
}

// checkout sends one checkout with idempotency key key.
func checkout(ctx context.Context, s *shop, key string) error {
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, services.IdempotencyHeader, key), callTimeout)
	defer cancel()
	var ack services.Ack
	return s.gateway.Invoke(ctx, services.MethodCheckout,
		&services.Order{ID: key, SKU: "espresso-beans", Quantity: 1, AmountCents: 1250}, &ack, services.CallOptions()...)
}

// warmUp waits until the mesh serves a checkout: every service has
// received its xDS configuration.
func warmUp(ctx context.Context, s *shop, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for i := 0; time.Now().Before(deadline); i++ {
		if last = checkout(ctx, s, fmt.Sprintf("warmup-%d", i)); last == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", ErrNotReady, ctx.Err())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%w within %v: %w", ErrNotReady, limit, last)
}

// drive runs the traffic and the fault schedule and gathers the summary.
func drive(ctx context.Context, s *shop, opts Options) (Summary, error) {
	if err := warmUp(ctx, s, opts.Warmup); err != nil {
		return Summary{}, err
	}
	t := &tally{failures: map[string]int64{}}
	faultAt, recoverAt := opts.Duration/2, opts.Duration*3/4
	phases := []Phase{
		{Name: PhaseSteady, From: 0, To: faultAt},
		{Name: PhaseFault, From: faultAt, To: recoverAt},
		{Name: PhaseRecovered, From: recoverAt, To: opts.Duration},
	}
	faults := []services.Fault{{}, {FailRatio: 1}, {}}
	leafStart := s.ledger.Attempts()
	leafMark := leafStart
	cur := 0
	v := newView(opts, s)

	var wg sync.WaitGroup
	sem := make(chan struct{}, maxInFlight)
	tick := time.NewTicker(time.Second / time.Duration(opts.Rate))
	defer tick.Stop()
	refresh := time.NewTicker(time.Second)
	defer refresh.Stop()
	start := time.Now()
	n, prevKey := 0, ""
	elapsed := time.Duration(0)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-refresh.C:
			sent, ok := t.totals()
			v.update(time.Since(start), phases[cur].Name, sent, ok, s.ledger.Attempts()-leafStart)
		case now := <-tick.C:
			elapsed = now.Sub(start)
			if elapsed >= opts.Duration {
				break loop
			}
			for cur < len(phases)-1 && elapsed >= phases[cur].To {
				leaf := s.ledger.Attempts()
				phases[cur].LeafAttempts = leaf - leafMark
				leafMark = leaf
				cur++
				s.ledger.SetFault(faults[cur])
			}
			n++
			key := fmt.Sprintf("order-%d", n)
			if opts.DuplicateEvery > 0 && n%opts.DuplicateEvery == 0 && prevKey != "" {
				key = prevKey
			}
			prevKey = key
			select {
			case sem <- struct{}{}:
			default:
				continue
			}
			t.sent[cur].Add(1)
			wg.Add(1)
			go func(phase int, key string) {
				defer wg.Done()
				defer func() { <-sem }()
				t.done(phase, checkout(ctx, s, key))
			}(cur, key)
		}
	}
	if elapsed < opts.Duration {
		elapsed = time.Since(start)
	}
	wg.Wait()
	s.ledger.SetFault(services.Fault{})
	phases[cur].LeafAttempts = s.ledger.Attempts() - leafMark
	phases[cur].To = min(phases[cur].To, elapsed)
	phases = phases[:cur+1]

	sum := Summary{
		Duration:           min(elapsed, opts.Duration),
		Rate:               opts.Rate,
		Path:               s.hops,
		NaiveAmplification: NaiveAmplification(s.hops),
		LeafAttempts:       s.ledger.Attempts() - leafStart,
		Failures:           t.failures,
	}
	for i := range phases {
		phases[i].Requests = t.sent[i].Load()
		phases[i].Succeeded = t.ok[i].Load()
		sum.Requests += phases[i].Requests
		sum.Succeeded += phases[i].Succeeded
	}
	sum.Phases = phases
	routes, err := routeStats(s.reg)
	if err != nil {
		return sum, err
	}
	sum.Routes = routes
	return sum, nil
}
