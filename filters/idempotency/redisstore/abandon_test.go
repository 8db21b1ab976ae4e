package redisstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hopguard/hopguard/filters/idempotency"
	"github.com/hopguard/hopguard/internal/testutil/redistest"
	"github.com/hopguard/hopguard/internal/testutil/tcpproxy"
)

// TestClaim_TimedOutClaimIsGivenBack: a claim that Redis ran but whose
// reply came after the timeout fails the request as store-unavailable; the
// store then releases it in the background, so the caller's retry with the
// same key is not refused as in flight until the claim would expire.
func TestClaim_TimedOutClaimIsGivenBack(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	o, err := ParseURL("redis://" + tcpproxy.Start(t, srv.Addr(), tcpproxy.Options{ReplyDelay: 150 * time.Millisecond}).Addr() + "/0")
	if err != nil {
		t.Fatal(err)
	}
	lateClient := redis.NewClient(o)
	defer lateClient.Close()
	late := New(lateClient, Options{Timeout: 50 * time.Millisecond})
	direct := New(newClient(t, srv), Options{Timeout: 2 * time.Second})

	ctx := context.Background()
	now := time.Now()
	// Steady state: a pooled connection, and Redis knows the scripts.
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := lateClient.Ping(pctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := direct.Claim(ctx, scope("warm"), 1, now, time.Second); err != nil {
		t.Fatal(err)
	}

	sc := scope("late-reply")
	if _, err := late.Claim(ctx, sc, 42, now, time.Minute); !errors.Is(err, idempotency.ErrUnavailable) {
		t.Fatalf("claim with a late reply: %v, want ErrUnavailable", err)
	}
	late.pending.Wait()
	res, err := direct.Claim(ctx, sc, 42, now.Add(time.Second), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Claimed {
		t.Errorf("retry after the timed-out claim: not claimed, found %+v (the claim was not given back)", res.Existing)
	}
	// The background release only ends its own claim: the retry's holds.
	late.abandonClaim(sc, 12345, now)
	late.pending.Wait()
	if rec, ok, err := direct.Get(ctx, sc, now.Add(time.Second)); err != nil || !ok || rec.State != idempotency.InFlight {
		t.Errorf("after a stray release: %+v, %v, %v; want the retry's claim in flight", rec, ok, err)
	}
}
