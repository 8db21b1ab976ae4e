package idempotency

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestStateString_Success(t *testing.T) {
	tests := []struct {
		state State
		want  string
	}{
		{Absent, "absent"},
		{InFlight, "in_flight"},
		{Completed, "completed"},
		{State(7), "state(7)"},
	}
	for _, tt := range tests {
		if got := tt.state.String(); got != tt.want {
			t.Errorf("State(%d).String() = %q, want %q", tt.state, got, tt.want)
		}
	}
}

func TestEventString_Success(t *testing.T) {
	tests := []struct {
		event Event
		want  string
	}{
		{EventClaim, "claim"},
		{EventComplete, "complete"},
		{EventRelease, "release"},
		{EventExpire, "expire"},
		{Event(9), "event(9)"},
	}
	for _, tt := range tests {
		if got := tt.event.String(); got != tt.want {
			t.Errorf("Event(%d).String() = %q, want %q", tt.event, got, tt.want)
		}
	}
}

// TestLegal_Success checks every (from, to) pair, invalid states included,
// against the diagram of DESIGN.md §4 written out here independently.
func TestLegal_Success(t *testing.T) {
	legal := map[pair]bool{
		{Absent, InFlight}:    true, // claim
		{InFlight, Completed}: true, // final response
		{InFlight, Absent}:    true, // release, in-flight expiry
		{Completed, Absent}:   true, // ttl
	}
	all := append(States(), State(3), none)
	for _, from := range all {
		for _, to := range all {
			want := legal[pair{from, to}]
			if got := Legal(from, to); got != want {
				t.Errorf("Legal(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
}

func TestNext_Success(t *testing.T) {
	tests := []struct {
		from  State
		event Event
		want  State
	}{
		{Absent, EventClaim, InFlight},
		{InFlight, EventComplete, Completed},
		{InFlight, EventRelease, Absent},
		{InFlight, EventExpire, Absent},
		{Completed, EventExpire, Absent},
	}
	for _, tt := range tests {
		got, ok := Next(tt.from, tt.event)
		if !ok || got != tt.want {
			t.Errorf("Next(%s, %s) = %s, %v, want %s, true", tt.from, tt.event, got, ok, tt.want)
		}
		if !Legal(tt.from, got) {
			t.Errorf("Next(%s, %s) = %s, which Legal refuses", tt.from, tt.event, got)
		}
	}
}

func TestNext_Errors(t *testing.T) {
	tests := []struct {
		from  State
		event Event
	}{
		{Absent, EventComplete},
		{Absent, EventRelease},
		{Absent, EventExpire},
		{InFlight, EventClaim},
		{Completed, EventClaim},
		{Completed, EventComplete},
		{Completed, EventRelease}, // only the ttl ends a completed record
		{State(3), EventClaim},
		{Absent, Event(4)},
	}
	for _, tt := range tests {
		if got, ok := Next(tt.from, tt.event); ok {
			t.Errorf("Next(%s, %s) = %s, true, want refusal", tt.from, tt.event, got)
		}
	}
}

func TestTransitions_Success(t *testing.T) {
	want := []Transition{
		{Absent, EventClaim, InFlight},
		{InFlight, EventComplete, Completed},
		{InFlight, EventRelease, Absent},
		{InFlight, EventExpire, Absent},
		{Completed, EventExpire, Absent},
	}
	if diff := cmp.Diff(Transitions(), want); diff != "" {
		t.Errorf("Transitions() (-got +want):\n%s", diff)
	}
}

func TestIllegal_Errors(t *testing.T) {
	to, err := illegal(Completed, EventRelease, "why")
	if to != Absent {
		t.Errorf("illegal(completed, release) to = %s, want absent", to)
	}
	if !errors.Is(err, ErrIllegalTransition) {
		t.Errorf("illegal() error %v does not wrap ErrIllegalTransition", err)
	}
	const want = "idempotency: release on completed record (to absent): why: idempotency: illegal transition"
	if err.Error() != want {
		t.Errorf("illegal() error = %q, want %q", err, want)
	}
}
