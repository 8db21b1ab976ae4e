package idempotency

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestLRUConcurrentClaimOneScope_Success: of 100 simultaneous claims of one
// scope exactly one wins; the others see its record.
func TestLRUConcurrentClaimOneScope_Success(t *testing.T) {
	const n = 100
	obs := newRecObserver()
	l := NewLRU(LRUOptions{Observer: obs})
	s := scope("hot")

	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		results = make([]ClaimResult, n)
		errs    = make([]error, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = l.Claim(context.Background(), s, 99, t0, time.Minute)
		}()
	}
	close(start)
	wg.Wait()

	claimed := 0
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("Claim #%d error: %v", i, errs[i])
		}
		if r.Claimed {
			claimed++
			continue
		}
		want := Record{State: InFlight, Fingerprint: 99, GRPCStatus: -1, ExpiresAt: t0.Add(time.Minute)}
		if diff := cmp.Diff(r.Existing, want); diff != "" {
			t.Errorf("Claim #%d Existing (-got +want):\n%s", i, diff)
		}
	}
	if claimed != 1 {
		t.Errorf("%d claims won, want exactly 1", claimed)
	}
	if diff := cmp.Diff(obs.snapshot().Transitions, map[pair]int{{Absent, InFlight}: 1}); diff != "" {
		t.Errorf("transitions (-got +want):\n%s", diff)
	}
}

// TestLRUConcurrentManyKeys_Success runs random operations from many
// goroutines over many scopes, in a store small enough to evict, under the
// race detector. Afterwards the Records gauge must equal what the store
// holds, capacity must hold, and every error must be a refused transition.
func TestLRUConcurrentManyKeys_Success(t *testing.T) {
	const (
		workers = 16
		ops     = 2000
		keys    = 200
	)
	obs := newRecObserver()
	l := NewLRU(LRUOptions{Capacity: 64, Observer: obs})
	ctx := context.Background()

	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			tokens := map[Scope]uint64{}
			for i := range ops {
				s := scope(fmt.Sprintf("k%d", rng.IntN(keys)))
				now := t0.Add(time.Duration(i) * time.Millisecond)
				var err error
				switch rng.IntN(4) {
				case 0:
					var res ClaimResult
					res, err = l.Claim(ctx, s, uint64(rng.IntN(2)+1), now, time.Duration(rng.IntN(50))*time.Millisecond)
					if res.Claimed {
						tokens[s] = res.Token
					}
				case 1:
					err = l.Complete(ctx, s, tokens[s], Outcome{HTTPStatus: 200, GRPCStatus: -1}, now, time.Duration(rng.IntN(100))*time.Millisecond)
				case 2:
					err = l.Release(ctx, s, tokens[s], now)
				default:
					_, _, err = l.Get(ctx, s, now)
				}
				if err != nil && !errors.Is(err, ErrIllegalTransition) {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Errorf("unexpected error: %v", err)
	}

	if l.Len() > l.Capacity() {
		t.Errorf("Len() = %d beyond capacity %d", l.Len(), l.Capacity())
	}
	got := obs.snapshot()
	if diff := cmp.Diff(got.Records, nonZero(held(t, l))); diff != "" {
		t.Errorf("records gauge vs held records (-got +want):\n%s", diff)
	}
	// Every record that entered was claimed; every one that left did so by
	// exactly one reported exit (release, expiry or eviction).
	claims := got.Transitions[pair{Absent, InFlight}]
	exits := got.Transitions[pair{InFlight, Absent}] + got.Transitions[pair{Completed, Absent}] +
		got.Evicted[InFlight] + got.Evicted[Completed]
	if claims-exits != l.Len() {
		t.Errorf("claims %d - exits %d = %d, want Len() %d", claims, exits, claims-exits, l.Len())
	}
	if got.Evicted[InFlight]+got.Evicted[Completed] == 0 {
		t.Error("no evictions: the test did not exercise capacity")
	}
}
