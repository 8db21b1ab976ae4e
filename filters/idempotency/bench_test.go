package idempotency

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// BenchmarkLRUClaimComplete claims and completes a distinct key per
// iteration: the idempotency cost of one allowed side-effecting request.
func BenchmarkLRUClaimComplete(b *testing.B) {
	ctx := context.Background()
	l := NewLRU(LRUOptions{})
	keys := make([]Scope, 1<<14)
	for i := range keys {
		keys[i] = scope("key-" + strconv.Itoa(i))
	}
	out := Outcome{HTTPStatus: 200, GRPCStatus: -1}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s := keys[i&(len(keys)-1)]
		now := t0.Add(time.Duration(i) * time.Hour) // earlier records of s have expired
		res, err := l.Claim(ctx, s, 1, now, time.Second)
		if err != nil || !res.Claimed {
			b.Fatalf("Claim = %+v, %v", res, err)
		}
		if err := l.Complete(ctx, s, res.Token, out, now, time.Minute); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkLRUClaimHotKey claims one scope from every P at once: all but
// the first claim find the in-flight record, contending on one stripe.
func BenchmarkLRUClaimHotKey(b *testing.B) {
	ctx := context.Background()
	l := NewLRU(LRUOptions{})
	s := scope("hot")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.Claim(ctx, s, 1, t0, time.Hour); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkLRUClaimParallelKeys claims distinct scopes from every P: the
// stripes let unrelated keys proceed together.
func BenchmarkLRUClaimParallelKeys(b *testing.B) {
	ctx := context.Background()
	l := NewLRU(LRUOptions{})
	keys := make([]Scope, 1<<12)
	for i := range keys {
		keys[i] = scope("key-" + strconv.Itoa(i))
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := l.Claim(ctx, keys[i&(len(keys)-1)], 1, t0, time.Hour); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkLRUGet reads a live record.
func BenchmarkLRUGet(b *testing.B) {
	ctx := context.Background()
	l := NewLRU(LRUOptions{})
	s := scope("k")
	if _, err := l.Claim(ctx, s, 1, t0, time.Hour); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := l.Get(ctx, s, t0); !ok || err != nil {
			b.Fatalf("Get = %v, %v", ok, err)
		}
	}
}

func BenchmarkFingerprint(b *testing.B) {
	b.ReportAllocs()
	var sink uint64
	for b.Loop() {
		sink += Fingerprint("POST", "/shop.Payments/CreateCharge", "application/grpc")
	}
	if sink == 0 {
		b.Fatal("zero")
	}
}

func BenchmarkValidKey(b *testing.B) {
	b.ReportAllocs()
	k := "8e03978e-40d5-43e8-bc93-6894a57f9324"
	for b.Loop() {
		if !ValidKey(k) {
			b.Fatal("invalid")
		}
	}
}
