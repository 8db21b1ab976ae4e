package engine

import (
	"github.com/hopguard/hopguard/filters/idempotency"
	"github.com/hopguard/hopguard/filters/metrics"
)

// StoreObserver returns an idempotency.Observer that reports a store's
// transitions, refused transitions, evictions and record counts as the
// hopguard_idempotency_* metrics of m. Safe for concurrent use; m may be nil.
func StoreObserver(m *metrics.Filter) idempotency.Observer { return storeObserver{m: m} }

type storeObserver struct{ m *metrics.Filter }

func (o storeObserver) Transition(from, to idempotency.State) {
	o.m.Transition(from.String(), to.String())
}

func (o storeObserver) TransitionRejected(from, to idempotency.State) {
	o.m.TransitionRejected(from.String(), to.String())
}

func (o storeObserver) Evicted(s idempotency.State) { o.m.Evicted(s.String()) }

func (o storeObserver) Expired(s idempotency.State) { o.m.Expired(s.String()) }

func (o storeObserver) Records(s idempotency.State, delta int) { o.m.RecordState(s.String(), delta) }
