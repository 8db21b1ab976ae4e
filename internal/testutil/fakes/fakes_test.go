package fakes

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hopguard/hopguard/filters/idempotency"
)

func TestStore_StateMachine(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := NewStore()
	sc := idempotency.Scope{Route: "r", Side: "inbound", Key: "k"}

	c, err := s.Claim(ctx, sc, 7, t0, time.Second)
	if err != nil || !c.Claimed || c.Token != 1 {
		t.Fatalf("first claim = %+v, %v; want claimed with token 1", c, err)
	}
	dup, _ := s.Claim(ctx, sc, 7, t0, time.Second)
	if dup.Claimed || dup.Existing.State != idempotency.InFlight || dup.Existing.Token != 0 || dup.Existing.Fingerprint != 7 {
		t.Errorf("duplicate claim = %+v, want the in-flight record without its token", dup)
	}
	if err := s.Complete(ctx, sc, 2, idempotency.Outcome{HTTPStatus: 201}, t0, time.Hour); !errors.Is(err, idempotency.ErrIllegalTransition) {
		t.Errorf("Complete with a wrong token = %v, want ErrIllegalTransition", err)
	}
	if err := s.Complete(ctx, sc, 1, idempotency.Outcome{HTTPStatus: 201, GRPCStatus: -1}, t0, time.Hour); err != nil {
		t.Fatalf("Complete = %v", err)
	}
	if got := s.State("k"); got != idempotency.Completed {
		t.Errorf("State after Complete = %v, want completed", got)
	}
	if err := s.Release(ctx, sc, 1, t0); !errors.Is(err, idempotency.ErrIllegalTransition) {
		t.Errorf("Release of a completed record = %v, want ErrIllegalTransition", err)
	}
	if rec, ok, _ := s.Get(ctx, sc, t0.Add(time.Hour)); ok {
		t.Errorf("Get after the TTL = %+v, want expired", rec)
	}

	other := idempotency.Scope{Route: "r", Side: "inbound", Key: "other"}
	c, _ = s.Claim(ctx, other, 8, t0, time.Second)
	if err := s.Release(ctx, other, c.Token, t0); err != nil || s.State("other") != idempotency.Absent {
		t.Errorf("Release = %v, state %v; want the record gone", err, s.State("other"))
	}
	down := errors.New("down")
	s.SetClaimErr(down)
	if _, err := s.Claim(ctx, other, 8, t0, time.Second); !errors.Is(err, down) {
		t.Errorf("Claim with an injected error = %v, want it", err)
	}
	want := []string{"claim", "claim", "complete", "complete", "release", "claim", "release", "claim"}
	if got := s.Calls(); !slices.Equal(got, want) {
		t.Errorf("Calls = %v, want %v", got, want)
	}
}

func TestClock(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := NewClock(t0)
	c.Advance(1500 * time.Millisecond)
	if got := c.Now(); !got.Equal(t0.Add(1500 * time.Millisecond)) {
		t.Errorf("Now after Advance = %v, want %v", got, t0.Add(1500*time.Millisecond))
	}
}
