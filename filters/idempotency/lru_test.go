package idempotency

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// mustClaim claims s at now for inFlightFor and fails the test unless the
// claim succeeds.
func mustClaim(t *testing.T, l *LRU, s Scope, fp uint64, now time.Time, inFlightFor time.Duration) uint64 {
	t.Helper()
	res, err := l.Claim(context.Background(), s, fp, now, inFlightFor)
	if err != nil || !res.Claimed || res.Token == 0 {
		t.Fatalf("Claim(%+v) = %+v, %v; want a claim", s, res, err)
	}
	return res.Token
}

func TestLRUClaimCompleteGet_Success(t *testing.T) {
	ctx := context.Background()
	obs := newRecObserver()
	l := NewLRU(LRUOptions{Observer: obs})
	s := scope("k1")

	tok := mustClaim(t, l, s, 42, t0, 2*time.Second)
	wantInFlight := Record{State: InFlight, Fingerprint: 42, GRPCStatus: -1, ExpiresAt: t0.Add(2 * time.Second)}
	rec, ok, err := l.Get(ctx, s, t0.Add(time.Second))
	if err != nil || !ok {
		t.Fatalf("Get() = %v, %v; want the in-flight record", ok, err)
	}
	if diff := cmp.Diff(rec, wantInFlight); diff != "" {
		t.Errorf("Get() in flight (-got +want):\n%s", diff)
	}

	// A concurrent duplicate sees the claim, fingerprint included.
	dup, err := l.Claim(ctx, s, 43, t0.Add(time.Second), time.Second)
	if err != nil {
		t.Fatalf("duplicate Claim() error: %v", err)
	}
	if diff := cmp.Diff(dup, ClaimResult{Existing: wantInFlight}); diff != "" {
		t.Errorf("duplicate Claim() (-got +want):\n%s", diff)
	}

	if err := l.Complete(ctx, s, tok, Outcome{HTTPStatus: 201, GRPCStatus: -1}, t0.Add(time.Second), time.Hour); err != nil {
		t.Fatalf("Complete() error: %v", err)
	}
	wantDone := Record{State: Completed, Fingerprint: 42, HTTPStatus: 201, GRPCStatus: -1, ExpiresAt: t0.Add(time.Second + time.Hour)}
	dup, err = l.Claim(ctx, s, 42, t0.Add(time.Minute), time.Second)
	if err != nil {
		t.Fatalf("Claim() after completion error: %v", err)
	}
	if diff := cmp.Diff(dup, ClaimResult{Existing: wantDone}); diff != "" {
		t.Errorf("Claim() after completion (-got +want):\n%s", diff)
	}
	rec, ok, err = l.Get(ctx, s, t0.Add(time.Minute))
	if err != nil || !ok {
		t.Fatalf("Get() = %v, %v; want the completed record", ok, err)
	}
	if diff := cmp.Diff(rec, wantDone); diff != "" {
		t.Errorf("Get() completed (-got +want):\n%s", diff)
	}

	want := counts{
		Transitions: map[pair]int{{Absent, InFlight}: 1, {InFlight, Completed}: 1},
		Rejected:    map[pair]int{},
		Evicted:     map[State]int{},
		Records:     map[State]int{Completed: 1},
	}
	if diff := cmp.Diff(obs.snapshot(), want); diff != "" {
		t.Errorf("observer (-got +want):\n%s", diff)
	}
}

func TestLRUReleaseThenReclaim_Success(t *testing.T) {
	ctx := context.Background()
	obs := newRecObserver()
	l := NewLRU(LRUOptions{Observer: obs})
	s := scope("k1")

	tok := mustClaim(t, l, s, 7, t0, time.Second)
	if err := l.Release(ctx, s, tok, t0.Add(time.Millisecond)); err != nil {
		t.Fatalf("Release() error: %v", err)
	}
	if _, ok, err := l.Get(ctx, s, t0.Add(time.Millisecond)); ok || err != nil {
		t.Fatalf("Get() after release = %v, %v; want absent", ok, err)
	}
	tok2 := mustClaim(t, l, s, 7, t0.Add(2*time.Millisecond), time.Second)
	if tok2 == tok {
		t.Errorf("re-claim reused token %#x", tok)
	}
	want := counts{
		Transitions: map[pair]int{{Absent, InFlight}: 2, {InFlight, Absent}: 1},
		Rejected:    map[pair]int{},
		Evicted:     map[State]int{},
		Records:     map[State]int{InFlight: 1},
	}
	if diff := cmp.Diff(obs.snapshot(), want); diff != "" {
		t.Errorf("observer (-got +want):\n%s", diff)
	}
}

// TestLRU_Errors drives a scope into a state, then makes one operation the
// state machine refuses.
func TestLRU_Errors(t *testing.T) {
	ctx := context.Background()
	ok := Outcome{HTTPStatus: 200, GRPCStatus: -1}
	tests := []struct {
		name string
		// run returns the refused operation's error.
		run          func(t *testing.T, l *LRU, s Scope) error
		wantRejected pair
		wantRecords  map[State]int
	}{{
		name: "complete unknown scope",
		run: func(t *testing.T, l *LRU, s Scope) error {
			return l.Complete(ctx, s, 1, ok, t0, time.Hour)
		},
		wantRejected: pair{Absent, Completed},
		wantRecords:  map[State]int{},
	}, {
		name: "release unknown scope",
		run: func(t *testing.T, l *LRU, s Scope) error {
			return l.Release(ctx, s, 1, t0)
		},
		wantRejected: pair{Absent, Absent},
		wantRecords:  map[State]int{},
	}, {
		name: "complete with stale token",
		run: func(t *testing.T, l *LRU, s Scope) error {
			tok := mustClaim(t, l, s, 1, t0, time.Second)
			if err := l.Release(ctx, s, tok, t0); err != nil {
				t.Fatal(err)
			}
			mustClaim(t, l, s, 1, t0, time.Second)
			return l.Complete(ctx, s, tok, ok, t0, time.Hour)
		},
		wantRejected: pair{Absent, Completed},
		wantRecords:  map[State]int{InFlight: 1},
	}, {
		name: "release with stale token",
		run: func(t *testing.T, l *LRU, s Scope) error {
			tok := mustClaim(t, l, s, 1, t0, time.Second)
			return l.Release(ctx, s, tok+1, t0)
		},
		wantRejected: pair{Absent, Absent},
		wantRecords:  map[State]int{InFlight: 1},
	}, {
		name: "complete after release",
		run: func(t *testing.T, l *LRU, s Scope) error {
			tok := mustClaim(t, l, s, 1, t0, time.Second)
			if err := l.Release(ctx, s, tok, t0); err != nil {
				t.Fatal(err)
			}
			return l.Complete(ctx, s, tok, ok, t0, time.Hour)
		},
		wantRejected: pair{Absent, Completed},
		wantRecords:  map[State]int{},
	}, {
		name: "complete twice",
		run: func(t *testing.T, l *LRU, s Scope) error {
			tok := mustClaim(t, l, s, 1, t0, time.Second)
			if err := l.Complete(ctx, s, tok, ok, t0, time.Hour); err != nil {
				t.Fatal(err)
			}
			return l.Complete(ctx, s, tok, ok, t0, time.Hour)
		},
		wantRejected: pair{Completed, Completed},
		wantRecords:  map[State]int{Completed: 1},
	}, {
		name: "release after complete",
		run: func(t *testing.T, l *LRU, s Scope) error {
			tok := mustClaim(t, l, s, 1, t0, time.Second)
			if err := l.Complete(ctx, s, tok, ok, t0, time.Hour); err != nil {
				t.Fatal(err)
			}
			return l.Release(ctx, s, tok, t0)
		},
		wantRejected: pair{Completed, Absent},
		wantRecords:  map[State]int{Completed: 1},
	}, {
		name: "complete after in-flight expiry",
		run: func(t *testing.T, l *LRU, s Scope) error {
			tok := mustClaim(t, l, s, 1, t0, time.Second)
			return l.Complete(ctx, s, tok, ok, t0.Add(time.Second), time.Hour)
		},
		wantRejected: pair{Absent, Completed},
		wantRecords:  map[State]int{},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs := newRecObserver()
			l := NewLRU(LRUOptions{Observer: obs})
			err := tt.run(t, l, scope("k"))
			if !errors.Is(err, ErrIllegalTransition) {
				t.Fatalf("error = %v, want ErrIllegalTransition", err)
			}
			got := obs.snapshot()
			if diff := cmp.Diff(got.Rejected, map[pair]int{tt.wantRejected: 1}); diff != "" {
				t.Errorf("rejections (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(got.Records, tt.wantRecords); diff != "" {
				t.Errorf("records gauge (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(got.Records, nonZero(held(t, l))); diff != "" {
				t.Errorf("records gauge vs held records (-got +want):\n%s", diff)
			}
		})
	}
}

func TestLRUExpiry_Success(t *testing.T) {
	ctx := context.Background()
	obs := newRecObserver()
	l := NewLRU(LRUOptions{Observer: obs})
	inflight, done := scope("inflight"), scope("done")

	mustClaim(t, l, inflight, 1, t0, time.Second)
	tok := mustClaim(t, l, done, 2, t0, time.Second)
	if err := l.Complete(ctx, done, tok, Outcome{GRPCStatus: 0}, t0.Add(100*time.Millisecond), time.Minute); err != nil {
		t.Fatal(err)
	}

	// Just before their ExpiresAt both are live.
	for _, c := range []struct {
		s   Scope
		now time.Time
	}{{inflight, t0.Add(time.Second - 1)}, {done, t0.Add(100*time.Millisecond + time.Minute - 1)}} {
		if _, ok, err := l.Get(ctx, c.s, c.now); !ok || err != nil {
			t.Errorf("Get(%s) before expiry = %v, %v; want live", c.s.Key, ok, err)
		}
	}
	// At ExpiresAt they are absent, and a new claim succeeds.
	if _, ok, err := l.Get(ctx, inflight, t0.Add(time.Second)); ok || err != nil {
		t.Errorf("Get(inflight) at expiry = %v, %v; want absent", ok, err)
	}
	mustClaim(t, l, done, 3, t0.Add(100*time.Millisecond+time.Minute), time.Second)

	want := counts{
		Transitions: map[pair]int{
			{Absent, InFlight}:    3,
			{InFlight, Completed}: 1,
			{InFlight, Absent}:    1, // in-flight limit
			{Completed, Absent}:   1, // ttl
		},
		Rejected: map[pair]int{},
		Evicted:  map[State]int{},
		Records:  map[State]int{InFlight: 1},
	}
	if diff := cmp.Diff(obs.snapshot(), want); diff != "" {
		t.Errorf("observer (-got +want):\n%s", diff)
	}
	if got := l.Len(); got != 1 {
		t.Errorf("Len() = %d, want 1", got)
	}
	if in, c := obs.expiredCount(InFlight), obs.expiredCount(Completed); in != 1 || c != 1 {
		t.Errorf("expiries reported: in_flight %d, completed %d; want 1 and 1", in, c)
	}
}

func TestLRUSweep_Success(t *testing.T) {
	obs := newRecObserver()
	l := NewLRU(LRUOptions{Observer: obs})
	mustClaim(t, l, scope("a"), 1, t0, time.Second)
	mustClaim(t, l, scope("b"), 1, t0, 3*time.Second)
	mustClaim(t, l, scope("c"), 1, t0, time.Second)

	if got := l.Sweep(t0.Add(2 * time.Second)); got != 2 {
		t.Errorf("Sweep() = %d, want 2", got)
	}
	if got := l.Len(); got != 1 {
		t.Errorf("Len() after sweep = %d, want 1", got)
	}
	if diff := cmp.Diff(obs.snapshot().Records, map[State]int{InFlight: 1}); diff != "" {
		t.Errorf("records gauge (-got +want):\n%s", diff)
	}
	if got := obs.expiredCount(InFlight); got != 2 {
		t.Errorf("in-flight expiries reported = %d, want 2", got)
	}
}

func TestLRUCapacityEviction_Success(t *testing.T) {
	ctx := context.Background()
	obs := newRecObserver()
	l := NewLRU(LRUOptions{Capacity: 2, Observer: obs})

	mustClaim(t, l, scope("a"), 1, t0, time.Minute) // stays in flight
	tokB := mustClaim(t, l, scope("b"), 1, t0, time.Minute)
	if err := l.Complete(ctx, scope("b"), tokB, Outcome{HTTPStatus: 200, GRPCStatus: -1}, t0, time.Hour); err != nil {
		t.Fatal(err)
	}
	mustClaim(t, l, scope("c"), 1, t0, time.Minute) // evicts a (in flight)
	mustClaim(t, l, scope("d"), 1, t0, time.Minute) // evicts b (completed)

	for _, k := range []string{"a", "b"} {
		if _, ok, _ := l.Get(ctx, scope(k), t0); ok {
			t.Errorf("Get(%s) found an evicted record", k)
		}
	}
	got := obs.snapshot()
	if diff := cmp.Diff(got.Evicted, map[State]int{InFlight: 1, Completed: 1}); diff != "" {
		t.Errorf("evictions (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(got.Records, map[State]int{InFlight: 2}); diff != "" {
		t.Errorf("records gauge (-got +want):\n%s", diff)
	}
	if l.Len() != 2 {
		t.Errorf("Len() = %d, want 2", l.Len())
	}
}

// An expired record pushed out by capacity is reported as its expiry, not
// as an eviction of a live record.
func TestLRUCapacityEvictionOfExpired_Success(t *testing.T) {
	obs := newRecObserver()
	l := NewLRU(LRUOptions{Capacity: 1, Observer: obs})
	mustClaim(t, l, scope("a"), 1, t0, time.Second)
	mustClaim(t, l, scope("b"), 1, t0.Add(2*time.Second), time.Second)

	want := counts{
		Transitions: map[pair]int{{Absent, InFlight}: 2, {InFlight, Absent}: 1},
		Rejected:    map[pair]int{},
		Evicted:     map[State]int{},
		Records:     map[State]int{InFlight: 1},
	}
	if diff := cmp.Diff(obs.snapshot(), want); diff != "" {
		t.Errorf("observer (-got +want):\n%s", diff)
	}
	if got := obs.expiredCount(InFlight); got != 1 {
		t.Errorf("in-flight expiries reported = %d, want 1", got)
	}
}

func TestLRUScopesIndependent_Success(t *testing.T) {
	base := Scope{Route: "shop/create", Side: "inbound", Principal: "p", Key: "k"}
	scopes := []Scope{
		base,
		{Route: "shop/refund", Side: "inbound", Principal: "p", Key: "k"},
		{Route: "shop/create", Side: "outbound", Principal: "p", Key: "k"},
		{Route: "shop/create", Side: "inbound", Principal: "q", Key: "k"},
		{Route: "shop/create", Side: "inbound", Principal: "", Key: "k"},
		{Route: "shop/create", Side: "inbound", Principal: "p", Key: "k2"},
		// Same concatenation, different boundaries.
		{Route: "a", Side: "bc"},
		{Route: "ab", Side: "c"},
		{Route: "", Side: "", Principal: "", Key: "abc"},
		{Route: "abc"},
		{Route: "\x01a", Side: ""},
		{Route: "", Side: "a"},
	}
	l := NewLRU(LRUOptions{})
	for i, s := range scopes {
		res, err := l.Claim(context.Background(), s, uint64(i+1), t0, time.Second)
		if err != nil || !res.Claimed {
			t.Errorf("Claim(%+v) = %+v, %v; want an independent claim", s, res, err)
		}
	}
	if l.Len() != len(scopes) {
		t.Errorf("Len() = %d, want %d", l.Len(), len(scopes))
	}
}

func TestLRUDefaults_Success(t *testing.T) {
	if got := NewLRU(LRUOptions{Capacity: -1}).Capacity(); got != DefaultCapacity {
		t.Errorf("Capacity() = %d, want %d", got, DefaultCapacity)
	}
	// A nil Observer is replaced: operations must not panic.
	l := NewLRU(LRUOptions{Capacity: 1})
	mustClaim(t, l, scope("a"), 1, t0, time.Second)
	mustClaim(t, l, scope("b"), 1, t0, time.Second)
}

func TestLRUZeroValue_Errors(t *testing.T) {
	ctx := context.Background()
	var l LRU
	_, err1 := l.Claim(ctx, scope("a"), 1, t0, time.Second)
	err2 := l.Complete(ctx, scope("a"), 1, Outcome{}, t0, time.Second)
	err3 := l.Release(ctx, scope("a"), 1, t0)
	_, _, err4 := l.Get(ctx, scope("a"), t0)
	for i, err := range []error{err1, err2, err3, err4} {
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("op %d on zero LRU: error = %v, want ErrUnavailable", i, err)
		}
	}
	if l.Len() != 0 || l.Sweep(t0) != 0 {
		t.Error("zero LRU reports records")
	}
}

func TestScopeKey_Success(t *testing.T) {
	long := Scope{Route: string(make([]byte, 200)), Key: "k"}
	k := scopeKey(&long)
	// 200 needs a two-byte uvarint; the other fields one byte each.
	if want := 2 + 200 + 1 + 1 + 1 + 1; len(k) != want {
		t.Errorf("len(scopeKey) = %d, want %d", len(k), want)
	}
}
