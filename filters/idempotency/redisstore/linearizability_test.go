package redisstore

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/redis/go-redis/v9"

	"github.com/hopguard/hopguard/filters/idempotency/idemcheck"
	"github.com/hopguard/hopguard/internal/testutil/redistest"
)

func TestStore_Linearizable(t *testing.T) {
	tests := []struct {
		name     string
		restarts int
		// volatile runs Redis without persistence: a restart loses every
		// record, and the check must say so.
		volatile bool
	}{
		{"steady", 0, false},
		{"kill -9 and restart mid-run", 2, false},
		{"restart without persistence is caught", 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// appendfsync always: an acknowledged write survives SIGKILL, so
			// the model allows no loss.
			srv := redistest.Start(t, redistest.Options{AppendOnly: !tc.volatile})
			o, err := ParseURL(srv.URL())
			if err != nil {
				t.Fatal(err)
			}
			o.DialTimeout = 100 * time.Millisecond
			c := redis.NewClient(o)
			defer c.Close()
			store := New(c, Options{Timeout: 500 * time.Millisecond})
			r := idemcheck.NewRecorder(store, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Hour)

			clients, ops := 8, 400
			if tc.volatile {
				// Disproving linearizability is an exhaustive search: keep
				// the history small.
				clients, ops = 4, 60
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var wg sync.WaitGroup
			done := make(chan struct{})
			wg.Add(1)
			go func() {
				defer wg.Done()
				idemcheck.Workload{Clients: clients, Ops: ops, Keys: 4, Seed: 9, Pause: 20 * time.Millisecond}.Run(ctx, r)
				close(done)
			}()
			// Restart at fixed fractions of the recorded history, so the
			// restarts fall mid-run however fast the machine is.
			restarted := 0
		restarts:
			for i := range tc.restarts {
				at := clients * ops * (i + 1) / (tc.restarts + 2)
				for r.Len() < at {
					select {
					case <-done:
						break restarts
					case <-time.After(time.Millisecond):
					}
				}
				srv.Kill()
				time.Sleep(50 * time.Millisecond)
				srv.Restart()
				restarted++
			}
			wg.Wait()
			if restarted != tc.restarts {
				t.Fatalf("the workload ended after %d of %d restarts: make it longer", restarted, tc.restarts)
			}
			h := r.History()
			err = idemcheck.Check(h, idemcheck.Options{}, 2*time.Minute, t.TempDir())
			if tc.volatile {
				if err == nil || !strings.Contains(err.Error(), string(porcupine.Illegal)) {
					t.Fatalf("a restart that lost every record: check = %v, want a history found not linearizable", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			counts := r.Counts()
			if tc.restarts > 0 && counts[idemcheck.Unknown] == 0 {
				t.Errorf("results %v: no call failed, so no restart happened mid-run", counts)
			}
			if counts[idemcheck.OK] == 0 || counts[idemcheck.Illegal] == 0 {
				t.Errorf("results %v: want both OK and Illegal calls", counts)
			}
			t.Logf("%d operations, %d restarts, results %v", len(h), restarted, counts)
		})
	}
}
