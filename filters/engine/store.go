package engine

import (
	"github.com/hopguard/hopguard/filters/idempotency"
	"github.com/hopguard/hopguard/filters/metrics"
)

// defaultStore is the store of an engine built without one: the in-process
// LRU with its default capacity, reporting to the engine's metrics.
func defaultStore(m *metrics.Filter) idempotency.Store {
	return idempotency.NewLRU(idempotency.LRUOptions{Observer: StoreObserver(m)})
}
