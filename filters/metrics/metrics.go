// Package metrics holds the filter-side Prometheus metrics of DESIGN.md §5:
// decisions, deadlines, attempts, idempotency records and completions.
//
// The engine resolves its per-route series once, when a policy bundle is
// installed (Decisions, DeadlineRemaining, RetryAttempts, ...), and keeps the
// returned counters and observers, so the allow path never builds label sets.
// Label values are low-cardinality by contract: route ids come from config,
// never from request data.
package metrics

import (
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values of hopguard_decisions_total's decision label.
const (
	DecisionAllow        = "allow"
	DecisionReject       = "reject"
	DecisionDryRunReject = "dry_run_reject"
)

// Label values of hopguard_completions_total's outcome label.
const (
	OutcomeWithinDeadline = "within_deadline"
	OutcomeLate           = "late"
	OutcomeFailed         = "failed"
)

// Label values of hopguard_idempotency_store_errors_total's action label:
// what the failed store call did to the request.
const (
	// StoreActionRejected: a claim failed and the route fails closed.
	StoreActionRejected = "rejected"
	// StoreActionAllowed: a claim failed and the route fails open.
	StoreActionAllowed = "allowed"
	// StoreActionIgnored: a complete or release failed after the request
	// was decided; the record expires by itself.
	StoreActionIgnored = "ignored"
)

// ErrRegister is wrapped by New when a collector cannot be registered.
var ErrRegister = errors.New("metrics: register")

// Filter holds the filter metrics. All methods are safe for concurrent use.
// A nil *Filter is valid and discards everything, so stores and adapters may
// be built without metrics.
type Filter struct {
	decisions   *prometheus.CounterVec
	duration    prometheus.Histogram
	remaining   *prometheus.HistogramVec
	attempts    *prometheus.CounterVec
	records     *prometheus.GaugeVec
	transitions *prometheus.CounterVec
	rejections  *prometheus.CounterVec
	evictions   *prometheus.CounterVec
	expired     *prometheus.CounterVec
	parseErrors *prometheus.CounterVec
	drift       *prometheus.CounterVec
	completions *prometheus.CounterVec
	storeErrors *prometheus.CounterVec
	storeTime   *prometheus.HistogramVec
	policyInfo  *prometheus.GaugeVec
	// policyMu guards policyLabels, the labels of policyInfo's one series.
	policyMu     sync.Mutex
	policyLabels *[2]string
	// storeOps holds storeTime's claim, complete and release series,
	// resolved once: they are observed on every keyed request.
	storeOps map[string]prometheus.Observer
}

// New returns the filter metrics registered with reg. It fails (wrapping
// ErrRegister) when reg already holds a metric of the same name.
func New(reg prometheus.Registerer) (*Filter, error) {
	f := newFilter()
	var errs []error
	for _, c := range f.collectors() {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRegister, err)
	}
	return f, nil
}

// Discard returns filter metrics registered nowhere: they count, but nobody
// scrapes them. Tests and embedders without Prometheus use it.
func Discard() *Filter { return newFilter() }

func newFilter() *Filter {
	f := &Filter{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hopguard_decisions_total",
			Help: "Filter decisions by route, hop side, decision (allow, reject, dry_run_reject) and reason (empty for allow).",
		}, []string{"route", "side", "decision", "reason"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hopguard_decision_duration_seconds",
			Help: "Time the engine took to decide one request.",
			// 1µs to ~4ms: a decision is a few microseconds unless the
			// idempotency store is remote.
			Buckets: prometheus.ExponentialBuckets(1e-6, 2, 13),
		}),
		remaining: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hopguard_deadline_remaining_seconds",
			Help:    "Remaining deadline of requests when they were decided.",
			Buckets: []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hopguard_retry_attempts_total",
			Help: "Retries (attempts after the first) seen, by route and the layer that made them (mesh, app).",
		}, []string{"route", "layer"}),
		records: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hopguard_idempotency_records",
			Help: "Idempotency records held, by state.",
		}, []string{"state"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hopguard_idempotency_transitions_total",
			Help: "Idempotency record transitions made.",
		}, []string{"from", "to"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hopguard_idempotency_transition_rejections_total",
			Help: "Idempotency record transitions refused as illegal.",
		}, []string{"from", "to"}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hopguard_idempotency_evictions_total",
			Help: "Idempotency records evicted for capacity, by state.",
		}, []string{"state"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hopguard_idempotency_expired_total",
			Help: "Idempotency records that reached their expiry, by state; in_flight ones were claimed by requests whose outcome never reached the filter.",
		}, []string{"state"}),
		parseErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hopguard_header_parse_errors_total",
			Help: "Malformed request headers ignored, by header name.",
		}, []string{"header"}),
		policyInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hopguard_filter_policy_info",
			Help: "1 for the policies this filter enforces, labelled with their policy_hash (compare with the control plane's hopguard_policy_info) and environment.",
		}, []string{"policy_hash", "environment"}),
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hopguard_policy_drift_total",
			Help: "Requests whose data plane carried a policy digest other than the filter's.",
		}, []string{"route"}),
		completions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hopguard_completions_total",
			Help: "Allowed requests by how they ended: within_deadline, late or failed.",
		}, []string{"route", "outcome"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hopguard_idempotency_store_errors_total",
			Help: "Idempotency store calls that failed (store down, slow or refusing), by route, op (claim, complete, release) and action (rejected, allowed, ignored).",
		}, []string{"route", "op", "action"}),
		storeTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hopguard_idempotency_store_duration_seconds",
			Help:    "Latency of idempotency store calls by op (claim, complete, release), failed ones included.",
			Buckets: []float64{1e-6, 1e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25},
		}, []string{"op"}),
	}
	f.storeOps = map[string]prometheus.Observer{}
	for _, op := range []string{"claim", "complete", "release"} {
		f.storeOps[op] = f.storeTime.WithLabelValues(op)
	}
	// Series a dashboard shows as 0 rather than "no data" before anything happens.
	for _, state := range []string{"in_flight", "completed"} {
		f.expired.WithLabelValues(state)
		f.evictions.WithLabelValues(state)
		f.records.WithLabelValues(state)
	}
	return f
}

func (f *Filter) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		f.decisions, f.duration, f.remaining, f.attempts, f.records, f.transitions,
		f.rejections, f.evictions, f.expired, f.parseErrors, f.drift, f.completions,
		f.storeErrors, f.storeTime, f.policyInfo,
	}
}

// unregistered returns a counter that counts for nobody: what a nil Filter
// resolves to.
func unregistered() prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: "hopguard_discarded", Help: "discarded"})
}

type nopObserver struct{}

func (nopObserver) Observe(float64) {}

// Decisions returns the decision counter of one (route, side, decision,
// reason) series. Resolve it once and keep it: resolving allocates.
func (f *Filter) Decisions(route, side, decision, reason string) prometheus.Counter {
	if f == nil {
		return unregistered()
	}
	return f.decisions.WithLabelValues(route, side, decision, reason)
}

// DecisionDuration returns the decision-duration histogram (seconds).
func (f *Filter) DecisionDuration() prometheus.Observer {
	if f == nil {
		return nopObserver{}
	}
	return f.duration
}

// DeadlineRemaining returns the remaining-deadline histogram (seconds) of a route.
func (f *Filter) DeadlineRemaining(route string) prometheus.Observer {
	if f == nil {
		return nopObserver{}
	}
	return f.remaining.WithLabelValues(route)
}

// RetryAttempts returns the retry counter of a route for a layer ("mesh" or "app").
func (f *Filter) RetryAttempts(route, layer string) prometheus.Counter {
	if f == nil {
		return unregistered()
	}
	return f.attempts.WithLabelValues(route, layer)
}

// PolicyDrift returns the drift counter of a route.
func (f *Filter) PolicyDrift(route string) prometheus.Counter {
	if f == nil {
		return unregistered()
	}
	return f.drift.WithLabelValues(route)
}

// Completions returns the completion counter of a route for an outcome
// (OutcomeWithinDeadline, OutcomeLate, OutcomeFailed).
func (f *Filter) Completions(route, outcome string) prometheus.Counter {
	if f == nil {
		return unregistered()
	}
	return f.completions.WithLabelValues(route, outcome)
}

// StoreErrors returns the store-failure counter of one (route, op, action)
// series: op is claim, complete or release, action one of the
// StoreAction constants.
func (f *Filter) StoreErrors(route, op, action string) prometheus.Counter {
	if f == nil {
		return unregistered()
	}
	return f.storeErrors.WithLabelValues(route, op, action)
}

// StoreDuration returns the store-latency histogram (seconds) of op
// (claim, complete or release). Those three are resolved in advance, so
// calling it per request does not allocate.
func (f *Filter) StoreDuration(op string) prometheus.Observer {
	if f == nil {
		return nopObserver{}
	}
	if o, ok := f.storeOps[op]; ok {
		return o
	}
	return f.storeTime.WithLabelValues(op)
}

// SetPolicy makes hopguard_filter_policy_info name the policies now
// enforced (only them).
func (f *Filter) SetPolicy(policyHash, environment string) {
	if f == nil {
		return
	}
	f.policyMu.Lock()
	defer f.policyMu.Unlock()
	// The new series first, then the old one goes: a scrape never finds
	// the filter naming no policy.
	f.policyInfo.WithLabelValues(policyHash, environment).Set(1)
	if old := f.policyLabels; old != nil && (old[0] != policyHash || old[1] != environment) {
		f.policyInfo.DeleteLabelValues(old[0], old[1])
	}
	f.policyLabels = &[2]string{policyHash, environment}
}

// ForgetRoute deletes every series labelled with route, for routes that left
// the installed bundle.
func (f *Filter) ForgetRoute(route string) {
	if f == nil {
		return
	}
	l := prometheus.Labels{"route": route}
	f.decisions.DeletePartialMatch(l)
	f.remaining.DeletePartialMatch(l)
	f.attempts.DeletePartialMatch(l)
	f.drift.DeletePartialMatch(l)
	f.completions.DeletePartialMatch(l)
	f.storeErrors.DeletePartialMatch(l)
}

// Expired counts one record of state (label value) that reached its expiry.
func (f *Filter) Expired(state string) {
	if f == nil {
		return
	}
	f.expired.WithLabelValues(state).Inc()
}

// HeaderParseError counts one malformed value of header (lower-case name);
// adapters call it when a Parse function reports ok=false.
func (f *Filter) HeaderParseError(header string) {
	if f == nil {
		return
	}
	f.parseErrors.WithLabelValues(header).Inc()
}

// RecordState adds delta (may be negative) to the number of idempotency
// records held in state ("in_flight", "completed").
func (f *Filter) RecordState(state string, delta int) {
	if f == nil {
		return
	}
	f.records.WithLabelValues(state).Add(float64(delta))
}

// Transition counts one legal idempotency record transition.
func (f *Filter) Transition(from, to string) {
	if f == nil {
		return
	}
	f.transitions.WithLabelValues(from, to).Inc()
}

// TransitionRejected counts one refused (illegal) idempotency record transition.
func (f *Filter) TransitionRejected(from, to string) {
	if f == nil {
		return
	}
	f.rejections.WithLabelValues(from, to).Inc()
}

// Evicted counts one idempotency record evicted for capacity while in state.
func (f *Filter) Evicted(state string) {
	if f == nil {
		return
	}
	f.evictions.WithLabelValues(state).Inc()
}
