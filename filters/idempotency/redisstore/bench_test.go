package redisstore

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hopguard/hopguard/filters/idempotency"
)

// benchStores returns the stores compared by the benchmarks: the
// in-process LRU (the baseline of filters/idempotency's
// BenchmarkLRUClaimComplete) and the Redis store on a local redis-server
// (loopback: the network cost is the minimum a deployment pays).
func benchStores(b *testing.B) map[string]idempotency.Store {
	b.Helper()
	s, _, _ := newStore(b, Options{})
	return map[string]idempotency.Store{
		"lru":   idempotency.NewLRU(idempotency.LRUOptions{}),
		"redis": s,
	}
}

// BenchmarkClaimComplete claims and completes a distinct key per iteration:
// the store cost of one allowed side-effecting request.
func BenchmarkClaimComplete(b *testing.B) {
	for _, name := range []string{"lru", "redis"} {
		b.Run(name, func(b *testing.B) {
			st := benchStores(b)[name]
			ctx := context.Background()
			out := idempotency.Outcome{HTTPStatus: 200, GRPCStatus: -1}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				sc := scope("key-" + strconv.Itoa(i))
				res, err := st.Claim(ctx, sc, 1, t0, time.Minute)
				if err != nil || !res.Claimed {
					b.Fatalf("Claim = %+v, %v", res, err)
				}
				if err := st.Complete(ctx, sc, res.Token, out, t0, time.Minute); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkClaimHotKey claims one scope from every goroutine at once: all
// but the first claim find the in-flight record (a duplicate storm).
func BenchmarkClaimHotKey(b *testing.B) {
	for _, name := range []string{"lru", "redis"} {
		b.Run(name, func(b *testing.B) {
			st := benchStores(b)[name]
			ctx := context.Background()
			sc := scope("hot")
			b.SetParallelism(8) // Redis round trips block: more goroutines than cores
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := st.Claim(ctx, sc, 1, t0, time.Hour); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkClaimCompleteParallelKeys claims and completes distinct keys
// from many goroutines: throughput of unrelated requests.
func BenchmarkClaimCompleteParallelKeys(b *testing.B) {
	for _, name := range []string{"lru", "redis"} {
		b.Run(name, func(b *testing.B) {
			st := benchStores(b)[name]
			ctx := context.Background()
			out := idempotency.Outcome{HTTPStatus: 200, GRPCStatus: -1}
			var n atomic.Int64
			b.SetParallelism(8)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					sc := scope("pk-" + strconv.FormatInt(n.Add(1), 10))
					res, err := st.Claim(ctx, sc, 1, t0, time.Minute)
					if err != nil || !res.Claimed {
						b.Errorf("Claim = %+v, %v", res, err)
						return
					}
					if err := st.Complete(ctx, sc, res.Token, out, t0, time.Minute); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
