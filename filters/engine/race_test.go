package engine

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hopguard/hopguard/policy"
)

// TestEngine_Concurrent decides, finishes and swaps bundles from several
// goroutines at once (run with -race). Exactly one of the requests sharing
// an idempotency key may hold it at a time.
func TestEngine_Concurrent(t *testing.T) {
	pay := testRoute("Pay", sideEffects(policy.RequireAlways), func(r *policy.Route) { r.Retry.MinRemainingAuto = true })
	get := testRoute("Get")
	e, clk, _ := testEngine(t, pay, get)
	ctx := context.Background()

	const workers, perWorker = 8, 300
	// holders counts claims held per key: the engine must never hand out
	// two live claims of one scope.
	var holders [5]atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var swaps sync.WaitGroup
	swaps.Add(1)
	go func() {
		defer swaps.Done()
		// Bounded, so the fake clock moves at most 5 s: latency samples
		// stay inside the estimator's windows.
		for i := range 5000 {
			select {
			case <-stop:
				return
			default:
			}
			g := get
			g.Deadline.Default = time.Duration(500+i%500) * time.Millisecond
			e.SetBundle(&policy.Bundle{Routes: []policy.Route{pay, g}})
			clk.Advance(time.Millisecond)
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				id := "shop/Get"
				f := Facts{EnvoyAttemptCount: 1 + i%3, Side: Side(i % 2), GRPCTimeout: time.Second}
				if i%2 == 0 {
					id = "shop/Pay"
					f.HasKey, f.Key = true, fmt.Sprintf("key-%d", i%5)
				}
				r := e.Match("POST", "/shop.Orders/"+id[len("shop/"):])
				if r == nil {
					t.Errorf("worker %d: no route for %s", w, id)
					return
				}
				start := clk.Now()
				d := e.Decide(ctx, r, &f)
				k := i % 5
				if d.Claim != nil {
					if n := holders[k].Add(1); n != 1 {
						t.Errorf("key-%d claimed by %d requests at once", k, n)
					}
					holders[k].Add(-1)
				}
				if !d.Reject {
					// Every fourth request fails retryably and releases its key.
					e.Finish(ctx, r, &d, start, Outcome{HTTPStatus: 200, GRPCStatus: 14 * (i % 4 / 3), HeadersAt: clk.Now()})
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	swaps.Wait()
	if r := e.Route("shop/Get"); r == nil || r.st == nil {
		t.Fatal("route lost during concurrent swaps")
	}
	// shop/Get runs on odd i, outbound.
	if _, n := e.Route("shop/Get").st.sides[Outbound].latency.quantile(clk.Now(), 0.9); n == 0 {
		t.Error("no latency samples recorded under concurrency")
	}
}
