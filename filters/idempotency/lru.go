package idempotency

import (
	"context"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// DefaultCapacity is the record capacity of an LRU built with a
// non-positive LRUOptions.Capacity.
const DefaultCapacity = 100_000

// stripeCount is the number of per-scope locks; a power of two.
const stripeCount = 64

// LRUOptions configure an LRU. The zero value gives defaults.
type LRUOptions struct {
	// Capacity is the most records held at once (default DefaultCapacity).
	// It bounds memory: claiming a new scope in a full store evicts the least
	// recently used record, whatever its state.
	Capacity int
	// Observer is told about transitions, rejections, evictions and record
	// counts (default NopObserver).
	Observer Observer
}

// LRU is the in-process Store: a bounded least-recently-used cache
// (hashicorp/golang-lru/v2) of records. It is safe for concurrent use.
//
// Expiry. Every record carries its own ExpiresAt (a claim's in-flight limit
// differs per request, a completed record's TTL per route), which the
// library's expirable cache, with one TTL for all entries and a purge
// goroutine, cannot express. So an expired record stays in the cache until
// it is touched, swept (Sweep) or evicted, and behaves as absent in every
// operation: the operation that finds it expired removes it and reports the
// in_flight→absent or completed→absent transition.
//
// Atomicity. The cache has no compare-and-set, so every read-modify-write of
// a scope (look up, check state and token, replace or remove) runs under one
// of 64 mutexes chosen by a seeded hash of the scope. One scope always maps
// to the same mutex, so two operations on one scope never interleave; the
// cache is internally locked, so operations on scopes of different stripes
// may run at once and only contend inside the cache. Get reads without the
// stripe: a stored record is immutable (an update stores a new one), so a
// lookup sees either the old record or the new, both consistent.
//
// Capacity evictions happen inside the cache, on whichever goroutine adds a
// record, and may pick a record whose own stripe is held by another
// goroutine. Each stored record therefore has a once-only flag: the party
// that sets it (the stripe holder replacing or removing the record, or the
// eviction callback) is the one that reports the record's departure to the
// Observer, so the Records gauge counts every record exactly once. A record
// evicted while its owner is mid-operation is, for that operation, absent.
// Evicting an InFlight record is reported with Evicted(InFlight): it means a
// duplicate of a running request can no longer be detected. An evicted
// record that had already expired (as of the latest time given to a Claim
// or Complete, the operations that add records) is reported as its expiry
// transition instead.
//
// Tokens. Each claim gets a token unique within the store (a counter from a
// random start, passed through a bijective mixer, never 0). Records handed
// out by Claim (Existing) and Get carry Token 0: a token is the claimer's
// capability to complete or release, and is given to nobody else.
//
// Contexts are not consulted: no operation waits on anything but a stripe
// mutex, and a Release for an aborted stream must succeed although the
// stream's context is done.
//
// The zero LRU is not usable: its methods return ErrUnavailable. Use NewLRU.
type LRU struct {
	cache    *lru.Cache[string, *entry]
	obs      Observer
	capacity int
	seed     maphash.Seed
	stripes  [stripeCount]stripe
	// tokens is the claim counter; tokens are mix(tokens.Add(1)).
	tokens atomic.Uint64
	// lastNow is the latest time (unix ns) given to an operation that may
	// evict, so the eviction callback can tell expired records from live ones.
	lastNow atomic.Int64
}

// stripe is a mutex padded to its own cache line, so stripes do not slow
// each other through false sharing.
type stripe struct {
	sync.Mutex
	_ [56]byte
}

// entry is a stored record. rec is never written after the entry is added
// to the cache; gone is set once, by whoever takes the entry out of service.
type entry struct {
	rec  Record
	gone atomic.Bool
}

var _ Store = (*LRU)(nil)

// errNotReady is returned by the methods of an LRU not built by NewLRU.
var errNotReady = fmt.Errorf("idempotency: lru not initialised (use NewLRU): %w", ErrUnavailable)

// NewLRU returns an empty store holding at most opts.Capacity records.
func NewLRU(opts LRUOptions) *LRU {
	l := &LRU{obs: opts.Observer, capacity: opts.Capacity, seed: maphash.MakeSeed()}
	if l.obs == nil {
		l.obs = NopObserver{}
	}
	if l.capacity <= 0 {
		l.capacity = DefaultCapacity
	}
	l.tokens.Store(rand.Uint64())
	// NewWithEvict fails only for a non-positive size, which the default
	// above rules out; should it fail anyway, l.cache stays nil and every
	// method answers ErrUnavailable instead of panicking.
	if c, err := lru.NewWithEvict(l.capacity, l.onEvict); err == nil {
		l.cache = c
	}
	return l
}

// Capacity returns the most records the store holds at once.
func (l *LRU) Capacity() int { return l.capacity }

// Len returns the number of records held, expired ones not yet removed
// included.
func (l *LRU) Len() int {
	if l.cache == nil {
		return 0
	}
	return l.cache.Len()
}

// Claim implements Store.Claim. A live record is returned in Existing
// (Token zeroed) whatever its fingerprint: telling a concurrent duplicate
// from a reuse is the caller's decision. An expired record is replaced. A
// non-positive inFlightFor makes a claim that has expired by any later
// operation at the same or a later time.
func (l *LRU) Claim(_ context.Context, s Scope, fingerprint uint64, now time.Time, inFlightFor time.Duration) (ClaimResult, error) {
	if l.cache == nil {
		return ClaimResult{}, errNotReady
	}
	key := scopeKey(&s)
	mu := l.stripe(key)
	mu.Lock()
	defer mu.Unlock()
	if e, ok := l.cache.Get(key); ok {
		if !expired(e, now) {
			rec := e.rec
			rec.Token = 0
			return ClaimResult{Existing: rec}, nil
		}
		l.expire(e) // the Add below replaces it
	}
	to, err := l.move(Absent, EventClaim, "")
	if err != nil {
		return ClaimResult{}, err
	}
	tok := l.nextToken()
	l.noteNow(now)
	l.cache.Add(key, &entry{rec: Record{
		State:       to,
		Fingerprint: fingerprint,
		Token:       tok,
		GRPCStatus:  -1,
		ExpiresAt:   now.Add(inFlightFor),
	}})
	l.obs.Records(to, +1)
	return ClaimResult{Claimed: true, Token: tok}, nil
}

// Complete implements Store.Complete. It is refused (ErrIllegalTransition,
// reported to the Observer) unless token holds a live InFlight record of s:
// after a release, an expiry, an eviction, a newer claim, or a first
// Complete. A non-positive ttl keeps the completed record until any later
// operation.
func (l *LRU) Complete(_ context.Context, s Scope, token uint64, out Outcome, now time.Time, ttl time.Duration) error {
	return l.finish(scopeKey(&s), token, now, EventComplete, func(old *entry, to State) *entry {
		rec := old.rec
		rec.State = to
		rec.HTTPStatus = out.HTTPStatus
		rec.GRPCStatus = out.GRPCStatus
		rec.ExpiresAt = now.Add(ttl)
		return &entry{rec: rec}
	})
}

// Release implements Store.Release. It is refused (ErrIllegalTransition,
// reported to the Observer) unless token holds a live InFlight record of s;
// in particular a release cannot end a completed record.
func (l *LRU) Release(_ context.Context, s Scope, token uint64, now time.Time) error {
	return l.finish(scopeKey(&s), token, now, EventRelease, nil)
}

// Get implements Store.Get. The returned record's Token is zero. It holds
// the key's stripe like every other operation: a Complete that finds its
// record and re-adds it as completed must not be observable half way, when
// a capacity eviction has just taken the old entry out (a Get would see the
// record absent, then present again).
func (l *LRU) Get(_ context.Context, s Scope, now time.Time) (Record, bool, error) {
	if l.cache == nil {
		return Record{}, false, errNotReady
	}
	key := scopeKey(&s)
	mu := l.stripe(key)
	mu.Lock()
	defer mu.Unlock()
	e, ok := l.cache.Get(key)
	if !ok {
		return Record{}, false, nil
	}
	if expired(e, now) {
		l.expire(e)
		l.cache.Remove(key)
		return Record{}, false, nil
	}
	rec := e.rec
	rec.Token = 0
	return rec, true, nil
}

// Sweep removes every record expired at now, reporting each expiry, and
// returns how many it removed. The store never sweeps by itself (it starts
// no goroutine); an owner that wants the Records gauge to drop expired
// records promptly calls Sweep periodically. It walks a copy of the keys,
// so it costs O(Len) and allocates; operations proceed meanwhile.
func (l *LRU) Sweep(now time.Time) int {
	if l.cache == nil {
		return 0
	}
	n := 0
	for _, key := range l.cache.Keys() {
		if e, ok := l.cache.Peek(key); !ok || !expired(e, now) {
			continue
		}
		mu := l.stripe(key)
		mu.Lock()
		if e, ok := l.cache.Peek(key); ok && expired(e, now) {
			l.expire(e)
			l.cache.Remove(key)
			n++
		}
		mu.Unlock()
	}
	return n
}

// finish applies event (complete or release) for token to the record of
// key. build makes the replacing entry when the event leads to a stored
// state.
func (l *LRU) finish(key string, token uint64, now time.Time, event Event, build func(old *entry, to State) *entry) error {
	if l.cache == nil {
		return errNotReady
	}
	mu := l.stripe(key)
	mu.Lock()
	defer mu.Unlock()

	// from is the state as token sees it: a record it does not hold is,
	// for this claim, absent.
	e, ok := l.cache.Peek(key)
	from, why := Absent, ""
	switch {
	case !ok:
		why = "no record"
	case expired(e, now):
		l.expire(e)
		l.cache.Remove(key)
		why = "the claim expired"
	case e.rec.Token != token:
		why = "the token does not hold the record (stale claim)"
	default:
		from = e.rec.State
	}
	if _, legal := Next(from, event); legal && from != Absent && !e.gone.CompareAndSwap(false, true) {
		from, why = Absent, "the record was evicted"
	}
	to, err := l.move(from, event, why)
	if err != nil {
		return err
	}
	l.obs.Records(from, -1)
	if to == Absent {
		l.cache.Remove(key)
		return nil
	}
	l.noteNow(now)
	l.cache.Add(key, build(e, to))
	l.obs.Records(to, +1)
	return nil
}

// move checks event on a record in from against the transition table and
// reports the outcome: the new state, or a wrapped ErrIllegalTransition.
func (l *LRU) move(from State, event Event, why string) (State, error) {
	if to, ok := Next(from, event); ok {
		l.obs.Transition(from, to)
		return to, nil
	}
	if why == "" {
		why = "not allowed by the state machine"
	}
	to, err := illegal(from, event, why)
	l.obs.TransitionRejected(from, to)
	return to, err
}

// expire takes the expired entry e out of service and reports its expiry,
// unless an eviction already did. The caller holds e's stripe and removes
// or replaces e in the cache.
func (l *LRU) expire(e *entry) {
	if !e.gone.CompareAndSwap(false, true) {
		return
	}
	if _, err := l.move(e.rec.State, EventExpire, ""); err == nil {
		l.obs.Records(e.rec.State, -1)
		l.obs.Expired(e.rec.State)
	}
}

// onEvict is the cache's eviction callback. It runs for capacity
// evictions and for this store's own removals; the latter have already set
// gone and are ignored here.
func (l *LRU) onEvict(_ string, e *entry) {
	if !e.gone.CompareAndSwap(false, true) {
		return
	}
	st := e.rec.State
	l.obs.Records(st, -1)
	if e.rec.ExpiresAt.UnixNano() <= l.lastNow.Load() {
		if to, ok := Next(st, EventExpire); ok {
			l.obs.Transition(st, to)
			l.obs.Expired(st)
		}
		return
	}
	l.obs.Evicted(st)
}

// stripe returns the mutex serialising operations on key.
func (l *LRU) stripe(key string) *stripe {
	return &l.stripes[maphash.String(l.seed, key)&(stripeCount-1)]
}

// nextToken returns a claim token: unique within the store, never 0.
func (l *LRU) nextToken() uint64 {
	for {
		if t := mix64(l.tokens.Add(1)); t != 0 {
			return t
		}
	}
}

// noteNow raises lastNow to now.
func (l *LRU) noteNow(now time.Time) {
	n := now.UnixNano()
	for {
		cur := l.lastNow.Load()
		if n <= cur || l.lastNow.CompareAndSwap(cur, n) {
			return
		}
	}
}

// expired reports whether e's record has expired at now.
func expired(e *entry, now time.Time) bool { return !now.Before(e.rec.ExpiresAt) }

// mix64 is SplitMix64's finaliser: a bijection on uint64, so distinct
// counter values give distinct tokens.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
