package redisstore

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/hopguard/hopguard/filters/idempotency"
)

func TestStore_ClaimCompleteReplay(t *testing.T) {
	ctx := context.Background()
	obs := newRecObserver()
	s, _, _ := newStore(t, Options{Observer: obs})
	sc := scope("k1")

	res, err := s.Claim(ctx, sc, 42, t0, 10*time.Second)
	if err != nil || !res.Claimed || res.Token == 0 {
		t.Fatalf("first Claim = %+v, %v; want claimed with a token", res, err)
	}
	dup, err := s.Claim(ctx, sc, 42, t0.Add(time.Second), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := idempotency.ClaimResult{Existing: idempotency.Record{
		State: idempotency.InFlight, Fingerprint: 42, GRPCStatus: -1, ExpiresAt: t0.Add(10 * time.Second),
	}}
	if diff := cmp.Diff(dup, want); diff != "" {
		t.Errorf("duplicate Claim (-got +want):\n%s", diff)
	}
	out := idempotency.Outcome{HTTPStatus: 201, GRPCStatus: 0}
	if err := s.Complete(ctx, sc, res.Token, out, t0.Add(2*time.Second), time.Minute); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	rec, ok, err := s.Get(ctx, sc, t0.Add(3*time.Second))
	if err != nil || !ok {
		t.Fatalf("Get = %v, %v", ok, err)
	}
	wantRec := idempotency.Record{State: idempotency.Completed, Fingerprint: 42, HTTPStatus: 201, GRPCStatus: 0,
		ExpiresAt: t0.Add(2*time.Second + time.Minute)}
	if diff := cmp.Diff(rec, wantRec); diff != "" {
		t.Errorf("Get (-got +want):\n%s", diff)
	}
	// A reuse with another fingerprint sees the completed record.
	reuse, err := s.Claim(ctx, sc, 7, t0.Add(4*time.Second), time.Second)
	if err != nil || reuse.Claimed || reuse.Existing.Fingerprint != 42 || reuse.Existing.State != idempotency.Completed {
		t.Errorf("reuse Claim = %+v, %v; want the completed record of fingerprint 42", reuse, err)
	}
	wantT := map[pair]int{{idempotency.Absent, idempotency.InFlight}: 1, {idempotency.InFlight, idempotency.Completed}: 1}
	if diff := cmp.Diff(obs.transitions, wantT); diff != "" {
		t.Errorf("transitions (-got +want):\n%s", diff)
	}
}

func TestStore_IllegalTransitions_Errors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// run sets a record up and returns the refused operation's error.
		run func(t *testing.T, s *Store) error
	}{
		{"complete without record", func(t *testing.T, s *Store) error {
			return s.Complete(ctx, scope("a"), 1, idempotency.Outcome{HTTPStatus: 200}, t0, time.Minute)
		}},
		{"release without record", func(t *testing.T, s *Store) error {
			return s.Release(ctx, scope("a"), 1, t0)
		}},
		{"complete with stale token", func(t *testing.T, s *Store) error {
			res := mustClaim(t, s, scope("a"), t0)
			return s.Complete(ctx, scope("a"), res.Token+1, idempotency.Outcome{HTTPStatus: 200}, t0, time.Minute)
		}},
		{"complete twice", func(t *testing.T, s *Store) error {
			res := mustClaim(t, s, scope("a"), t0)
			if err := s.Complete(ctx, scope("a"), res.Token, idempotency.Outcome{HTTPStatus: 200}, t0, time.Minute); err != nil {
				t.Fatal(err)
			}
			return s.Complete(ctx, scope("a"), res.Token, idempotency.Outcome{HTTPStatus: 200}, t0, time.Minute)
		}},
		{"release completed", func(t *testing.T, s *Store) error {
			res := mustClaim(t, s, scope("a"), t0)
			if err := s.Complete(ctx, scope("a"), res.Token, idempotency.Outcome{HTTPStatus: 200}, t0, time.Minute); err != nil {
				t.Fatal(err)
			}
			return s.Release(ctx, scope("a"), res.Token, t0)
		}},
		{"release after release", func(t *testing.T, s *Store) error {
			res := mustClaim(t, s, scope("a"), t0)
			if err := s.Release(ctx, scope("a"), res.Token, t0); err != nil {
				t.Fatal(err)
			}
			return s.Release(ctx, scope("a"), res.Token, t0)
		}},
		{"complete after in-flight expiry", func(t *testing.T, s *Store) error {
			res := mustClaim(t, s, scope("a"), t0)
			return s.Complete(ctx, scope("a"), res.Token, idempotency.Outcome{HTTPStatus: 200}, t0.Add(time.Hour), time.Minute)
		}},
		{"old token after a newer claim", func(t *testing.T, s *Store) error {
			old := mustClaim(t, s, scope("a"), t0)
			mustClaim(t, s, scope("a"), t0.Add(time.Hour)) // the first claim expired
			return s.Release(ctx, scope("a"), old.Token, t0.Add(time.Hour))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _, _ := newStore(t, Options{})
			err := tc.run(t, s)
			if !errors.Is(err, idempotency.ErrIllegalTransition) {
				t.Fatalf("err = %v, want ErrIllegalTransition", err)
			}
			if errors.Is(err, idempotency.ErrUnavailable) {
				t.Errorf("err = %v also wraps ErrUnavailable", err)
			}
		})
	}
}

func TestStore_ExpiredRecordsAreAbsent(t *testing.T) {
	ctx := context.Background()
	obs := newRecObserver()
	s, _, _ := newStore(t, Options{Observer: obs})
	sc := scope("e")
	res := mustClaim(t, s, sc, t0)
	if err := s.Complete(ctx, sc, res.Token, idempotency.Outcome{HTTPStatus: 200, GRPCStatus: -1}, t0, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Get(ctx, sc, t0.Add(time.Minute)); err != nil || ok {
		t.Errorf("Get at expiry = %v, %v; want absent", ok, err)
	}
	again, err := s.Claim(ctx, sc, 9, t0.Add(time.Minute), time.Second)
	if err != nil || !again.Claimed {
		t.Fatalf("Claim after expiry = %+v, %v; want claimed", again, err)
	}
	if got := obs.expired[idempotency.Completed]; got != 1 {
		t.Errorf("expired completed = %d, want 1", got)
	}
}

func TestStore_RedisFreesMemoryWithPEXPIRE(t *testing.T) {
	ctx := context.Background()
	s, _, c := newStore(t, Options{})
	sc := scope("ttl")
	res, err := s.Claim(ctx, sc, 1, time.Now(), 3*time.Second)
	if err != nil || !res.Claimed {
		t.Fatal(res, err)
	}
	ttl, err := c.PTTL(ctx, s.Key(sc)).Result()
	if err != nil || ttl <= 2*time.Second || ttl > 3*time.Second {
		t.Errorf("in-flight PTTL = %v, %v; want in (2s, 3s]", ttl, err)
	}
	if err := s.Complete(ctx, sc, res.Token, idempotency.Outcome{HTTPStatus: 200}, time.Now(), 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	ttl, err = c.PTTL(ctx, s.Key(sc)).Result()
	if err != nil || ttl <= 0 || ttl > 200*time.Millisecond {
		t.Errorf("completed PTTL = %v, %v; want in (0, 200ms]", ttl, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := c.Exists(ctx, s.Key(sc)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Redis kept the completed record past its TTL")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStore_KeyLayout(t *testing.T) {
	ctx := context.Background()
	s, _, c := newStore(t, Options{Prefix: "mesh1:idem:"})
	sc := scope("layout")
	res := mustClaim(t, s, sc, t0)
	if err := s.Complete(ctx, sc, res.Token, idempotency.Outcome{HTTPStatus: 409, GRPCStatus: 6}, t0, time.Hour); err != nil {
		t.Fatal(err)
	}
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != s.Key(sc) {
		t.Fatalf("keys = %q, want [%q]", keys, s.Key(sc))
	}
	if k := s.Key(sc); len(k) != len("mesh1:idem:{}")+32 || k[:12] != "mesh1:idem:{" || k[len(k)-1] != '}' {
		t.Errorf("key %q does not follow <prefix>{<32 hex>}", k)
	}
	got, err := c.HGetAll(ctx, s.Key(sc)).Result()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"st": "2", "fp": "1", "tok": strconv.FormatUint(res.Token, 10),
		"http": "409", "grpc": "6", "exp": strconv.FormatInt(t0.Add(time.Hour).UnixMicro(), 10),
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("hash (-got +want):\n%s", diff)
	}
	// Scopes differing in any one field get different keys.
	other := []idempotency.Scope{
		{Route: "shop/create", Side: "outbound", Principal: sc.Principal, Key: sc.Key},
		{Route: "shop/create", Side: "inbound", Principal: "", Key: sc.Key},
		{Route: "shop/createinbound", Side: "", Principal: sc.Principal, Key: sc.Key},
	}
	for _, o := range other {
		if s.Key(o) == s.Key(sc) {
			t.Errorf("scope %+v shares key with %+v", o, sc)
		}
	}
}

func TestStore_TokensAreUniqueAcrossStores(t *testing.T) {
	ctx := context.Background()
	a, srv, _ := newStore(t, Options{})
	b := New(newClient(t, srv), Options{Timeout: time.Second})
	seen := map[uint64]bool{}
	for i := range 200 {
		st := a
		if i%2 == 1 {
			st = b
		}
		res := mustClaim(t, st, scope("u"+strconv.Itoa(i)), t0)
		if seen[res.Token] {
			t.Fatalf("token %d issued twice", res.Token)
		}
		seen[res.Token] = true
	}
	// A token issued by one replica is honoured by another.
	res, err := a.Claim(ctx, scope("x"), 1, t0, time.Minute)
	if err != nil || !res.Claimed {
		t.Fatal(res, err)
	}
	if err := b.Release(ctx, scope("x"), res.Token, t0); err != nil {
		t.Errorf("Release through another store: %v", err)
	}
}

func TestStore_Unavailable_Errors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// setup returns a store whose Redis cannot answer.
		setup func(t *testing.T) *Store
		// maxLatency bounds how long a failing call may take: far above the
		// 50ms timeout (a loaded CI machine), far below a hang.
		maxLatency time.Duration
	}{
		{"server down", func(t *testing.T) *Store {
			s, srv, _ := newStore(t, Options{Timeout: 50 * time.Millisecond})
			srv.Kill()
			return s
		}, 2 * time.Second},
		{"server hangs", func(t *testing.T) *Store {
			o, err := ParseURL("redis://" + silentServer(t) + "/0")
			if err != nil {
				t.Fatal(err)
			}
			c := redis.NewClient(o)
			t.Cleanup(func() { _ = c.Close() })
			return New(c, Options{Timeout: 50 * time.Millisecond})
		}, 3 * time.Second},
		{"read-only replica", func(t *testing.T) *Store {
			s, _, c := newStore(t, Options{})
			// A replica of an unreachable master refuses writes (READONLY).
			if err := c.SlaveOf(ctx, "127.0.0.1", "1").Err(); err != nil {
				t.Fatal(err)
			}
			return s
		}, 2 * time.Second},
		{"no client", func(t *testing.T) *Store { return &Store{} }, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.setup(t)
			start := time.Now()
			_, err := s.Claim(ctx, scope("down"), 1, t0, time.Minute)
			if took := time.Since(start); took > tc.maxLatency {
				t.Errorf("Claim took %v, want ≤ %v", took, tc.maxLatency)
			}
			if !errors.Is(err, idempotency.ErrUnavailable) {
				t.Errorf("Claim err = %v, want ErrUnavailable", err)
			}
			if tc.name == "read-only replica" {
				// Reads, and refusals that write nothing, still work on a
				// replica; only writes fail.
				return
			}
			if err := s.Complete(ctx, scope("down"), 1, idempotency.Outcome{}, t0, time.Minute); !errors.Is(err, idempotency.ErrUnavailable) {
				t.Errorf("Complete err = %v, want ErrUnavailable", err)
			}
			if err := s.Release(ctx, scope("down"), 1, t0); !errors.Is(err, idempotency.ErrUnavailable) {
				t.Errorf("Release err = %v, want ErrUnavailable", err)
			}
			{
				if _, _, err := s.Get(ctx, scope("down"), t0); !errors.Is(err, idempotency.ErrUnavailable) {
					t.Errorf("Get err = %v, want ErrUnavailable", err)
				}
			}
		})
	}
}

func TestStore_RecoversWhenRedisReturns(t *testing.T) {
	ctx := context.Background()
	s, srv, _ := newStore(t, Options{})
	mustClaim(t, s, scope("before"), t0)
	srv.Kill()
	if _, err := s.Claim(ctx, scope("during"), 1, t0, time.Minute); !errors.Is(err, idempotency.ErrUnavailable) {
		t.Fatalf("Claim while down err = %v, want ErrUnavailable", err)
	}
	srv.Restart()
	// Same Store, same client: go-redis dials again by itself.
	deadline := time.Now().Add(5 * time.Second)
	for {
		res, err := s.Claim(ctx, scope("after"), 1, t0, time.Minute)
		if err == nil {
			if !res.Claimed {
				t.Fatalf("Claim after restart = %+v, want claimed", res)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not recover within 5s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStore_CompleteIgnoresCancelledContext(t *testing.T) {
	s, _, _ := newStore(t, Options{})
	res := mustClaim(t, s, scope("c"), t0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Release(ctx, scope("c"), res.Token, t0); err != nil {
		t.Errorf("Release with a cancelled context: %v", err)
	}
}

// mustClaim claims sc for fingerprint 1 at now for a minute.
func mustClaim(t *testing.T, s *Store, sc idempotency.Scope, now time.Time) idempotency.ClaimResult {
	t.Helper()
	res, err := s.Claim(context.Background(), sc, 1, now, time.Minute)
	if err != nil || !res.Claimed {
		t.Fatalf("Claim = %+v, %v; want claimed", res, err)
	}
	return res
}
