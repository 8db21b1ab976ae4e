package redisstore

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hopguard/hopguard/filters/idempotency"
)

// TestStore_MemoryPerRecord measures what a completed record costs Redis,
// for docs/idempotency-store.md's sizing: MEMORY USAGE of one key, and the
// growth of used_memory over many records (which includes the key space's
// dictionary and expiry entries).
func TestStore_MemoryPerRecord(t *testing.T) {
	ctx := context.Background()
	s, _, c := newStore(t, Options{})
	const n = 10000
	before := usedMemory(t, c)
	now := time.Now()
	for i := range n {
		sc := idempotency.Scope{Route: "shop/create-charge", Side: "inbound", Principal: "spiffe://cluster.local/ns/shop/sa/checkout",
			Key: "0b7c9a3e-5f1d-4c2a-9e8b-" + strconv.Itoa(100000000000+i)}
		res, err := s.Claim(ctx, sc, uint64(i)*0x9e3779b97f4a7c15, now, 5*time.Second)
		if err != nil || !res.Claimed {
			t.Fatal(res, err)
		}
		if err := s.Complete(ctx, sc, res.Token, idempotency.Outcome{HTTPStatus: 201, GRPCStatus: 0}, now, 24*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	perRecord := float64(usedMemory(t, c)-before) / n
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil || len(keys) != n {
		t.Fatalf("%d keys, %v; want %d", len(keys), err, n)
	}
	usage, err := c.MemoryUsage(ctx, keys[0]).Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MEMORY USAGE of one completed record: %d bytes; used_memory growth: %.0f bytes per record over %d records", usage, perRecord, n)
	// Sanity bounds: a small listpack hash is a few hundred bytes at most.
	if usage < 50 || usage > 400 || perRecord < 50 || perRecord > 600 {
		t.Errorf("record costs %d bytes (MEMORY USAGE), %.0f bytes (used_memory growth): outside the documented 50–600", usage, perRecord)
	}
}

// usedMemory returns INFO memory's used_memory.
func usedMemory(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no used_memory in INFO memory")
	return 0
}
