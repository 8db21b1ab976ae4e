package idempotency

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// model is a reference implementation of the record state machine, written
// from DESIGN.md §4 without the transition table or the LRU: a map, lazy
// expiry of the scope an operation touches, and the counts an Observer
// should see.
type model struct {
	recs map[Scope]Record
	want counts
}

func newModel() *model {
	return &model{
		recs: map[Scope]Record{},
		want: counts{Transitions: map[pair]int{}, Rejected: map[pair]int{}, Evicted: map[State]int{}, Records: map[State]int{}},
	}
}

// touch drops s's record if it expired at now, as every operation does.
func (m *model) touch(s Scope, now time.Time) {
	if r, ok := m.recs[s]; ok && !now.Before(r.ExpiresAt) {
		delete(m.recs, s)
		m.want.Transitions[pair{r.State, Absent}]++
		m.want.Records[r.State]--
	}
}

// claim returns whether s is free; when it is, the store's token is adopted.
func (m *model) claim(s Scope, fp uint64, now time.Time, d time.Duration, token uint64) ClaimResult {
	m.touch(s, now)
	if r, ok := m.recs[s]; ok {
		r.Token = 0
		return ClaimResult{Existing: r}
	}
	m.recs[s] = Record{State: InFlight, Fingerprint: fp, Token: token, GRPCStatus: -1, ExpiresAt: now.Add(d)}
	m.want.Transitions[pair{Absent, InFlight}]++
	m.want.Records[InFlight]++
	return ClaimResult{Claimed: true, Token: token}
}

// end completes (complete=true) or releases token's claim of s.
func (m *model) end(s Scope, token uint64, complete bool, out Outcome, now time.Time, ttl time.Duration) bool {
	m.touch(s, now)
	to := Absent
	if complete {
		to = Completed
	}
	r, ok := m.recs[s]
	if !ok || r.Token != token || r.State != InFlight {
		from := Absent
		if ok && r.Token == token {
			from = r.State
		}
		m.want.Rejected[pair{from, to}]++
		return false
	}
	m.want.Transitions[pair{InFlight, to}]++
	m.want.Records[InFlight]--
	if !complete {
		delete(m.recs, s)
		return true
	}
	r.State, r.HTTPStatus, r.GRPCStatus, r.ExpiresAt = Completed, out.HTTPStatus, out.GRPCStatus, now.Add(ttl)
	m.recs[s] = r
	m.want.Records[Completed]++
	return true
}

func (m *model) get(s Scope, now time.Time) (Record, bool) {
	m.touch(s, now)
	r, ok := m.recs[s]
	r.Token = 0
	return r, ok
}

// TestLRUMatchesModel_Success runs random operation sequences against the
// LRU and the model and compares every result, error and Observer count.
func TestLRUMatchesModel_Success(t *testing.T) {
	ctx := context.Background()
	scopes := []Scope{scope("a"), scope("b"), {Route: "r", Key: "a"}, {Route: "r", Side: "outbound", Key: "a"}}
	// seen accumulates the model's counts over all seeds, to prove the
	// sequences reached every legal move and every kind of refusal.
	seen := map[string]int{}
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 99))
		obs := newRecObserver()
		l := NewLRU(LRUOptions{Observer: obs})
		m := newModel()
		issued := []uint64{0}
		last := map[Scope]uint64{} // the latest token of each scope: the usual caller
		now := t0
		for step := range 1000 {
			now = now.Add(time.Duration(rng.IntN(20)) * time.Millisecond)
			s := scopes[rng.IntN(len(scopes))]
			tok := last[s]
			if rng.IntN(3) == 0 {
				tok = issued[rng.IntN(len(issued))] // a stale or foreign token
			}
			d := time.Duration(rng.IntN(60)) * time.Millisecond
			out := Outcome{HTTPStatus: 200 + rng.IntN(300), GRPCStatus: rng.IntN(17) - 1}
			var op string
			switch rng.IntN(4) {
			case 0:
				op = "claim"
				fp := uint64(rng.IntN(2) + 1)
				got, err := l.Claim(ctx, s, fp, now, d)
				if err != nil {
					t.Fatalf("seed %d step %d: Claim error: %v", seed, step, err)
				}
				if got.Claimed {
					issued = append(issued, got.Token)
					last[s] = got.Token
				}
				if want := m.claim(s, fp, now, d, got.Token); !cmp.Equal(got, want) {
					t.Fatalf("seed %d step %d: Claim (-got +want):\n%s", seed, step, cmp.Diff(got, want))
				}
			case 1, 2:
				complete := rng.IntN(2) == 0
				op = "release"
				var err error
				if complete {
					op = "complete"
					err = l.Complete(ctx, s, tok, out, now, d)
				} else {
					err = l.Release(ctx, s, tok, now)
				}
				if err != nil && !errors.Is(err, ErrIllegalTransition) {
					t.Fatalf("seed %d step %d: %s error: %v", seed, step, op, err)
				}
				if want := m.end(s, tok, complete, out, now, d); (err == nil) != want {
					t.Fatalf("seed %d step %d: %s error = %v, model succeeds = %v", seed, step, op, err, want)
				}
			default:
				op = "get"
				got, ok, err := l.Get(ctx, s, now)
				if err != nil {
					t.Fatalf("seed %d step %d: Get error: %v", seed, step, err)
				}
				want, wantOK := m.get(s, now)
				if ok != wantOK || (ok && !cmp.Equal(got, want)) {
					t.Fatalf("seed %d step %d: Get = %+v, %v; want %+v, %v", seed, step, got, ok, want, wantOK)
				}
			}
			if diff := cmp.Diff(obs.snapshot(), counts{
				Transitions: nonZero(m.want.Transitions), Rejected: nonZero(m.want.Rejected),
				Evicted: nonZero(m.want.Evicted), Records: nonZero(m.want.Records),
			}); diff != "" {
				t.Fatalf("seed %d step %d (%s): observer (-got +want):\n%s", seed, step, op, diff)
			}
			if l.Len() != len(m.recs) {
				t.Fatalf("seed %d step %d (%s): Len() = %d, model holds %d", seed, step, op, l.Len(), len(m.recs))
			}
		}
		for p, n := range m.want.Transitions {
			seen["transition "+p.From.String()+"->"+p.To.String()] += n
		}
		for p, n := range m.want.Rejected {
			seen["rejected "+p.From.String()+"->"+p.To.String()] += n
		}
	}
	for _, k := range []string{
		"transition absent->in_flight", "transition in_flight->completed",
		"transition in_flight->absent", "transition completed->absent",
		"rejected absent->completed", "rejected absent->absent",
		"rejected completed->completed", "rejected completed->absent",
	} {
		if seen[k] == 0 {
			t.Errorf("random sequences never produced %s", k)
		}
	}
}
