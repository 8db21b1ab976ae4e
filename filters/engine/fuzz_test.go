package engine

import (
	"context"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/hopguard/hopguard/policy"
)

// allDigits reports whether s is 1..max ASCII digits.
func allDigits(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func FuzzParseGRPCTimeout(f *testing.F) {
	for _, s := range []string{"1H", "2M", "3S", "250m", "7u", "9n", "99999999H", "", "1x", "-1S", "123456789S"} {
		f.Add(s)
	}
	units := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second, 'm': time.Millisecond, 'u': time.Microsecond, 'n': time.Nanosecond}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := ParseGRPCTimeout(s)
		wellFormed := len(s) >= 2 && allDigits(s[:len(s)-1], 8) && units[s[len(s)-1]] != 0
		if ok != wellFormed {
			t.Fatalf("ParseGRPCTimeout(%q) ok = %v, want %v", s, ok, wellFormed)
		}
		if !ok {
			return
		}
		n, _ := strconv.ParseUint(s[:len(s)-1], 10, 64)
		unit := units[s[len(s)-1]]
		want := time.Duration(math.MaxInt64)
		if n <= uint64(math.MaxInt64/int64(unit)) {
			want = time.Duration(n) * unit
		}
		if got != want || got < 0 {
			t.Fatalf("ParseGRPCTimeout(%q) = %v, want %v", s, got, want)
		}
	})
}

func FuzzParseUnixMillis(f *testing.F) {
	for _, s := range []string{"0", "1772366400000", "0001", "-1", "", "17723664000001", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := ParseUnixMillis(s)
		if ok != allDigits(s, maxMillisDigits) {
			t.Fatalf("ParseUnixMillis(%q) ok = %v", s, ok)
		}
		if !ok {
			return
		}
		// Round trip: formatting gives the value without leading zeros.
		want := s
		for len(want) > 1 && want[0] == '0' {
			want = want[1:]
		}
		if back := FormatUnixMillis(got); back != want {
			t.Fatalf("FormatUnixMillis(ParseUnixMillis(%q)) = %q, want %q", s, back, want)
		}
	})
}

func FuzzParseMillis(f *testing.F) {
	for _, s := range []string{"0", "15000", "999999999999", "9999999999999", "", "-5", "5ms"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := ParseMillis(s)
		if ok != allDigits(s, maxRelativeMillisDigits) {
			t.Fatalf("ParseMillis(%q) ok = %v", s, ok)
		}
		if !ok {
			return
		}
		if got < 0 || got%time.Millisecond != 0 {
			t.Fatalf("ParseMillis(%q) = %v: negative or not whole ms", s, got)
		}
		if back := strconv.FormatInt(got.Milliseconds(), 10); len(back) > len(s) {
			t.Fatalf("ParseMillis(%q) = %v does not round-trip", s, got)
		}
		if n, _ := strconv.ParseInt(s, 10, 64); got.Milliseconds() != n {
			t.Fatalf("ParseMillis(%q) = %v, want %d ms", s, got, n)
		}
	})
}

func FuzzParseAttempt(f *testing.F) {
	for _, s := range []string{"0", "1", "3", "100", "101", "999999999", "1234567890", "", "-1", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := ParseAttempt(s)
		if ok != allDigits(s, 9) {
			t.Fatalf("ParseAttempt(%q) ok = %v", s, ok)
		}
		if !ok {
			return
		}
		n, _ := strconv.Atoi(s)
		if got != min(n, MaxAttempt) || got < 0 {
			t.Fatalf("ParseAttempt(%q) = %d, want %d", s, got, min(n, MaxAttempt))
		}
	})
}

// FuzzDecide feeds arbitrary header values through the parsers into Decide
// and checks the decision's invariants: it never panics, a rejection has a
// reason, dry-run never rejects, and mutations only come with an allow.
func FuzzDecide(f *testing.F) {
	f.Add("250m", "1772366400000", "15000", "2", "0", "1", "key", uint8(0))
	f.Add("1H", "0", "0", "1", "3", "9", "", uint8(7))
	f.Add("x", "-1", "1.5", "999999999", "-1", "", "bad\x00key", uint8(255))
	e, _, _ := testEngine(f,
		testRoute("Get"),
		testRoute("Pay", sideEffects(policy.RequireAlways)),
		testRoute("Dry", sideEffects(policy.RequireRetries), func(r *policy.Route) { r.DryRun = true; r.Retry.MinRemainingAuto = true }),
		testRoute("None", authority(policy.AuthorityNone), func(r *policy.Route) { r.Retry.Attempts = 1 }),
	)
	ids := []string{"shop/Get", "shop/Pay", "shop/Dry", "shop/None"}
	f.Fuzz(func(t *testing.T, timeout, deadline, expected, envoyAttempt, prev, hgAttempt, key string, bitsIn uint8) {
		r := e.Route(ids[int(bitsIn)%len(ids)])
		var facts Facts
		facts.Side = Side(bitsIn >> 2 & 1)
		facts.Proxyless = bitsIn&8 != 0
		facts.GRPCTimeout, _ = ParseGRPCTimeout(timeout)
		facts.HopguardDeadline, _ = ParseUnixMillis(deadline)
		facts.EnvoyExpectedTimeout, _ = ParseMillis(expected)
		facts.EnvoyAttemptCount, _ = ParseAttempt(envoyAttempt)
		facts.GRPCPreviousAttempts, _ = ParseAttempt(prev)
		facts.HopguardAttempt, _ = ParseAttempt(hgAttempt)
		facts.HasKey, facts.Key = bitsIn&16 != 0, key
		d := e.Decide(context.Background(), r, &facts)
		if d.Reject != (d.Reason != ReasonNone) {
			t.Fatalf("Reject = %v with Reason %v", d.Reject, d.Reason)
		}
		if r.Policy.DryRun && d.Reject {
			t.Fatal("dry-run route rejected")
		}
		if (d.Reject || d.DryRunReason != ReasonNone) && d.Mutations != (Mutations{}) {
			t.Fatalf("mutations on a rejection: %+v", d.Mutations)
		}
		if d.Attempt < 1 || d.Attempt > MaxAttempt {
			t.Fatalf("attempt %d out of range", d.Attempt)
		}
		if !d.Reject && d.Mutations.PerTryTimeout > d.Remaining && d.Remaining > 0 {
			t.Fatalf("per-try timeout %v above remaining %v", d.Mutations.PerTryTimeout, d.Remaining)
		}
		e.Finish(context.Background(), r, &d, t0, Outcome{HTTPStatus: 200, GRPCStatus: int(bitsIn % 17)})
	})
}
