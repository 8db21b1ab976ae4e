package idempotency

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// t0 is the fake clock's origin in these tests.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// pair is a (from, to) transition as the Observer sees it.
type pair struct{ From, To State }

// counts is a snapshot of what a recObserver saw. Zero entries are left
// out, so snapshots compare with cmp.Diff against literals.
type counts struct {
	Transitions map[pair]int
	Rejected    map[pair]int
	Evicted     map[State]int
	Records     map[State]int
}

// recObserver records every Observer call; safe for concurrent use.
type recObserver struct {
	mu sync.Mutex
	c  counts
	// expired is kept apart from counts: expiries also show as transitions,
	// and the snapshot literals of other tests stay as they are.
	expired map[State]int
}

var _ Observer = (*recObserver)(nil)

func newRecObserver() *recObserver {
	return &recObserver{c: counts{
		Transitions: map[pair]int{},
		Rejected:    map[pair]int{},
		Evicted:     map[State]int{},
		Records:     map[State]int{},
	}, expired: map[State]int{}}
}

func (o *recObserver) Expired(s State) {
	o.mu.Lock()
	o.expired[s]++
	o.mu.Unlock()
}

// expiredCount returns how many expiries of state s were reported.
func (o *recObserver) expiredCount(s State) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.expired[s]
}

func (o *recObserver) Transition(from, to State) {
	o.mu.Lock()
	o.c.Transitions[pair{from, to}]++
	o.mu.Unlock()
}

func (o *recObserver) TransitionRejected(from, to State) {
	o.mu.Lock()
	o.c.Rejected[pair{from, to}]++
	o.mu.Unlock()
}

func (o *recObserver) Evicted(s State) {
	o.mu.Lock()
	o.c.Evicted[s]++
	o.mu.Unlock()
}

func (o *recObserver) Records(s State, delta int) {
	o.mu.Lock()
	o.c.Records[s] += delta
	o.mu.Unlock()
}

// snapshot returns a copy of the counts without zero entries.
func (o *recObserver) snapshot() counts {
	o.mu.Lock()
	defer o.mu.Unlock()
	return counts{
		Transitions: nonZero(o.c.Transitions),
		Rejected:    nonZero(o.c.Rejected),
		Evicted:     nonZero(o.c.Evicted),
		Records:     nonZero(o.c.Records),
	}
}

func nonZero[K comparable](m map[K]int) map[K]int {
	out := map[K]int{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// held counts the records l holds by state, expired ones included: what
// the Records gauge must equal once operations have returned.
func held(t *testing.T, l *LRU) map[State]int {
	t.Helper()
	out := map[State]int{}
	for _, e := range l.cache.Values() {
		out[e.rec.State]++
	}
	return out
}

// scope returns a scope of route "shop/create" on the inbound side.
func scope(key string) Scope {
	return Scope{Route: "shop/create", Side: "inbound", Principal: "spiffe://shop/web", Key: key}
}
