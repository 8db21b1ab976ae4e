package engine

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hopguard/hopguard/filters/idempotency"
	"github.com/hopguard/hopguard/filters/metrics"
	"github.com/hopguard/hopguard/policy"
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
	o.Expired(idempotency.InFlight)
	o.Expired(idempotency.InFlight)
	want := `
# HELP hopguard_idempotency_evictions_total Idempotency records evicted for capacity, by state.
# TYPE hopguard_idempotency_evictions_total counter
hopguard_idempotency_evictions_total{state="completed"} 0
hopguard_idempotency_evictions_total{state="in_flight"} 1
# HELP hopguard_idempotency_expired_total Idempotency records that reached their expiry, by state; in_flight ones were claimed by requests whose outcome never reached the filter.
# TYPE hopguard_idempotency_expired_total counter
hopguard_idempotency_expired_total{state="completed"} 0
hopguard_idempotency_expired_total{state="in_flight"} 2
# HELP hopguard_idempotency_records Idempotency records held, by state.
# TYPE hopguard_idempotency_records gauge
hopguard_idempotency_records{state="completed"} 1
hopguard_idempotency_records{state="in_flight"} 0
# HELP hopguard_idempotency_transition_rejections_total Idempotency record transitions refused as illegal.
# TYPE hopguard_idempotency_transition_rejections_total counter
hopguard_idempotency_transition_rejections_total{from="completed",to="in_flight"} 1
# HELP hopguard_idempotency_transitions_total Idempotency record transitions made.
# TYPE hopguard_idempotency_transitions_total counter
hopguard_idempotency_transitions_total{from="absent",to="in_flight"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"hopguard_idempotency_evictions_total", "hopguard_idempotency_expired_total", "hopguard_idempotency_records",
		"hopguard_idempotency_transition_rejections_total", "hopguard_idempotency_transitions_total"); err != nil {
		t.Error(err)
	}
	StoreObserver(nil).Evicted(idempotency.Completed) // nil metrics discard
}

// TestSetBundle_PreregistersZeroSeries holds the dashboards' contract: once a
// bundle is installed, every route shows its allow and completion series at
// 0 before any request ("0", not "no data"), rejections appear only when
// they happen, and a route that leaves takes its series with it.
func TestSetBundle_PreregistersZeroSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	e := New(Options{Clock: newFakeClock(), Store: newFakeStore(), Metrics: m})
	e.SetBundle(&policy.Bundle{Routes: []policy.Route{testRoute("Get"), testRoute("Put")}})

	want := func(routes ...string) string {
		var b strings.Builder
		b.WriteString(`
# HELP hopguard_completions_total Allowed requests by how they ended: within_deadline, late or failed.
# TYPE hopguard_completions_total counter
`)
		for _, r := range routes {
			for _, o := range []string{metrics.OutcomeFailed, metrics.OutcomeLate, metrics.OutcomeWithinDeadline} {
				b.WriteString(`hopguard_completions_total{outcome="` + o + `",route="` + r + `"} 0` + "\n")
			}
		}
		b.WriteString(`# HELP hopguard_decisions_total Filter decisions by route, hop side, decision (allow, reject, dry_run_reject) and reason (empty for allow).
# TYPE hopguard_decisions_total counter
`)
		for _, r := range routes {
			for _, s := range []string{"inbound", "outbound"} {
				b.WriteString(`hopguard_decisions_total{decision="allow",reason="",route="` + r + `",side="` + s + `"} 0` + "\n")
			}
		}
		return b.String()
	}
	names := []string{"hopguard_completions_total", "hopguard_decisions_total"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want("shop/Get", "shop/Put")), names...); err != nil {
		t.Errorf("after install: %v", err)
	}

	e.SetBundle(&policy.Bundle{Routes: []policy.Route{testRoute("Put")}})
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want("shop/Put")), names...); err != nil {
		t.Errorf("after shop/Get left: %v", err)
	}
}
