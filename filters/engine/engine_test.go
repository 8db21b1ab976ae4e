package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hopguard/hopguard/filters/metrics"
	"github.com/hopguard/hopguard/policy"
)

func TestDecide_Success(t *testing.T) {
	tests := []struct {
		name  string
		route policy.Route
		facts Facts
		want  Decision
	}{
		{
			name:  "first attempt inbound: default deadline stamped",
			route: testRoute("Get"),
			facts: Facts{Method: "POST", Path: "/shop.Orders/Get"},
			want: Decision{
				Deadline: t0.Add(800 * time.Millisecond), Remaining: 800 * time.Millisecond, Attempt: 1,
				Mutations: Mutations{Deadline: t0.Add(800 * time.Millisecond), StripRetryHeaders: true},
			},
		},
		{
			name:  "outbound: timeouts clamped, mesh retries afforded",
			route: testRoute("Get"),
			facts: Facts{Side: Outbound, GRPCTimeout: 600 * time.Millisecond},
			want: Decision{
				Deadline: t0.Add(600 * time.Millisecond), Remaining: 600 * time.Millisecond, Attempt: 1,
				Mutations: Mutations{
					Deadline: t0.Add(600 * time.Millisecond), UpstreamTimeout: 600 * time.Millisecond,
					PerTryTimeout: 250 * time.Millisecond, SetMaxRetries: true, MaxRetries: 1, StripRetryHeaders: true,
				},
			},
		},
		{
			name:  "outbound: per-try clamped to remaining",
			route: testRoute("Get"),
			facts: Facts{Side: Outbound, EnvoyExpectedTimeout: 200 * time.Millisecond},
			want: Decision{
				Deadline: t0.Add(200 * time.Millisecond), Remaining: 200 * time.Millisecond, Attempt: 1,
				Mutations: Mutations{
					Deadline: t0.Add(200 * time.Millisecond), UpstreamTimeout: 200 * time.Millisecond,
					PerTryTimeout: 200 * time.Millisecond, SetMaxRetries: true, MaxRetries: 0, StripRetryHeaders: true,
				},
			},
		},
		{
			name:  "outbound, app authority: max retries 0",
			route: testRoute("Get", authority(policy.AuthorityApp)),
			facts: Facts{Side: Outbound},
			want: Decision{
				Deadline: t0.Add(800 * time.Millisecond), Remaining: 800 * time.Millisecond, Attempt: 1,
				Mutations: Mutations{
					Deadline: t0.Add(800 * time.Millisecond), UpstreamTimeout: 800 * time.Millisecond,
					PerTryTimeout: 250 * time.Millisecond, SetMaxRetries: true, MaxRetries: 0, StripRetryHeaders: true,
				},
			},
		},
		{
			name:  "admitted mesh retry",
			route: testRoute("Get"),
			facts: Facts{EnvoyAttemptCount: 2, GRPCTimeout: time.Second},
			want: Decision{
				Deadline: t0.Add(time.Second), Remaining: time.Second, Attempt: 2, Layer: LayerMesh,
				Mutations: Mutations{Deadline: t0.Add(time.Second), StripRetryHeaders: true},
			},
		},
		{
			name:  "dry-run allow: no mutations",
			route: testRoute("Get", func(r *policy.Route) { r.DryRun = true }),
			facts: Facts{},
			want:  Decision{Deadline: t0.Add(800 * time.Millisecond), Remaining: 800 * time.Millisecond, Attempt: 1},
		},
		{
			name:  "key on a route without side effects is optional under require: retries",
			route: testRoute("Get", func(r *policy.Route) { r.Idempotency.Require = policy.RequireRetries }),
			facts: Facts{},
			want: Decision{
				Deadline: t0.Add(800 * time.Millisecond), Remaining: 800 * time.Millisecond, Attempt: 1,
				Mutations: Mutations{Deadline: t0.Add(800 * time.Millisecond), StripRetryHeaders: true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _, _ := testEngine(t, tt.route)
			got := e.Decide(context.Background(), mustRoute(t, e, tt.route.ID), &tt.facts)
			tt.want.Side = tt.facts.Side // the decision names the side it was made on
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("Decide (-got +want):\n%s", diff)
			}
		})
	}
}

// sideEffects makes a route side-effecting with the given key requirement.
func sideEffects(req policy.Require) func(*policy.Route) {
	return func(r *policy.Route) { r.SideEffects, r.Idempotency.Require = true, req }
}

func TestDecide_Errors(t *testing.T) {
	tests := []struct {
		name      string
		route     policy.Route
		facts     Facts
		want      Reason
		wantLayer Layer
	}{
		{"deadline exhausted", testRoute("Get"), Facts{GRPCTimeout: 20 * time.Millisecond}, ReasonDeadlineExhausted, LayerFirst},
		{"deadline already past", testRoute("Get"), Facts{HopguardDeadline: t0.Add(-time.Second)}, ReasonDeadlineExhausted, LayerFirst},
		{"deadline exhausted before retry checks", testRoute("Get", authority(policy.AuthorityNone)),
			Facts{EnvoyAttemptCount: 2, GRPCTimeout: time.Millisecond}, ReasonDeadlineExhausted, LayerMesh},
		{"retry not authority", testRoute("Get"), Facts{HopguardAttempt: 2}, ReasonRetryNotAuthority, LayerApp},
		{"authority none", testRoute("Get", authority(policy.AuthorityNone)), Facts{Proxyless: true, GRPCPreviousAttempts: 1}, ReasonRetryNotAuthority, LayerMesh},
		{"retry deadline insufficient", testRoute("Get"), Facts{EnvoyAttemptCount: 2, GRPCTimeout: 50 * time.Millisecond}, ReasonRetryDeadlineInsufficient, LayerMesh},
		{"declared attempts spent", testRoute("Get"), Facts{EnvoyAttemptCount: 4}, ReasonRetryBudgetExhausted, LayerMesh},
		{"key missing", testRoute("Pay", sideEffects(policy.RequireAlways)), Facts{}, ReasonIdempotencyKeyMissing, LayerFirst},
		{"key missing on retry", testRoute("Pay", sideEffects(policy.RequireRetries)), Facts{EnvoyAttemptCount: 2}, ReasonIdempotencyKeyMissing, LayerMesh},
		{"key invalid", testRoute("Pay", sideEffects(policy.RequireAlways)), Facts{HasKey: true, Key: "bad\nkey"}, ReasonIdempotencyKeyInvalid, LayerFirst},
		{"empty key invalid", testRoute("Pay", sideEffects(policy.RequireAlways)), Facts{HasKey: true}, ReasonIdempotencyKeyInvalid, LayerFirst},
		{"key invalid on a route without side effects", testRoute("Get"), Facts{HasKey: true, Key: string(make([]byte, 256))}, ReasonIdempotencyKeyInvalid, LayerFirst},
		{"retry checks before idempotency", testRoute("Pay", sideEffects(policy.RequireAlways)), Facts{HopguardAttempt: 2}, ReasonRetryNotAuthority, LayerApp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _, st := testEngine(t, tt.route)
			got := e.Decide(context.Background(), mustRoute(t, e, tt.route.ID), &tt.facts)
			want := Decision{Reject: true, Reason: tt.want, Layer: tt.wantLayer}
			if diff := cmp.Diff(got, want, cmp.FilterPath(func(p cmp.Path) bool {
				switch p.String() {
				case "Deadline", "Remaining", "Attempt":
					return true
				}
				return false
			}, cmp.Ignore())); diff != "" {
				t.Errorf("Decide (-got +want):\n%s", diff)
			}
			if tt.want < ReasonIdempotencyKeyReused && len(st.Calls()) != 0 {
				t.Errorf("store called %v for a request refused before de-duplication", st.Calls())
			}
		})
	}
}

func TestDecide_NilRoutePassesThrough(t *testing.T) {
	e, _, _ := testEngine(t)
	got := e.Decide(context.Background(), nil, &Facts{EnvoyAttemptCount: 2})
	if diff := cmp.Diff(got, Decision{Attempt: 2, Layer: LayerMesh}); diff != "" {
		t.Errorf("Decide(nil route) (-got +want):\n%s", diff)
	}
	e.Finish(context.Background(), nil, &got, t0, Outcome{}) // must not panic
}

func TestDecide_HandBuiltRoute(t *testing.T) {
	e, _, _ := testEngine(t)
	r := &Route{Policy: testRoute("Get")}
	if d := e.Decide(context.Background(), r, &Facts{}); d.Reject {
		t.Errorf("hand-built route rejected: %v", d.Reason)
	}
}

func TestDecide_DryRun(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	clk, st := newFakeClock(), newFakeStore()
	e := New(Options{Clock: clk, Store: st, Metrics: m, Logger: zap.New(core)})
	p := testRoute("Pay", sideEffects(policy.RequireAlways), func(r *policy.Route) { r.DryRun = true })
	e.SetBundle(&policy.Bundle{Routes: []policy.Route{p}})
	r := mustRoute(t, e, p.ID)

	got := e.Decide(context.Background(), r, &Facts{})
	want := Decision{DryRunReason: ReasonIdempotencyKeyMissing, Deadline: t0.Add(800 * time.Millisecond), Remaining: 800 * time.Millisecond, Attempt: 1}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("Decide (-got +want):\n%s", diff)
	}
	if n := testutil.ToFloat64(m.Decisions(p.ID, "inbound", metrics.DecisionDryRunReject, "idempotency-key-missing")); n != 1 {
		t.Errorf("dry_run_reject counted %v times, want 1", n)
	}
	if n := testutil.ToFloat64(m.Decisions(p.ID, "inbound", metrics.DecisionReject, "idempotency-key-missing")); n != 0 {
		t.Errorf("reject counted %v times in dry-run, want 0", n)
	}
	if logs.Len() != 1 || logs.All()[0].ContextMap()["dry_run"] != true {
		t.Errorf("logs = %v, want one dry-run rejection", logs.All())
	}

	// A completed duplicate under replay: no Replay handed out in dry-run.
	p.Idempotency.Replay = true
	e.SetBundle(&policy.Bundle{Routes: []policy.Route{p}})
	r = mustRoute(t, e, p.ID)
	f := Facts{HasKey: true, Key: "k1"}
	first := e.Decide(context.Background(), r, &f)
	if first.Claim == nil {
		t.Fatal("dry-run allow took no claim")
	}
	e.Finish(context.Background(), r, &first, t0, Outcome{HTTPStatus: 201, GRPCStatus: -1})
	dup := e.Decide(context.Background(), r, &f)
	if dup.Reject || dup.Replay != nil || dup.DryRunReason != ReasonIdempotencyCompleted || dup.Claim != nil {
		t.Errorf("dry-run duplicate = %+v, want pass-through with DryRunReason %v", dup, ReasonIdempotencyCompleted)
	}
}

func TestDecide_MetricsAndLogs(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	e := New(Options{Clock: newFakeClock(), Store: newFakeStore(), Metrics: m, Logger: zap.New(core)})
	p := testRoute("Get")
	e.SetBundle(&policy.Bundle{Routes: []policy.Route{p}})
	r := mustRoute(t, e, p.ID)
	ctx := context.Background()

	e.Decide(ctx, r, &Facts{PolicyDigest: r.Digest})
	e.Decide(ctx, r, &Facts{Side: Outbound, PolicyDigest: "0123456789abcdef"})
	e.Decide(ctx, r, &Facts{EnvoyAttemptCount: 2})
	e.Decide(ctx, r, &Facts{HopguardAttempt: 2})
	if logs.Len() != 1 {
		t.Fatalf("logged %d entries, want 1 (allow logs nothing): %v", logs.Len(), logs.All())
	}
	wantLog := map[string]any{
		"route": p.ID, "side": "inbound", "reason": "retry-not-authority",
		"remaining": 800 * time.Millisecond, "attempt": int64(2), "layer": "app", "dry_run": false,
	}
	if diff := cmp.Diff(logs.All()[0].ContextMap(), wantLog); diff != "" {
		t.Errorf("log fields (-got +want):\n%s", diff)
	}
	for _, c := range []struct {
		name string
		got  prometheus.Collector
		want float64
	}{
		{"allow inbound", m.Decisions(p.ID, "inbound", "allow", ""), 2},
		{"allow outbound", m.Decisions(p.ID, "outbound", "allow", ""), 1},
		{"reject", m.Decisions(p.ID, "inbound", "reject", "retry-not-authority"), 1},
		{"mesh retries", m.RetryAttempts(p.ID, "mesh"), 1},
		{"app retries", m.RetryAttempts(p.ID, "app"), 1},
		{"drift", m.PolicyDrift(p.ID), 1},
	} {
		if got := testutil.ToFloat64(c.got); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(reg, "hopguard_deadline_remaining_seconds", "hopguard_decision_duration_seconds"); n != 2 {
		t.Errorf("histogram series = %d, want 2", n)
	}
	// Routes that leave the bundle lose their series.
	e.SetBundle(&policy.Bundle{})
	if n := testutil.CollectAndCount(reg, "hopguard_decisions_total"); n != 0 {
		t.Errorf("decision series after the route left = %d, want 0", n)
	}
}

func TestSetBundle_KeepsStateOfUnchangedIDs(t *testing.T) {
	e, _, _ := testEngine(t, testRoute("Get"), testRoute("Put"))
	get, put := mustRoute(t, e, "shop/Get"), mustRoute(t, e, "shop/Put")
	changed := testRoute("Get", func(r *policy.Route) { r.Deadline.Default = time.Second })
	e.SetBundle(&policy.Bundle{Mesh: policy.Mesh{Environment: "prod"}, Routes: []policy.Route{changed, testRoute("New")}})
	if got := mustRoute(t, e, "shop/Get"); got.st != get.st || got.Policy.Deadline.Default != time.Second || got.Digest == get.Digest {
		t.Errorf("shop/Get after SetBundle: state kept = %v, policy updated = %v, digest updated = %v",
			got.st == get.st, got.Policy.Deadline.Default == time.Second, got.Digest != get.Digest)
	}
	if e.Route("shop/Put") != nil {
		t.Error("shop/Put still installed")
	}
	if e.Mesh().Environment != "prod" {
		t.Errorf("Mesh() = %+v, want environment prod", e.Mesh())
	}
	// The route looked up before the swap still decides with its policy.
	if d := e.Decide(context.Background(), put, &Facts{}); d.Reject || d.Remaining != 800*time.Millisecond {
		t.Errorf("stale route decision = %+v", d)
	}
}

func TestSetBundle_CopiesSlices(t *testing.T) {
	b := &policy.Bundle{Routes: []policy.Route{testRoute("x", func(r *policy.Route) {
		r.Match = policy.Match{Path: "/x", Methods: []string{"GET"}}
	})}}
	e, _, _ := testEngine(t)
	e.SetBundle(b)
	b.Routes[0].Match.Methods[0] = "POST"
	if e.Match("GET", "/x") == nil {
		t.Error("engine follows a caller's change to the bundle")
	}
}

func TestFinish_Completions(t *testing.T) {
	tests := []struct {
		name string
		at   time.Duration // HeadersAt after start; 0 = no headers
		out  Outcome
		want string
	}{
		{"within deadline", 100 * time.Millisecond, Outcome{HTTPStatus: 200, GRPCStatus: -1}, metrics.OutcomeWithinDeadline},
		{"late", time.Second, Outcome{HTTPStatus: 200, GRPCStatus: -1}, metrics.OutcomeLate},
		{"failed 503", 10 * time.Millisecond, Outcome{HTTPStatus: 503, GRPCStatus: -1}, metrics.OutcomeFailed},
		{"failed unavailable", 10 * time.Millisecond, Outcome{HTTPStatus: 200, GRPCStatus: 14}, metrics.OutcomeFailed},
		{"aborted", 0, Outcome{Aborted: true, GRPCStatus: -1}, metrics.OutcomeFailed},
		{"client error is final", 10 * time.Millisecond, Outcome{HTTPStatus: 404, GRPCStatus: -1}, metrics.OutcomeWithinDeadline},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := metrics.Discard()
			clk := newFakeClock()
			e := New(Options{Clock: clk, Store: newFakeStore(), Metrics: m})
			e.SetBundle(&policy.Bundle{Routes: []policy.Route{testRoute("Get")}})
			r := mustRoute(t, e, "shop/Get")
			d := e.Decide(context.Background(), r, &Facts{})
			out := tt.out
			if tt.at > 0 {
				out.HeadersAt = t0.Add(tt.at)
			}
			clk.Advance(tt.at)
			e.Finish(context.Background(), r, &d, t0, out)
			for _, o := range []string{metrics.OutcomeWithinDeadline, metrics.OutcomeLate, metrics.OutcomeFailed} {
				want := float64(b2i(o == tt.want))
				if got := testutil.ToFloat64(m.Completions("shop/Get", o)); got != want {
					t.Errorf("completions{%s} = %v, want %v", o, got, want)
				}
			}
			if _, n := r.st.sides[Inbound].latency.quantile(clk.Now(), 0.9); n != b2i(tt.at > 0) {
				t.Errorf("latency samples = %d, want %d", n, b2i(tt.at > 0))
			}
		})
	}
}

func TestFinish_IgnoresRejected(t *testing.T) {
	e, _, _ := testEngine(t, testRoute("Get"))
	r := mustRoute(t, e, "shop/Get")
	d := e.Decide(context.Background(), r, &Facts{GRPCTimeout: time.Millisecond})
	if !d.Reject {
		t.Fatal("want a rejection")
	}
	e.Finish(context.Background(), r, &d, t0, Outcome{HeadersAt: t0.Add(time.Millisecond)})
	if _, n := r.st.sides[Inbound].latency.quantile(t0, 0.9); n != 0 {
		t.Errorf("rejected request fed %d latency samples", n)
	}
}

func TestDecide_RetryBudgetSlidingWindow(t *testing.T) {
	p := testRoute("Get", func(r *policy.Route) { r.Retry.BudgetRatio, r.Retry.BudgetMinPerSecond = 0.1, 0 })
	e, clk, _ := testEngine(t, p)
	r := mustRoute(t, e, p.ID)
	ctx := context.Background()
	for range 90 {
		if d := e.Decide(ctx, r, &Facts{}); d.Reject {
			t.Fatalf("first attempt rejected: %v", d.Reason)
		}
	}
	// Only first attempts fund the budget: 0.1 × 90 admits 9 retries, and
	// the retries that follow, admitted or refused, do not raise it.
	admitted := 0
	var last Decision
	for range 20 {
		last = e.Decide(ctx, r, &Facts{EnvoyAttemptCount: 2})
		if !last.Reject {
			admitted++
		}
	}
	if admitted != 9 || last.Reason != ReasonRetryBudgetExhausted {
		t.Errorf("admitted %d retries, last %v; want 9 and %v", admitted, last.Reason, ReasonRetryBudgetExhausted)
	}
	// Ten seconds later the window has slid past all of it: with no
	// floor, a retry with no traffic behind it is refused; after fresh
	// traffic retries pass again.
	clk.Advance(budgetWindow)
	if d := e.Decide(ctx, r, &Facts{EnvoyAttemptCount: 2}); d.Reason != ReasonRetryBudgetExhausted {
		t.Errorf("retry without traffic = %v, want %v", d.Reason, ReasonRetryBudgetExhausted)
	}
	for range 20 {
		e.Decide(ctx, r, &Facts{})
	}
	if d := e.Decide(ctx, r, &Facts{EnvoyAttemptCount: 2}); d.Reject {
		t.Errorf("retry after fresh traffic = %v, want allowed", d.Reason)
	}
}

// TestDecide_SidesKeepTheirOwnBudgets: one ext_proc server may serve the
// caller's and the callee's sidecar, deciding each call twice under one
// route. Each side's retries are funded by that side's first attempts
// alone, so the ratio holds instead of doubling.
func TestDecide_SidesKeepTheirOwnBudgets(t *testing.T) {
	p := testRoute("Get", func(r *policy.Route) { r.Retry.BudgetRatio, r.Retry.BudgetMinPerSecond = 0.1, 0 })
	e, _, _ := testEngine(t, p)
	r := mustRoute(t, e, p.ID)
	ctx := context.Background()
	for range 100 {
		for _, side := range []Side{Outbound, Inbound} {
			if d := e.Decide(ctx, r, &Facts{Side: side, EnvoyAttemptCount: 1}); d.Reject {
				t.Fatalf("first attempt (%v) rejected: %v", side, d.Reason)
			}
		}
	}
	admitted := 0
	for range 100 {
		if d := e.Decide(ctx, r, &Facts{Side: Inbound, EnvoyAttemptCount: 2}); !d.Reject {
			admitted++
		}
	}
	if admitted != 10 {
		t.Errorf("callee side admitted %d retries of 100 calls at ratio 0.1, want 10", admitted)
	}
	// The caller side's budget is its own, untouched by the callee's retries.
	admitted = 0
	for range 100 {
		if d := e.Decide(ctx, r, &Facts{Side: Outbound, EnvoyAttemptCount: 2}); !d.Reject {
			admitted++
		}
	}
	if admitted != 10 {
		t.Errorf("caller side admitted %d retries of 100 calls at ratio 0.1, want 10", admitted)
	}
}

func TestDecide_AutoThresholdLearnsFromFinish(t *testing.T) {
	p := testRoute("Get", func(r *policy.Route) { r.Retry.MinRemainingAuto = true })
	e, clk, _ := testEngine(t, p)
	r := mustRoute(t, e, p.ID)
	ctx := context.Background()
	retry := Facts{EnvoyAttemptCount: 2, GRPCTimeout: 200 * time.Millisecond}
	if d := e.Decide(ctx, r, &retry); d.Reject {
		t.Fatalf("retry before any samples = %v, want allowed (threshold = deadline.minRemaining)", d.Reason)
	}
	for range minLatencySamples {
		start := clk.Now()
		d := e.Decide(ctx, r, &Facts{})
		clk.Advance(300 * time.Millisecond)
		e.Finish(ctx, r, &d, start, Outcome{HTTPStatus: 200, GRPCStatus: 0, HeadersAt: clk.Now()})
	}
	if d := e.Decide(ctx, r, &retry); d.Reason != ReasonRetryDeadlineInsufficient {
		t.Errorf("retry with 200ms left on a 300ms route = %v, want %v", d.Reason, ReasonRetryDeadlineInsufficient)
	}
	if d := e.Decide(ctx, r, &Facts{EnvoyAttemptCount: 2, GRPCTimeout: 400 * time.Millisecond}); d.Reject {
		t.Errorf("retry with 400ms left on a 300ms route = %v, want allowed", d.Reason)
	}
}

func TestHeaderParseErrorIsCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	e := New(Options{Metrics: m})
	e.HeaderParseError(HeaderGRPCTimeout)
	e.HeaderParseError(HeaderGRPCTimeout)
	want := `# HELP hopguard_header_parse_errors_total ` + helpOf(t, reg, "hopguard_header_parse_errors_total") + `
# TYPE hopguard_header_parse_errors_total counter
hopguard_header_parse_errors_total{header="grpc-timeout"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "hopguard_header_parse_errors_total"); err != nil {
		t.Error(err)
	}
}

// helpOf returns the help text of a registered metric family.
func helpOf(t *testing.T, reg *prometheus.Registry, name string) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetHelp()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return ""
}

func TestSweepExpiresAbandonedClaims(t *testing.T) {
	clock := newFakeClock()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	e := New(Options{Clock: clock, Metrics: m})
	p := policy.Route{
		ID: "shop/pay", Service: "s", Match: policy.Match{Path: "/pay"}, SideEffects: true,
		Deadline:    policy.Deadline{Default: time.Second, Max: time.Second, MinRemaining: time.Millisecond},
		Retry:       policy.Retry{Authority: policy.AuthorityNone, Attempts: 1, BackoffBase: time.Millisecond, BackoffMax: time.Millisecond},
		Idempotency: policy.Idempotency{Require: policy.RequireAlways, Header: "idempotency-key", TTL: time.Hour},
	}
	e.SetBundle(&policy.Bundle{Routes: []policy.Route{p}})
	d := e.Decide(context.Background(), e.Route("shop/pay"), &Facts{Method: "POST", Path: "/pay", HasKey: true, Key: "k1"})
	if d.Reject || d.Claim == nil {
		t.Fatalf("decision %+v, want an allowed claim", d)
	}
	// The request never finishes. Before its limit nothing is swept ...
	if n := e.Sweep(); n != 0 {
		t.Errorf("Sweep before expiry removed %d records, want 0", n)
	}
	// ... after it (deadline 1s + 1s grace) the claim is gone and counted.
	clock.Advance(3 * time.Second)
	if n := e.Sweep(); n != 1 {
		t.Errorf("Sweep after expiry removed %d records, want 1", n)
	}
	want := `# HELP hopguard_idempotency_expired_total ` + helpOf(t, reg, "hopguard_idempotency_expired_total") + `
# TYPE hopguard_idempotency_expired_total counter
hopguard_idempotency_expired_total{state="completed"} 0
hopguard_idempotency_expired_total{state="in_flight"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "hopguard_idempotency_expired_total"); err != nil {
		t.Error(err)
	}
}

func TestRepeatedFailedKeyIsAnAppRetry(t *testing.T) {
	route := func(auth policy.Authority) policy.Route {
		return policy.Route{
			ID: "shop/pay", Service: "s", Match: policy.Match{Path: "/pay"}, SideEffects: true,
			Deadline: policy.Deadline{Default: time.Second, Max: time.Second, MinRemaining: time.Millisecond},
			Retry: policy.Retry{Authority: auth, Attempts: 2, BackoffBase: time.Millisecond, BackoffMax: time.Millisecond,
				MinRemaining: time.Millisecond, BudgetRatio: 1, BudgetMinPerSecond: 100},
			Idempotency: policy.Idempotency{Require: policy.RequireAlways, Header: "idempotency-key", TTL: time.Hour},
		}
	}
	facts := func(key string) *Facts { return &Facts{Method: "POST", Path: "/pay", HasKey: true, Key: key} }
	for _, tc := range []struct {
		name    string
		auth    policy.Authority
		outcome Outcome
		want    []Reason // reasons of the next requests with the key, each failing again
	}{
		{"app authority: one retry, then the attempts are spent", policy.AuthorityApp, Outcome{GRPCStatus: 14},
			[]Reason{ReasonNone, ReasonRetryBudgetExhausted}},
		{"mesh authority: the caller may not retry", policy.AuthorityMesh, Outcome{GRPCStatus: 14},
			[]Reason{ReasonRetryNotAuthority}},
		{"unknown outcome: not known to have failed, not a retry", policy.AuthorityMesh, Outcome{GRPCStatus: -1, Unknown: true},
			[]Reason{ReasonNone}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			e := New(Options{Clock: clock})
			e.SetBundle(&policy.Bundle{Routes: []policy.Route{route(tc.auth)}})
			r := e.Route("shop/pay")
			d := e.Decide(context.Background(), r, facts("k"))
			if d.Reject || d.Claim == nil {
				t.Fatalf("first request: %+v, want an allowed claim", d)
			}
			e.Finish(context.Background(), r, &d, clock.Now(), tc.outcome)
			for i, want := range tc.want {
				d := e.Decide(context.Background(), r, facts("k"))
				if d.Reason != want {
					t.Fatalf("request %d with the key: reason %v, want %v", i+2, d.Reason, want)
				}
				if want == ReasonNone && (d.Layer != LayerApp) != (tc.outcome.Unknown) {
					t.Errorf("request %d: layer %v", i+2, d.Layer)
				}
				if d.Claim != nil {
					e.Finish(context.Background(), r, &d, clock.Now(), Outcome{GRPCStatus: 14})
				}
			}
		})
	}
}

// TestRepeatedFailedKeysDoNotFundTheBudget: a caller resending failed keys
// without any attempt header is retrying; those requests must not count as
// original requests, or its retries would fund themselves.
func TestRepeatedFailedKeysDoNotFundTheBudget(t *testing.T) {
	clock := newFakeClock()
	e := New(Options{Clock: clock})
	e.SetBundle(&policy.Bundle{Routes: []policy.Route{{
		ID: "shop/pay", Service: "s", Match: policy.Match{Path: "/pay"}, SideEffects: true,
		Deadline: policy.Deadline{Default: time.Second, Max: time.Second, MinRemaining: time.Millisecond},
		Retry: policy.Retry{Authority: policy.AuthorityApp, Attempts: 2, BackoffBase: time.Millisecond, BackoffMax: time.Millisecond,
			MinRemaining: time.Millisecond, BudgetRatio: 0.5},
		Idempotency: policy.Idempotency{Require: policy.RequireAlways, Header: "idempotency-key", TTL: time.Hour},
	}}})
	r := e.Route("shop/pay")
	facts := func(i int) *Facts {
		return &Facts{Method: "POST", Path: "/pay", HasKey: true, Key: fmt.Sprint("k-", i)}
	}
	for i := range 10 {
		d := e.Decide(context.Background(), r, facts(i))
		if d.Reject || d.Claim == nil {
			t.Fatalf("first request %d: %+v", i, d)
		}
		e.Finish(context.Background(), r, &d, clock.Now(), Outcome{GRPCStatus: 14})
	}
	admitted := 0
	for i := range 10 {
		d := e.Decide(context.Background(), r, facts(i))
		switch {
		case !d.Reject:
			admitted++
		case d.Reason != ReasonRetryBudgetExhausted:
			t.Fatalf("resent key %d: %v, want %v", i, d.Reason, ReasonRetryBudgetExhausted)
		}
	}
	if admitted != 5 {
		t.Errorf("admitted %d of 10 resent failed keys at ratio 0.5 after 10 requests, want 5", admitted)
	}
}
