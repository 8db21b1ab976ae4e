// Package redisstore is the shared idempotency.Store: records kept in Redis
// (github.com/redis/go-redis/v9), so every replica of a service sees the
// claims of the others and a retry that lands on another replica is still
// recognised as a duplicate.
//
// # Atomicity
//
// Each operation is one Lua script (EVALSHA, falling back to EVAL after a
// restart emptied the script cache) or one command, so the read-check-write
// of a record runs inside Redis without interleaving, whatever the number
// of clients. The scripts follow the transition table of package
// idempotency: claim takes an absent (or expired) key, complete and
// release need the live in-flight record of the presented token, and
// everything else is refused with an error wrapping
// idempotency.ErrIllegalTransition.
//
// # Key layout
//
// One hash per scope at
//
//	<prefix>{<hex of the first 16 bytes of SHA-256(scope)>}
//
// where prefix defaults to "hopguard:idem:" and scope is the route, side,
// principal and key, each preceded by its length as a uvarint (so distinct
// scopes never encode alike). The braces are a Redis Cluster hash tag: one
// record is one slot. The hash fields are st (1 in flight, 2 completed),
// fp (fingerprint), tok (claim token), http, grpc (recorded outcome) and
// exp (expiry, unix microseconds). Raw idempotency keys and principals are
// never written to Redis.
//
// # Expiry
//
// The caller's clock decides: a record whose exp is not after the now given
// to an operation is absent for it (the operation deletes it). Replicas
// with skewed clocks therefore see a record expire up to the skew earlier
// or later than its writer meant. Redis frees
// memory by itself: every write sets PEXPIRE to the record's remaining
// life, so in-flight records vanish after their in-flight limit and
// completed ones after their TTL without any sweeping.
//
// # Failures
//
// Every call is bounded by Options.Timeout. Any failure to get an answer
// from Redis (connection refused or reset, timeout, LOADING, READONLY, OOM,
// ...) is returned wrapped with idempotency.ErrUnavailable; the engine then
// fails closed or open as the route says. go-redis reconnects by itself,
// so the store recovers when Redis does, without a restart.
package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hopguard/hopguard/filters/idempotency"
)

// DefaultPrefix is the key prefix of a store built without one.
const DefaultPrefix = "hopguard:idem:"

// DefaultTimeout bounds each operation of a store built without a timeout.
const DefaultTimeout = 50 * time.Millisecond

// Options configure a Store. The zero value gives defaults.
type Options struct {
	// Prefix starts every key (default DefaultPrefix). Replicas sharing
	// records must use the same prefix; different meshes sharing one Redis
	// use different ones.
	Prefix string
	// Timeout bounds each operation, from the caller's context (default
	// DefaultTimeout). A slow Redis costs at most this much latency.
	Timeout time.Duration
	// Observer is told about transitions, rejections and expiries (default
	// idempotency.NopObserver). Records and Evicted are never reported: the
	// record count is Redis's (DBSIZE), and an eviction by Redis's
	// maxmemory policy is invisible to clients.
	Observer idempotency.Observer
}

// Store is the Redis idempotency.Store. It is safe for concurrent use and
// holds no state of its own besides the client, which the caller owns
// (and closes).
//
// For the guarantees of package idempotency to hold, the client should not
// retry commands itself (MaxRetries -1, as ParseURL sets): a claim whose
// reply was lost and that go-redis silently re-ran would find its own
// record and report it as somebody else's. It should also respect context
// deadlines (ContextTimeoutEnabled, as ParseURL sets), or Options.Timeout
// only bounds the wait for a pooled connection.
type Store struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration
	obs     idempotency.Observer
	// claim and finish run claimSrc and finishSrc by EVALSHA, falling back
	// to EVAL when Redis does not know the script (after a restart).
	claim, finish *redis.Script
	// abandoning bounds the background releases of failed claims
	// (abandonClaim); pending counts them, for tests.
	abandoning chan struct{}
	pending    sync.WaitGroup
}

// Background releases of claims whose reply was lost: at most
// maxAbandoning at once, each bounded by the longer of abandonTimeout and
// Options.Timeout (no request waits for them).
const (
	maxAbandoning  = 64
	abandonTimeout = time.Second
)

var _ idempotency.Store = (*Store)(nil)

// New returns a store keeping its records through client.
func New(client redis.UniversalClient, opts Options) *Store {
	s := &Store{client: client, prefix: opts.Prefix, timeout: opts.Timeout, obs: opts.Observer,
		claim: redis.NewScript(claimSrc), finish: redis.NewScript(finishSrc),
		abandoning: make(chan struct{}, maxAbandoning)}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.obs == nil {
		s.obs = idempotency.NopObserver{}
	}
	return s
}

// Key returns the Redis key of scope sc (see the package doc).
func (s *Store) Key(sc idempotency.Scope) string {
	sum := sha256.Sum256(encodeScope(&sc))
	var b strings.Builder
	b.Grow(len(s.prefix) + 34)
	b.WriteString(s.prefix)
	b.WriteByte('{')
	b.WriteString(hex.EncodeToString(sum[:16]))
	b.WriteByte('}')
	return b.String()
}

// Timeout returns the per-operation bound.
func (s *Store) Timeout() time.Duration { return s.timeout }

// Claim implements idempotency.Store.Claim: atomically, a live record is
// returned in Existing (Token zeroed), and an absent or expired one is
// replaced by an in-flight record with a new token expiring after
// inFlightFor (Redis deletes it then by itself).
func (s *Store) Claim(ctx context.Context, sc idempotency.Scope, fingerprint uint64, now time.Time, inFlightFor time.Duration) (idempotency.ClaimResult, error) {
	if s.client == nil {
		return idempotency.ClaimResult{}, errNoClient
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	tok := newToken()
	exp := now.Add(inFlightFor)
	res, err := s.claim.Run(ctx, s.client, []string{s.Key(sc)},
		now.UnixMicro(), exp.UnixMicro(), strconv.FormatUint(fingerprint, 10),
		strconv.FormatUint(tok, 10), pttl(inFlightFor)).Slice()
	if err != nil {
		s.abandonClaim(sc, tok, now)
		return idempotency.ClaimResult{}, unavailable("claim", err)
	}
	if len(res) >= 2 && asString(res[0]) == "1" {
		if old := asString(res[1]); old != "" {
			// The claim replaced an expired record: report its expiry first.
			st := parseState(old)
			s.obs.Transition(st, idempotency.Absent)
			s.obs.Expired(st)
		}
		s.obs.Transition(idempotency.Absent, idempotency.InFlight)
		return idempotency.ClaimResult{Claimed: true, Token: tok}, nil
	}
	if len(res) != 6 {
		return idempotency.ClaimResult{}, unavailable("claim", fmt.Errorf("unexpected reply %v", res))
	}
	rec, err := parseRecord(res[1:])
	if err != nil {
		return idempotency.ClaimResult{}, unavailable("claim", err)
	}
	return idempotency.ClaimResult{Existing: rec}, nil
}

// abandonClaim gives back, in the background, a claim made with token tok
// whose reply did not arrive in time. Redis may have run it all the same:
// the request was then refused as idempotency-store-unavailable while its
// key stayed in flight, and the caller's retry would meet
// idempotency-in-flight until the claim expired. The release checks the
// token, so it can only end this claim. When Redis never ran the claim the
// release finds no record, and nothing is reported; when too many releases
// are already running, the claim is left to expire.
func (s *Store) abandonClaim(sc idempotency.Scope, tok uint64, now time.Time) {
	select {
	case s.abandoning <- struct{}{}:
	default:
		return
	}
	s.pending.Add(1)
	go func() {
		defer s.pending.Done()
		defer func() { <-s.abandoning }()
		ctx, cancel := context.WithTimeout(context.Background(), max(abandonTimeout, s.timeout))
		defer cancel()
		res, err := s.finish.Run(ctx, s.client, []string{s.Key(sc)},
			now.UnixMicro(), strconv.FormatUint(tok, 10), idempotency.EventRelease.String(), "0", "-1", int64(0), int64(1)).Slice()
		if err == nil && len(res) >= 1 && asString(res[0]) == "1" {
			s.obs.Transition(idempotency.Absent, idempotency.InFlight)
			s.obs.Transition(idempotency.InFlight, idempotency.Absent)
		}
	}()
}

// Complete implements idempotency.Store.Complete: the live in-flight record
// held by token becomes completed with out, kept for ttl. It is refused
// (idempotency.ErrIllegalTransition) after a release, an expiry, a newer
// claim or a first Complete. Complete is not cut short by ctx's
// cancellation (a response that arrives as its stream ends must still be
// recorded), only by Options.Timeout.
func (s *Store) Complete(ctx context.Context, sc idempotency.Scope, token uint64, out idempotency.Outcome, now time.Time, ttl time.Duration) error {
	return s.end(ctx, sc, token, now, idempotency.EventComplete,
		strconv.Itoa(out.HTTPStatus), strconv.Itoa(out.GRPCStatus), now.Add(ttl).UnixMicro(), pttl(ttl))
}

// Release implements idempotency.Store.Release: the live in-flight record
// held by token is deleted, so a retry can claim the key. It is refused
// (idempotency.ErrIllegalTransition) unless token holds a live in-flight
// record; a release never ends a completed record. Like Complete, it is
// bounded by Options.Timeout but not by ctx's cancellation: an aborted
// stream must still give its key back.
func (s *Store) Release(ctx context.Context, sc idempotency.Scope, token uint64, now time.Time) error {
	return s.end(ctx, sc, token, now, idempotency.EventRelease, "0", "-1", int64(0), int64(1))
}

// Get implements idempotency.Store.Get with one HMGET; the returned
// record's Token is zero. An expired record is reported absent (Redis
// deletes it by itself).
func (s *Store) Get(ctx context.Context, sc idempotency.Scope, now time.Time) (idempotency.Record, bool, error) {
	if s.client == nil {
		return idempotency.Record{}, false, errNoClient
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	vals, err := s.client.HMGet(ctx, s.Key(sc), "st", "fp", "http", "grpc", "exp").Result()
	if err != nil {
		return idempotency.Record{}, false, unavailable("get", err)
	}
	if len(vals) != 5 || vals[0] == nil {
		return idempotency.Record{}, false, nil
	}
	rec, err := parseRecord(vals)
	if err != nil {
		return idempotency.Record{}, false, unavailable("get", err)
	}
	if !now.Before(rec.ExpiresAt) {
		return idempotency.Record{}, false, nil
	}
	return rec, true, nil
}

// end runs the complete or release script and reports the outcome.
func (s *Store) end(ctx context.Context, sc idempotency.Scope, token uint64, now time.Time, event idempotency.Event, httpStatus, grpcStatus string, expUs, pttlMs int64) error {
	if s.client == nil {
		return errNoClient
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	op := event.String()
	res, err := s.finish.Run(ctx, s.client, []string{s.Key(sc)},
		now.UnixMicro(), strconv.FormatUint(token, 10), op, httpStatus, grpcStatus, expUs, pttlMs).Slice()
	if err != nil {
		return unavailable(op, err)
	}
	to, _ := idempotency.Next(idempotency.InFlight, event)
	if len(res) >= 1 && asString(res[0]) == "1" {
		s.obs.Transition(idempotency.InFlight, to)
		return nil
	}
	if len(res) != 3 {
		return unavailable(op, fmt.Errorf("unexpected reply %v", res))
	}
	why, st := asString(res[1]), parseState(asString(res[2]))
	from := idempotency.Absent
	switch why {
	case "none":
		why = "no record"
	case "expired":
		s.obs.Transition(st, idempotency.Absent)
		s.obs.Expired(st)
		why = "the claim expired"
	case "stale":
		why = "the token does not hold the record (stale claim)"
	default:
		from, why = st, "not allowed by the state machine"
	}
	s.obs.TransitionRejected(from, to)
	return fmt.Errorf("redisstore: %s on %s record (to %s): %s: %w", event, from, to, why, idempotency.ErrIllegalTransition)
}

// errNoClient is returned by the methods of a Store without a client.
var errNoClient = fmt.Errorf("redisstore: no client (use New): %w", idempotency.ErrUnavailable)

// unavailable wraps a Redis failure of op with idempotency.ErrUnavailable.
func unavailable(op string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("redisstore: %s: timed out: %w", op, errors.Join(idempotency.ErrUnavailable, err))
	}
	return fmt.Errorf("redisstore: %s: %w", op, errors.Join(idempotency.ErrUnavailable, err))
}

// parseRecord reads st, fp, http, grpc, exp (as returned by HMGET or the
// claim script) into a Record with Token 0.
func parseRecord(v []any) (idempotency.Record, error) {
	if len(v) != 5 {
		return idempotency.Record{}, fmt.Errorf("record has %d fields, want 5", len(v))
	}
	fp, err1 := strconv.ParseUint(asString(v[1]), 10, 64)
	httpStatus, err2 := strconv.Atoi(asString(v[2]))
	grpcStatus, err3 := strconv.Atoi(asString(v[3]))
	exp, err4 := strconv.ParseInt(asString(v[4]), 10, 64)
	st := parseState(asString(v[0]))
	if err := errors.Join(err1, err2, err3, err4); err != nil || st == idempotency.Absent {
		return idempotency.Record{}, fmt.Errorf("malformed record %v: %w", v, err)
	}
	return idempotency.Record{
		State:       st,
		Fingerprint: fp,
		HTTPStatus:  httpStatus,
		GRPCStatus:  grpcStatus,
		ExpiresAt:   time.UnixMicro(exp),
	}, nil
}

// parseState maps the st field to a State (Absent when unknown).
func parseState(s string) idempotency.State {
	switch s {
	case "1":
		return idempotency.InFlight
	case "2":
		return idempotency.Completed
	}
	return idempotency.Absent
}

// asString returns a reply element as a string ("" for nil).
func asString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}

// pttl is the PEXPIRE argument for a record living d: whole milliseconds
// rounded up, at least 1 (PEXPIRE 0 would delete at once, which expiry by
// the caller's clock already handles).
func pttl(d time.Duration) int64 {
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return max(int64(ms), 1)
}

// newToken returns a random non-zero claim token. Tokens come from a
// cryptographically seeded generator per process, so replicas need no
// coordination: two claims share a token with probability 2^-64.
func newToken() uint64 {
	for {
		if t := rand.Uint64(); t != 0 {
			return t
		}
	}
}

// encodeScope writes Route, Side, Principal and Key each preceded by its
// length as a uvarint: an injective encoding (the one the LRU uses).
func encodeScope(s *idempotency.Scope) []byte {
	fields := [4]string{s.Route, s.Side, s.Principal, s.Key}
	n := 0
	for _, f := range fields {
		n += len(f) + 2
	}
	b := make([]byte, 0, n)
	for _, f := range fields {
		v := uint(len(f))
		for v >= 0x80 {
			b = append(b, byte(v)|0x80)
			v >>= 7
		}
		b = append(b, byte(v))
		b = append(b, f...)
	}
	return b
}
