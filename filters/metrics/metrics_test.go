package metrics

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestNew_Success(t *testing.T) {
	reg := prometheus.NewRegistry()
	f, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	f.Decisions("shop/a", "inbound", DecisionAllow, "").Inc()
	f.DecisionDuration().Observe(2e-6)
	f.DeadlineRemaining("shop/a").Observe(0.5)
	f.RetryAttempts("shop/a", "mesh").Inc()
	f.RecordState("in_flight", 2)
	f.RecordState("in_flight", -1)
	f.Transition("absent", "in_flight")
	f.TransitionRejected("completed", "in_flight")
	f.Evicted("in_flight")
	f.HeaderParseError("grpc-timeout")
	f.PolicyDrift("shop/a").Inc()
	f.Completions("shop/a", OutcomeLate).Inc()
	f.StoreErrors("shop/a", "claim", StoreActionRejected).Inc()
	f.StoreDuration("claim").Observe(3e-4)
	f.SetPolicy("0000000000000000", "prod")
	f.SetPolicy("0123456789abcdef", "prod") // replaces the first

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	want := []string{
		"hopguard_completions_total",
		"hopguard_deadline_remaining_seconds",
		"hopguard_decision_duration_seconds",
		"hopguard_decisions_total",
		"hopguard_filter_policy_info",
		"hopguard_header_parse_errors_total",
		"hopguard_idempotency_evictions_total",
		"hopguard_idempotency_expired_total",
		"hopguard_idempotency_records",
		"hopguard_idempotency_store_duration_seconds",
		"hopguard_idempotency_store_errors_total",
		"hopguard_idempotency_transition_rejections_total",
		"hopguard_idempotency_transitions_total",
		"hopguard_policy_drift_total",
		"hopguard_retry_attempts_total",
	}
	slices.Sort(names)
	if diff := cmp.Diff(names, want); diff != "" {
		t.Errorf("registered metrics (-got +want):\n%s", diff)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP hopguard_filter_policy_info 1 for the policies this filter enforces, labelled with their policy_hash (compare with the control plane's hopguard_policy_info) and environment.
# TYPE hopguard_filter_policy_info gauge
hopguard_filter_policy_info{environment="prod",policy_hash="0123456789abcdef"} 1
`), "hopguard_filter_policy_info"); err != nil {
		t.Errorf("policy info: %v", err)
	}
	expected := `
# HELP hopguard_idempotency_records Idempotency records held, by state.
# TYPE hopguard_idempotency_records gauge
hopguard_idempotency_records{state="completed"} 0
hopguard_idempotency_records{state="in_flight"} 1
# HELP hopguard_decisions_total Filter decisions by route, hop side, decision (allow, reject, dry_run_reject) and reason (empty for allow).
# TYPE hopguard_decisions_total counter
hopguard_decisions_total{decision="allow",reason="",route="shop/a",side="inbound"} 1
# HELP hopguard_idempotency_transition_rejections_total Idempotency record transitions refused as illegal.
# TYPE hopguard_idempotency_transition_rejections_total counter
hopguard_idempotency_transition_rejections_total{from="completed",to="in_flight"} 1
# HELP hopguard_idempotency_store_errors_total Idempotency store calls that failed (store down, slow or refusing), by route, op (claim, complete, release) and action (rejected, allowed, ignored).
# TYPE hopguard_idempotency_store_errors_total counter
hopguard_idempotency_store_errors_total{action="rejected",op="claim",route="shop/a"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected),
		"hopguard_idempotency_records", "hopguard_decisions_total", "hopguard_idempotency_transition_rejections_total",
		"hopguard_idempotency_store_errors_total"); err != nil {
		t.Error(err)
	}
}

func TestNew_Errors(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(reg); err != nil {
		t.Fatal(err)
	}
	_, err := New(reg)
	if !errors.Is(err, ErrRegister) {
		t.Errorf("second New on one registry: err = %v, want ErrRegister", err)
	}
}

func TestStoreDuration_DoesNotAllocate(t *testing.T) {
	f := Discard()
	if n := testing.AllocsPerRun(100, func() { f.StoreDuration("claim").Observe(1e-4) }); n != 0 {
		t.Errorf("StoreDuration(claim).Observe allocates %v times, want 0", n)
	}
}

func TestForgetRoute(t *testing.T) {
	reg := prometheus.NewRegistry()
	f, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"shop/a", "shop/b"} {
		f.Decisions(r, "inbound", DecisionAllow, "").Inc()
		f.Completions(r, OutcomeFailed).Inc()
		f.StoreErrors(r, "claim", StoreActionAllowed).Inc()
	}
	f.ForgetRoute("shop/a")
	if n := testutil.CollectAndCount(reg, "hopguard_decisions_total", "hopguard_completions_total", "hopguard_idempotency_store_errors_total"); n != 3 {
		t.Errorf("series after ForgetRoute = %d, want 3 (shop/b only)", n)
	}
}

func TestNilFilterDiscards(t *testing.T) {
	var f *Filter
	// Every method must be callable on nil.
	f.Decisions("r", "inbound", DecisionAllow, "").Inc()
	f.DecisionDuration().Observe(1)
	f.DeadlineRemaining("r").Observe(1)
	f.RetryAttempts("r", "app").Inc()
	f.PolicyDrift("r").Inc()
	f.Completions("r", OutcomeLate).Inc()
	f.ForgetRoute("r")
	f.HeaderParseError("grpc-timeout")
	f.RecordState("completed", 1)
	f.Transition("in_flight", "completed")
	f.TransitionRejected("absent", "completed")
	f.Evicted("completed")
	f.StoreErrors("r", "release", StoreActionIgnored).Inc()
	f.StoreDuration("release").Observe(1)
	if got := testutil.ToFloat64(Discard().Decisions("r", "inbound", DecisionAllow, "")); got != 0 {
		t.Errorf("fresh Discard counter = %v, want 0", got)
	}
}
