package engine

import (
	"context"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/hopguard/hopguard/filters/idempotency"
)

// releasedCapacity bounds the memory of released keys (one small entry each).
const releasedCapacity = 100_000

// released remembers idempotency keys whose claim was released after a
// failure: the next request with such a key is the caller retrying — an app
// retry (DESIGN.md §4) — even when it carries no attempt header. The store
// forgets a released key (absent is absent), so the engine keeps this
// separately, bounded by an LRU and by the route's key TTL.
type released struct {
	cache *lru.Cache[string, releasedKey]
}

type releasedKey struct {
	// releases is how many attempts with the key failed so far.
	releases int
	until    time.Time
}

func newReleased() *released {
	c, _ := lru.New[string, releasedKey](releasedCapacity) // only fails for a size ≤ 0
	return &released{cache: c}
}

func scopeKey(s idempotency.Scope) string {
	return strings.Join([]string{s.Route, s.Side, s.Principal, s.Key}, "\x00")
}

// note records one more failed attempt with s, remembered until now+ttl.
// The read-modify-write is not atomic: two concurrent releases of one key
// may count once, which only makes a retry look one attempt earlier.
func (r *released) note(s idempotency.Scope, now time.Time, ttl time.Duration) {
	k := scopeKey(s)
	prev, ok := r.cache.Get(k)
	if !ok || !now.Before(prev.until) {
		prev = releasedKey{}
	}
	r.cache.Add(k, releasedKey{releases: prev.releases + 1, until: now.Add(ttl)})
}

// failures returns how many attempts with s failed and were released.
func (r *released) failures(s idempotency.Scope, now time.Time) int {
	v, ok := r.cache.Get(scopeKey(s))
	if !ok || !now.Before(v.until) {
		return 0
	}
	return v.releases
}

// checkRepeatedKey treats a claimed key that failed before as an app retry:
// the same authority, deadline and budget checks as any retry. A refused
// retry gives its claim back at once.
func (e *Engine) checkRepeatedKey(ctx context.Context, now time.Time, r *Route, a attempts, d *Decision) Reason {
	n := e.released.failures(d.Claim.Scope, now)
	if n == 0 {
		return ReasonNone
	}
	a.app = max(a.app, min(n, MaxAttempt-1)+1)
	d.Attempt = a.number()
	st := r.state(e.metrics)
	st.m.retries[LayerApp].Inc()
	reason, layer := checkRetry(now, &r.Policy, a, d.Remaining, &st.sides[d.Side&1])
	d.Layer = layer
	if reason != ReasonNone {
		if err := e.store.Release(context.WithoutCancel(ctx), d.Claim.Scope, d.Claim.Token, now); err != nil {
			e.storeError(r.Policy.ID, "release", err)
		}
		d.Claim = nil
	}
	return reason
}
