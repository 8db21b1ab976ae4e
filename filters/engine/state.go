package engine

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hopguard/hopguard/filters/metrics"
)

// routeState is what a route accumulates across requests and bundles.
type routeState struct {
	// sides holds the retry budget and latency estimate of each hop side
	// (indexed by Side). One ext_proc server may serve both the caller's and
	// the callee's sidecar: a request is then decided twice under one route,
	// and a shared budget would be funded twice by one original request.
	// The caller side's latency includes the retries, the callee side's is
	// one attempt's.
	sides [2]sideState
	m     routeMetrics
}

// sideState is a route's retry budget and latency estimate on one side.
type sideState struct {
	budget  budget
	latency latencyEstimator
}

// Indexes of routeMetrics.completions.
const (
	completionWithin = iota
	completionLate
	completionFailed
)

// routeMetrics are a route's metric series, resolved once so the allow path
// builds no label sets. Rejection series are resolved on first use.
type routeMetrics struct {
	allow       [2]prometheus.Counter // by Side
	remaining   prometheus.Observer
	retries     [3]prometheus.Counter // by Layer; LayerFirst unresolved (never a retry)
	drift       prometheus.Counter
	completions [3]prometheus.Counter
	// rejects caches rejection counters by [dryRun][side][reason].
	rejects [2][2][reasonCount]atomic.Pointer[counterBox]
}

type counterBox struct{ c prometheus.Counter }

func newRouteState(m *metrics.Filter, route string) *routeState {
	st := &routeState{}
	rm := &st.m
	for _, s := range []Side{Inbound, Outbound} {
		rm.allow[s] = m.Decisions(route, s.String(), metrics.DecisionAllow, "")
	}
	rm.remaining = m.DeadlineRemaining(route)
	rm.retries[LayerMesh] = m.RetryAttempts(route, LayerMesh.String())
	rm.retries[LayerApp] = m.RetryAttempts(route, LayerApp.String())
	rm.drift = m.PolicyDrift(route)
	rm.completions[completionWithin] = m.Completions(route, metrics.OutcomeWithinDeadline)
	rm.completions[completionLate] = m.Completions(route, metrics.OutcomeLate)
	rm.completions[completionFailed] = m.Completions(route, metrics.OutcomeFailed)
	return st
}

// decision returns the rejection counter of (side, reason), dry-run or not.
func (rm *routeMetrics) decision(m *metrics.Filter, route string, side Side, dryRun bool, reason Reason) prometheus.Counter {
	slot := &rm.rejects[b2i(dryRun)][side&1][reason]
	if b := slot.Load(); b != nil {
		return b.c
	}
	decision := metrics.DecisionReject
	if dryRun {
		decision = metrics.DecisionDryRunReject
	}
	b := &counterBox{c: m.Decisions(route, side.String(), decision, reason.String())}
	slot.CompareAndSwap(nil, b)
	return slot.Load().c
}

// state returns the route's state; a Route built by hand (not by the
// engine) gets a fresh, unshared one, so it decides without panicking.
func (r *Route) state(m *metrics.Filter) *routeState {
	if r.st != nil {
		return r.st
	}
	return newRouteState(m, r.Policy.ID)
}
