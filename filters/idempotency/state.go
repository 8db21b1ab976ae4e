package idempotency

import (
	"fmt"
	"strconv"
)

// stateCount is the number of States; a State at or above it is invalid.
const stateCount = 3

// String returns "absent", "in_flight" or "completed" (the metric label
// values of DESIGN.md §5), or "state(N)" for an invalid State.
func (s State) String() string {
	switch s {
	case Absent:
		return "absent"
	case InFlight:
		return "in_flight"
	case Completed:
		return "completed"
	default:
		return "state(" + strconv.Itoa(int(s)) + ")"
	}
}

// States lists every valid State, Absent first. The caller owns the
// returned slice.
func States() []State { return []State{Absent, InFlight, Completed} }

// Event is what moves a record: the operation or the clock.
type Event uint8

// Events.
const (
	// EventClaim is a request taking an absent key (Store.Claim).
	EventClaim Event = iota
	// EventComplete is the final response of the claiming request
	// (Store.Complete).
	EventComplete
	// EventRelease is a retryable failure or an aborted stream giving the
	// key back (Store.Release).
	EventRelease
	// EventExpire is the clock passing a record's ExpiresAt: the in-flight
	// limit of a claim, or the TTL of a completed record.
	EventExpire
	eventCount
)

// String returns "claim", "complete", "release", "expire", or "event(N)".
func (e Event) String() string {
	switch e {
	case EventClaim:
		return "claim"
	case EventComplete:
		return "complete"
	case EventRelease:
		return "release"
	case EventExpire:
		return "expire"
	default:
		return "event(" + strconv.Itoa(int(e)) + ")"
	}
}

// none marks a (state, event) pair the state machine does not allow. It is
// not a State any record can be in.
const none State = 0xff

// transitions is the state machine, and the only place its legal moves are
// written down: transitions[from][event] is the state event moves a record
// in from to, or none. It is never written.
//
//	absent    ──claim────► in_flight
//	in_flight ──complete─► completed
//	in_flight ──release──► absent
//	in_flight ──expire───► absent     (in-flight limit: deadline + grace)
//	completed ──expire───► absent     (ttl)
//
// Everything else is illegal. In particular a release cannot end a
// completed record (only its TTL does), and nothing completes a record that
// is not in flight.
var transitions = [stateCount][eventCount]State{
	Absent:    {EventClaim: InFlight, EventComplete: none, EventRelease: none, EventExpire: none},
	InFlight:  {EventClaim: none, EventComplete: Completed, EventRelease: Absent, EventExpire: Absent},
	Completed: {EventClaim: none, EventComplete: none, EventRelease: none, EventExpire: Absent},
}

// Next returns the state event moves a record in from to, and ok=false
// when the state machine does not allow event in from (or either argument
// is invalid).
func Next(from State, event Event) (to State, ok bool) {
	if from >= stateCount || event >= eventCount {
		return none, false
	}
	to = transitions[from][event]
	return to, to != none
}

// Legal reports whether some event moves a record from one state to the
// other: absent→in_flight, in_flight→completed, in_flight→absent and
// completed→absent. Every other pair, including staying in a state, is
// illegal. Legal is about the pair; which event may make the move is
// Next's business (completed→absent is legal, but only by expiry).
func Legal(from, to State) bool {
	if from >= stateCount || to >= stateCount {
		return false
	}
	for _, t := range transitions[from] {
		if t == to {
			return true
		}
	}
	return false
}

// Transition is one legal move of the state machine.
type Transition struct {
	From  State
	Event Event
	To    State
}

// Transitions lists every legal move, ordered by From then Event. Metric
// adapters use it to pre-register their series. The caller owns the slice.
func Transitions() []Transition {
	out := make([]Transition, 0, 5)
	for from := State(0); from < stateCount; from++ {
		for ev := Event(0); ev < eventCount; ev++ {
			if to := transitions[from][ev]; to != none {
				out = append(out, Transition{From: from, Event: ev, To: to})
			}
		}
	}
	return out
}

// illegal returns the error for event refused on a record in from (the
// record as the caller's token sees it), wrapping ErrIllegalTransition, and
// the state the event would have reached, for the Observer.
func illegal(from State, event Event, why string) (to State, err error) {
	to = eventTarget(event)
	return to, fmt.Errorf("idempotency: %s on %s record (to %s): %s: %w", event, from, to, why, ErrIllegalTransition)
}

// eventTarget is the state event leads to wherever the table allows it:
// the "to" a refused event is reported with. Read off the table, so the
// table stays the one source.
func eventTarget(event Event) State {
	for from := State(0); from < stateCount; from++ {
		if to, ok := Next(from, event); ok {
			return to
		}
	}
	return Absent
}
