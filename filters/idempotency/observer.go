package idempotency

// Observer is told what a store does to its records, so an adapter can turn
// it into the metrics of DESIGN.md §5 (transitions, rejections, evictions,
// the records gauge) without this package importing a metrics library.
//
// Methods are called synchronously from whichever goroutine operates on
// the store, possibly concurrently and possibly while the store holds a
// per-scope lock: implementations must be safe for concurrent use, fast,
// and must not call back into the store.
type Observer interface {
	// Transition reports one legal move (see Legal), made by any event.
	// Capacity evictions are reported by Evicted, not here.
	Transition(from, to State)
	// TransitionRejected reports an operation refused because it would make
	// an illegal move: from is the record's state as the caller's token sees
	// it (Absent when the token no longer holds the record), to is where the
	// operation leads.
	TransitionRejected(from, to State)
	// Evicted reports a live record dropped to respect the store's capacity,
	// by the state it was in. Evicting an InFlight record means a concurrent
	// duplicate of a running request can no longer be detected: the capacity
	// is too small for the traffic.
	Evicted(state State)
	// Expired reports a record that reached its ExpiresAt, by the state it
	// was in. An expired InFlight record is a claimed request that never
	// completed nor released its key: its response never reached the filter.
	Expired(state State)
	// Records adds delta (+1 or -1) to the number of records the store holds
	// in state.
	Records(state State, delta int)
}

// NopObserver is an Observer that discards everything; the zero value is
// ready to use and it is the default of stores built without an Observer.
type NopObserver struct{}

var _ Observer = NopObserver{}

// Transition does nothing.
func (NopObserver) Transition(State, State) {}

// TransitionRejected does nothing.
func (NopObserver) TransitionRejected(State, State) {}

// Evicted does nothing.
func (NopObserver) Evicted(State) {}

// Expired does nothing.
func (NopObserver) Expired(State) {}

// Records does nothing.
func (NopObserver) Records(State, int) {}
