package engine

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/hopguard/hopguard/filters/idempotency"
	"github.com/hopguard/hopguard/filters/metrics"
	"github.com/hopguard/hopguard/policy"
	"github.com/hopguard/hopguard/policy/bundle"
)

// Options configure an Engine. Zero values give defaults.
type Options struct {
	// Clock tells the time (default: the system clock).
	Clock Clock
	// Store keeps idempotency records (default: an in-process LRU store).
	Store idempotency.Store
	// Metrics receives decisions, deadlines, attempts (default: discarded).
	Metrics *metrics.Filter
	// Logger logs rejections (default: no logging).
	Logger *zap.Logger
}

// Engine decides requests against the installed policy bundle. It is safe
// for concurrent use; SetBundle may run while requests are decided. Readers
// (Decide, Finish, Match, Route, Mesh) never lock: they load the installed
// bundle with one atomic read.
type Engine struct {
	clock   Clock
	store   idempotency.Store
	metrics *metrics.Filter
	log     *zap.Logger
	// duration observes decision times; resolved once.
	duration prometheus.Observer
	// released remembers keys whose claims failed, to spot app retries.
	released *released

	// mu serializes SetBundle; snap is what readers see.
	mu   sync.Mutex
	snap atomic.Pointer[snapshot]
}

// snapshot is one installed bundle; immutable once stored.
type snapshot struct {
	mesh    policy.Mesh
	routes  map[string]*Route
	matcher *matcher
}

// Route is a compiled route as the engine holds it: its policy, digest and
// per-route state (retry budget window, latency estimate). Adapters get
// Routes from Engine.Route or Engine.Match and pass them back to Decide; a
// Route stays usable after a newer bundle is installed (it decides with the
// policy it was looked up with).
type Route struct {
	// Policy is the enforced policy; do not modify.
	Policy policy.Route
	// Digest is Policy.Digest().
	Digest string

	// st is shared by the Routes of one ID across bundles.
	st *routeState
	// prefix is the path prefix of a prefix match (set by the matcher).
	prefix string
}

// systemClock is the default Clock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// New returns an engine with no routes.
func New(opts Options) *Engine {
	e := &Engine{clock: opts.Clock, store: opts.Store, metrics: opts.Metrics, log: opts.Logger}
	if e.clock == nil {
		e.clock = systemClock{}
	}
	if e.metrics == nil {
		e.metrics = metrics.Discard()
	}
	if e.log == nil {
		e.log = zap.NewNop()
	}
	if e.store == nil {
		e.store = defaultStore(e.metrics)
	}
	e.duration = e.metrics.DecisionDuration()
	e.released = newReleased()
	e.snap.Store(&snapshot{routes: map[string]*Route{}, matcher: newMatcher(nil)})
	return e
}

// SetBundle installs a new policy bundle (nil installs an empty one). The
// engine copies what it keeps; b may be reused afterwards. Routes are keyed
// by ID (the first of duplicate IDs wins); per-route state (budget, latency)
// is kept for route IDs present in both bundles, and the metric series of
// routes that left are deleted.
func (e *Engine) SetBundle(b *policy.Bundle) {
	if b == nil {
		b = &policy.Bundle{}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.snap.Load()
	s := &snapshot{mesh: b.Mesh, routes: make(map[string]*Route, len(b.Routes))}
	list := make([]*Route, 0, len(b.Routes))
	for _, p := range b.Routes {
		if _, dup := s.routes[p.ID]; dup {
			continue
		}
		p.Match.Methods = slices.Clone(p.Match.Methods)
		p.Retry.On = slices.Clone(p.Retry.On)
		r := &Route{Policy: p, Digest: p.Digest()}
		if prev, ok := old.routes[p.ID]; ok {
			r.st = prev.st
		} else {
			r.st = newRouteState(e.metrics, p.ID)
		}
		s.routes[p.ID] = r
		list = append(list, r)
	}
	s.matcher = newMatcher(list)
	e.snap.Store(s)
	e.metrics.SetPolicy(bundle.PolicyHash(b), b.Mesh.Environment)
	for id := range old.routes {
		if _, ok := s.routes[id]; !ok {
			e.metrics.ForgetRoute(id)
		}
	}
}

// Mesh returns the installed mesh settings.
func (e *Engine) Mesh() policy.Mesh { return e.snap.Load().mesh }

// Route returns the route with this ID, or nil.
func (e *Engine) Route(id string) *Route { return e.snap.Load().routes[id] }

// Match returns the most specific route whose match selects method and
// path, or nil: exact paths before prefixes, longer prefixes first, routes
// naming the method before routes taking any method.
func (e *Engine) Match(method, path string) *Route {
	return e.snap.Load().matcher.match(method, path)
}

// Decide decides one request at the engine clock's now. r nil (no route
// matched) lets the request through unchanged. The decision order is
// DESIGN.md §4's: deadline exhausted → retry checks (authority, remaining
// deadline vs the retry threshold, budgets) → idempotency → allow.
//
// On a dry-run route the same decision is computed, counted and logged, but
// Reject stays false, DryRunReason holds the reason, Mutations stay empty
// (the request goes on unchanged) and Replay is not set. An allowed request
// may hold an idempotency claim (d.Claim) in either mode.
//
// A completed duplicate under onDuplicate: replay is returned with
// Reject=true, Reason=ReasonIdempotencyCompleted and Replay set: the request
// must not be forwarded; an adapter that can replay answers with Replay's
// recorded status, one that cannot answers with the rejection.
//
// ctx bounds idempotency store calls only.
func (e *Engine) Decide(ctx context.Context, r *Route, f *Facts) Decision {
	now := e.clock.Now()
	a := attemptsOf(f)
	d := Decision{Attempt: a.number(), Layer: a.layer(), Side: f.Side}
	if r == nil {
		return d
	}
	st := r.state(e.metrics)
	p := &r.Policy
	mesh := &e.snap.Load().mesh
	d.Deadline = effectiveDeadline(now, &p.Deadline, mesh.ClockSkew, f)
	d.Remaining = d.Deadline.Sub(now)

	st.m.remaining.Observe(d.Remaining.Seconds())
	if d.Layer != LayerFirst {
		st.m.retries[d.Layer].Inc()
	}
	drifted := f.PolicyDigest != "" && f.PolicyDigest != r.Digest
	if drifted {
		st.m.drift.Inc()
	}

	reason := ReasonNone
	switch {
	case p.SideEffects && mesh.Frozen && !p.Critical:
		reason = ReasonFrozen
	case p.SideEffects && drifted && mesh.DriftQuarantine:
		// The data plane runs other policy than the one verified here: a
		// side effect could be retried or de-duplicated under rules nobody
		// declared, so it is refused until the node converges.
		reason = ReasonPolicyDrift
	case deadlineExhausted(d.Remaining, &p.Deadline):
		reason = ReasonDeadlineExhausted
	case d.Attempt > 1:
		reason, d.Layer = checkRetry(now, p, a, d.Remaining, &st.sides[f.Side&1])
	}
	if reason == ReasonNone {
		reason = e.checkIdempotency(ctx, now, r, f, &d)
	}
	if reason == ReasonNone && d.Claim != nil && d.Layer == LayerFirst {
		// A key that failed before, sent again: the caller is retrying.
		reason = e.checkRepeatedKey(ctx, now, r, a, &d)
	}
	if d.Attempt <= 1 {
		// Only first attempts fund the retry budget: counting retries too
		// would let a failing route raise its own allowance. Counted once
		// the attempt is known, a resent failed key being a retry as well.
		st.sides[f.Side&1].budget.countRequest(now)
	}

	switch {
	case reason == ReasonNone:
		st.m.allow[f.Side&1].Inc()
		if !p.DryRun {
			d.Mutations = mutationsFor(f.Side, p, &d)
			// The skew tolerance is this hop's admission leeway, not more
			// time: a deadline that came in x-hopguard-deadline goes on
			// unchanged, or every hop would add the skew again.
			if hd := f.HopguardDeadline; !hd.IsZero() && hd.Before(d.Mutations.Deadline) {
				d.Mutations.Deadline = hd
			}
		}
	case p.DryRun:
		d.DryRunReason = reason
		d.Replay = nil
		st.m.decision(e.metrics, p.ID, f.Side, true, reason).Inc()
		e.logRejection(p.ID, f, &d, reason, true)
	default:
		d.Reject = true
		d.Reason = reason
		st.m.decision(e.metrics, p.ID, f.Side, false, reason).Inc()
		e.logRejection(p.ID, f, &d, reason, false)
	}
	e.duration.Observe(e.clock.Now().Sub(now).Seconds())
	return d
}

// Finish reports how an allowed request ended: it completes or releases the
// decision's idempotency claim and feeds the route's latency estimate.
// Call it once per allowed decision, also for aborted streams; it clears
// d.Claim, so a second call does not touch the store again. Rejected
// decisions (d.Reject) are ignored.
//
// start is when the request was decided (the adapter's clock reading before
// Decide); out.HeadersAt − start is the latency sample. ctx bounds the store
// call only.
func (e *Engine) Finish(ctx context.Context, r *Route, d *Decision, start time.Time, out Outcome) {
	if r == nil || d == nil || d.Reject {
		return
	}
	now := e.clock.Now()
	st := r.state(e.metrics)
	end := now
	if !out.HeadersAt.IsZero() {
		st.sides[d.Side&1].latency.observe(now, out.HeadersAt.Sub(start))
		end = out.HeadersAt
	}
	switch {
	case out.Unknown && !out.Aborted:
		out.Aborted = true // release the claim, below
	case out.Aborted || retryableFailure(&out) || out.HTTPStatus >= 500:
		st.m.completions[completionFailed].Inc()
	case !d.Deadline.IsZero() && end.After(d.Deadline):
		st.m.completions[completionLate].Inc()
	default:
		st.m.completions[completionWithin].Inc()
	}
	if c := d.Claim; c != nil {
		d.Claim = nil
		e.finishClaim(ctx, now, r.Policy.ID, c, &out)
	}
}

// logRejection logs a rejection (or a dry-run one) at Info. Allowed requests
// are never logged.
func (e *Engine) logRejection(route string, f *Facts, d *Decision, reason Reason, dryRun bool) {
	if ce := e.log.Check(zap.InfoLevel, "engine: request rejected"); ce != nil {
		ce.Write(
			zap.String("route", route),
			zap.String("side", f.Side.String()),
			zap.String("reason", reason.String()),
			zap.Duration("remaining", d.Remaining),
			zap.Int("attempt", d.Attempt),
			zap.String("layer", d.Layer.String()),
			zap.Bool("dry_run", dryRun),
		)
	}
}

// HeaderParseError counts one malformed value of header that an adapter
// ignored. Adapters call it instead of failing the request.
func (e *Engine) HeaderParseError(header string) {
	e.metrics.HeaderParseError(header)
}

// Sweep removes the idempotency records that expired by now, when the store
// keeps expired records until they are touched (the in-process LRU does), so
// hopguard_idempotency_records and hopguard_idempotency_expired_total see
// claims that were never finished — a crashed request's key is otherwise
// never looked at again. It returns how many records it removed. Owners of
// an engine call it periodically (hopguard extproc and run do, every 10 s).
func (e *Engine) Sweep() int {
	if s, ok := e.store.(interface{ Sweep(time.Time) int }); ok {
		return s.Sweep(e.clock.Now())
	}
	return 0
}
