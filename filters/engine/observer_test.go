package engine

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hopguard/hopguard/filters/idempotency"
	"github.com/hopguard/hopguard/filters/metrics"
)

func TestStoreObserver(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	o := StoreObserver(m)
	o.Transition(idempotency.Absent, idempotency.InFlight)
	o.TransitionRejected(idempotency.Completed, idempotency.InFlight)
	o.Evicted(idempotency.InFlight)
	o.Records(idempotency.Completed, 1)
	want := `
# HELP hopguard_idempotency_evictions_total Idempotency records evicted for capacity, by state.
# TYPE hopguard_idempotency_evictions_total counter
hopguard_idempotency_evictions_total{state="in_flight"} 1
# HELP hopguard_idempotency_records Idempotency records held, by state.
# TYPE hopguard_idempotency_records gauge
hopguard_idempotency_records{state="completed"} 1
# HELP hopguard_idempotency_transition_rejections_total Idempotency record transitions refused as illegal.
# TYPE hopguard_idempotency_transition_rejections_total counter
hopguard_idempotency_transition_rejections_total{from="completed",to="in_flight"} 1
# HELP hopguard_idempotency_transitions_total Idempotency record transitions made.
# TYPE hopguard_idempotency_transitions_total counter
hopguard_idempotency_transitions_total{from="absent",to="in_flight"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"hopguard_idempotency_evictions_total", "hopguard_idempotency_records",
		"hopguard_idempotency_transition_rejections_total", "hopguard_idempotency_transitions_total"); err != nil {
		t.Error(err)
	}
	StoreObserver(nil).Evicted(idempotency.Completed) // nil metrics discard
}
