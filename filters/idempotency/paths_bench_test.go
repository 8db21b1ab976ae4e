package idempotency

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// BenchmarkLRUClaimCompleted is a duplicate arriving after completion: the
// claim finds the completed record and returns it (what a reject or a
// replay of a repeated request costs in the store).
func BenchmarkLRUClaimCompleted(b *testing.B) {
	ctx := context.Background()
	l := NewLRU(LRUOptions{})
	s := scope("done")
	res, err := l.Claim(ctx, s, 1, t0, time.Second)
	if err != nil || !res.Claimed {
		b.Fatalf("Claim = %+v, %v", res, err)
	}
	if err := l.Complete(ctx, s, res.Token, Outcome{HTTPStatus: 200, GRPCStatus: -1}, t0, time.Hour); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		res, err := l.Claim(ctx, s, 1, t0, time.Second)
		if err != nil || res.Claimed || res.Existing.State != Completed {
			b.Fatalf("Claim = %+v, %v; want the completed record", res, err)
		}
	}
}

// BenchmarkLRUClaimRelease claims and releases a distinct key per
// iteration: the idempotency cost of a side-effecting request that failed
// retryably (its key may be used again).
func BenchmarkLRUClaimRelease(b *testing.B) {
	ctx := context.Background()
	l := NewLRU(LRUOptions{})
	keys := make([]Scope, 1<<14)
	for i := range keys {
		keys[i] = scope("key-" + strconv.Itoa(i))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s := keys[i&(len(keys)-1)]
		res, err := l.Claim(ctx, s, 1, t0, time.Second)
		if err != nil || !res.Claimed {
			b.Fatalf("Claim = %+v, %v", res, err)
		}
		if err := l.Release(ctx, s, res.Token, t0); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
