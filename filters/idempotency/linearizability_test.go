package idempotency_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hopguard/hopguard/filters/idempotency"
	"github.com/hopguard/hopguard/filters/idempotency/idemcheck"
)

// evictCounter counts capacity evictions.
type evictCounter struct {
	idempotency.NopObserver
	n atomic.Int64
}

func (c *evictCounter) Evicted(idempotency.State) { c.n.Add(1) }

func TestLRU_Linearizable(t *testing.T) {
	tests := []struct {
		name     string
		capacity int
		keys     int
		// mayLose: evictions are expected, and modelled as losses.
		mayLose bool
	}{
		{"no evictions", 1000, 4, false},
		{"evictions injected", 3, 8, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obs := &evictCounter{}
			store := idempotency.NewLRU(idempotency.LRUOptions{Capacity: tc.capacity, Observer: obs})
			r := idemcheck.NewRecorder(store, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Hour)
			idemcheck.Workload{Clients: 8, Ops: 300, Keys: tc.keys, Seed: 8}.Run(context.Background(), r)
			h := r.History()
			if err := idemcheck.Check(h, idemcheck.Options{MayLose: tc.mayLose}, time.Minute, t.TempDir()); err != nil {
				t.Fatal(err)
			}
			evicted := obs.n.Load()
			if tc.mayLose && evicted == 0 {
				t.Errorf("no evictions happened with capacity %d and %d keys: the injection failed", tc.capacity, tc.keys)
			}
			if !tc.mayLose && evicted != 0 {
				t.Errorf("%d evictions with capacity %d", evicted, tc.capacity)
			}
			c := r.Counts()
			if c[idemcheck.OK] == 0 || c[idemcheck.Illegal] == 0 || c[idemcheck.Unknown] != 0 {
				t.Errorf("results %v: want both OK and Illegal calls and no Unknown", c)
			}
			t.Logf("%d operations, %d evictions, results %v", len(h), evicted, c)
		})
	}
}
