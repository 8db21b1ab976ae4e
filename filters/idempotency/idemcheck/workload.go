package idemcheck

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"
)

// Workload is a random mix of calls from concurrent clients on a few keys:
// claims with one of two fingerprints (so reuses happen), completes and
// releases with the client's own token or a stale one, and gets.
type Workload struct {
	// Clients is the number of concurrent goroutines.
	Clients int
	// Ops is the number of calls per client.
	Ops int
	// Keys is the number of distinct keys.
	Keys int
	// Seed makes the choice of calls reproducible (not their interleaving).
	Seed uint64
	// Pause, when positive, is slept after a call of unknown outcome, so a
	// store that is down does not flood the history.
	Pause time.Duration
}

// Run runs the workload against r and returns when every client is done
// or ctx is cancelled.
func (w Workload) Run(ctx context.Context, r *Recorder) {
	var wg sync.WaitGroup
	for c := range w.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.client(ctx, r, c)
		}()
	}
	wg.Wait()
}

// client is one goroutine of the workload.
func (w Workload) client(ctx context.Context, r *Recorder, id int) {
	rng := rand.New(rand.NewPCG(w.Seed, uint64(id)+1))
	held := map[string]uint64{} // key → the token of this client's claim
	var stale []uint64
	token := func(key string) uint64 {
		if t, ok := held[key]; ok && rng.IntN(10) != 0 {
			return t
		}
		if len(stale) > 0 {
			return stale[rng.IntN(len(stale))]
		}
		return rng.Uint64() | 1
	}
	for range w.Ops {
		if ctx.Err() != nil {
			return
		}
		key := "k" + strconv.Itoa(rng.IntN(max(w.Keys, 1)))
		var out Output
		switch p := rng.IntN(100); {
		case p < 35:
			out = r.Claim(ctx, id, key, uint64(1+rng.IntN(2)))
			if out.Claimed {
				held[key] = out.Token
			}
		case p < 60:
			t := token(key)
			out = r.Complete(ctx, id, key, t, []int{200, 409}[rng.IntN(2)])
			stale = append(stale, t)
			delete(held, key)
		case p < 80:
			t := token(key)
			out = r.Release(ctx, id, key, t)
			stale = append(stale, t)
			delete(held, key)
		default:
			out = r.Get(ctx, id, key)
		}
		if out.Result == Unknown && w.Pause > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(w.Pause):
			}
		}
	}
}
