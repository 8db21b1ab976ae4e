package deploy

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

func TestDashboardIsAGrafanaModel(t *testing.T) {
	d := loadDashboard(t)
	if d.Title != "hopguard" || d.UID == "" || d.SchemaVersion < 36 || d.Time.From == "" || d.Time.To == "" {
		t.Errorf("title %q, uid %q, schemaVersion %d, time %+v: want title hopguard, a uid, schemaVersion ≥ 36 and a time range",
			d.Title, d.UID, d.SchemaVersion, d.Time)
	}
	if !slices.ContainsFunc(d.Inputs, func(in input) bool {
		return in.Name == "DS_PROMETHEUS" && in.Type == "datasource" && in.PluginID == "prometheus"
	}) {
		t.Errorf("__inputs %+v lacks the Prometheus datasource input DS_PROMETHEUS", d.Inputs)
	}

	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v, ok := vars["datasource"]; !ok || v.Type != "datasource" {
		t.Errorf("templating lacks the datasource variable: %+v", v)
	}
	for name, wantQuery := range map[string]string{
		"route":   "label_values(hopguard_decisions_total, route)",
		"service": "label_values(hopguard_manifest_drift, service)",
	} {
		v, ok := vars[name]
		if !ok {
			t.Errorf("templating lacks variable %s", name)
			continue
		}
		q, err := v.queryText()
		if err != nil {
			t.Error(err)
		}
		if q != wantQuery || !v.Multi || !v.IncludeAll || !usesDatasource(v.Datasource) {
			t.Errorf("variable %s: query %q multi %v includeAll %v datasource %+v; want %q, multi, include all, the dashboard datasource",
				name, q, v.Multi, v.IncludeAll, v.Datasource, wantQuery)
		}
	}

	ids := map[int]string{}
	rows := 0
	for _, p := range d.allPanels() {
		if prev, dup := ids[p.ID]; dup || p.ID <= 0 {
			t.Errorf("panel %q: id %d not positive or not unique (also %q)", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		if p.Title == "" || p.Type == "" || p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %d: title %q type %q gridPos %+v: want a title, a type and a gridPos inside 24 columns", p.ID, p.Title, p.Type, p.GridPos)
		}
		if p.Type == "row" {
			rows++
			continue
		}
		if !usesDatasource(p.Datasource) {
			t.Errorf("panel %d %q: datasource %+v, want ${DS_PROMETHEUS} or ${datasource}", p.ID, p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %d %q has no targets", p.ID, p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] || strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %d %q: target refId %q (empty or repeated) or empty expr", p.ID, p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource != nil && !usesDatasource(tg.Datasource) {
				t.Errorf("panel %d %q target %s: datasource %+v", p.ID, p.Title, tg.RefID, tg.Datasource)
			}
		}
	}
	var gotRows []string
	for _, p := range d.Panels {
		if p.Type == "row" {
			gotRows = append(gotRows, p.Title)
		}
	}
	wantRows := []string{"Enforcement", "Completion integrity", "Idempotency", "Control plane", "Proof"}
	if diff := cmp.Diff(gotRows, wantRows); diff != "" {
		t.Errorf("rows (-got +want):\n%s", diff)
	}
}

// scrapeMetrics are the series Prometheus itself writes for every target;
// the rules and the dashboard may name them too.
var scrapeMetrics = map[string]bool{"up": true}

func TestEveryQueryNamesARegisteredMetric(t *testing.T) {
	registered := registeredMetrics(t)
	rules := loadRules(t)
	recorded := recordedNames(rules)
	for name := range recorded {
		if !strings.HasPrefix(name, "hopguard:") || registered[name] != nil {
			t.Errorf("recording rule %s: want the level:metric:operations form with the hopguard: prefix", name)
		}
	}

	qs := append(dashboardQueries(t, loadDashboard(t)), ruleQueries(rules)...)
	if len(qs) < 30 {
		t.Fatalf("only %d queries found; the dashboard or rules did not load as expected", len(qs))
	}
	var problems []string
	for _, q := range qs {
		vss, err := selectors(q.expr)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %q: %v", q.where, q.expr, err))
			continue
		}
		if len(vss) == 0 {
			problems = append(problems, fmt.Sprintf("%s: %q selects no metric", q.where, q.expr))
		}
		for _, vs := range vss {
			name := selectorName(vs)
			switch {
			case name == "":
				problems = append(problems, fmt.Sprintf("%s: selector %s names no metric", q.where, vs))
			case recorded[name], scrapeMetrics[name]:
			case registered[name] == nil:
				problems = append(problems, fmt.Sprintf("%s: metric %s is neither registered by hopguard nor recorded in %s", q.where, name, rulesPath))
			}
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		t.Errorf("%d problems:\n%s", len(problems), strings.Join(problems, "\n"))
	}
}

// TestDashboardFiltersByTemplateVariables: every dashboard selector of a
// metric with a route (service) label filters on $route ($service), so the
// variables narrow every panel they can.
func TestDashboardFiltersByTemplateVariables(t *testing.T) {
	registered := registeredMetrics(t)
	recordedRoute := map[string]bool{}
	for name := range recordedNames(loadRules(t)) {
		// Every recording rule of rules.yaml aggregates by route.
		recordedRoute[name] = true
	}
	for _, q := range dashboardQueries(t, loadDashboard(t)) {
		if strings.HasPrefix(q.where, "variable ") {
			continue
		}
		e, err := parser.NewParser(parser.Options{}).ParseExpr(strings.NewReplacer("$route", "__ROUTE__", "$service", "__SERVICE__", "$__rate_interval", "1m", "$__range", "1h").Replace(q.expr))
		if err != nil {
			t.Errorf("%s: %v", q.where, err)
			continue
		}
		parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
			vs, ok := n.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			name := selectorName(vs)
			for label, placeholder := range map[string]string{"route": "__ROUTE__", "service": "__SERVICE__"} {
				if !registered[name][label] && !(label == "route" && recordedRoute[name]) {
					continue
				}
				if !slices.ContainsFunc(vs.LabelMatchers, func(m *labels.Matcher) bool {
					return m.Name == label && m.Type == labels.MatchRegexp && m.Value == placeholder
				}) {
					t.Errorf("%s: selector %s lacks %s=~\"$%s\"", q.where, vs, label, label)
				}
			}
			return nil
		})
	}
}

func TestAlertsCarryRunbooks(t *testing.T) {
	rules := loadRules(t)
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if (r.Alert == "") == (r.Record == "") {
				t.Errorf("group %s: a rule must be exactly one of record or alert: %+v", g.Name, r)
				continue
			}
			if r.Alert == "" {
				continue
			}
			alerts[r.Alert] = true
			for _, a := range []string{"summary", "description", "runbook"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("alert %s lacks the %s annotation", r.Alert, a)
				}
			}
			if r.Labels["severity"] == "" {
				t.Errorf("alert %s has no severity label", r.Alert)
			}
			if rb := r.Annotations["runbook"]; rb != "" && !strings.HasPrefix(rb, "Check first") {
				t.Errorf("alert %s: runbook %q should start with what to check first", r.Alert, rb)
			}
		}
	}
	want := []string{
		"HopguardBundleRefused", "HopguardCompletionSLOBurn", "HopguardConfigChangeOutsideWindow", "HopguardControlPlaneAbsent",
		"HopguardControlPlanePolicyDivergence", "HopguardDriftPresent", "HopguardFilterBundleStreamDown", "HopguardFilterPolicyMismatch",
		"HopguardInFlightIdempotencyExpired", "HopguardNacks", "HopguardQuarantineCapped", "HopguardRetriesDroppedForDeadline",
		"HopguardSigningDisabled", "HopguardTargetDown", "HopguardTransitionRejectionSpike",
	}
	var got []string
	for a := range alerts {
		got = append(got, a)
	}
	sort.Strings(got)
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("alerts (-got +want):\n%s", diff)
	}
}

// TestSelectorsRejectsBrokenQueries keeps the checks above honest: the
// parser and the name lookup fail on what they must catch.
func TestSelectorsRejectsBrokenQueries(t *testing.T) {
	registered := registeredMetrics(t)
	tests := []struct {
		expr    string
		wantErr bool
		names   []string
	}{
		{expr: `sum by (route) (rate(hopguard_decisions_total{route=~"$route"}[$__rate_interval]))`, names: []string{"hopguard_decisions_total"}},
		{expr: `histogram_quantile(0.9, sum by (le) (rate(hopguard_decision_duration_seconds_bucket[5m])))`, names: []string{"hopguard_decision_duration_seconds_bucket"}},
		{expr: `{__name__="hopguard_xds_nodes"}`, names: []string{"hopguard_xds_nodes"}},
		{expr: `sum(rate(hopguard_decisions_total[5m])`, wantErr: true},
		{expr: `rate(hopguard_decisions_total)`, wantErr: true},
	}
	for _, tc := range tests {
		vss, err := selectors(tc.expr)
		if (err != nil) != tc.wantErr {
			t.Errorf("selectors(%q) error = %v, want error %v", tc.expr, err, tc.wantErr)
			continue
		}
		var names []string
		for _, vs := range vss {
			name := selectorName(vs)
			if registered[name] == nil {
				t.Errorf("%s in %q is not registered", name, tc.expr)
			}
			names = append(names, name)
		}
		if diff := cmp.Diff(names, tc.names); diff != "" {
			t.Errorf("selectors(%q) names (-got +want):\n%s", tc.expr, diff)
		}
	}
	if registered["hopguard_no_such_metric"] != nil || registered["hopguard_decision_duration_seconds"] != nil {
		t.Error("registeredMetrics lists a name no code exposes")
	}
}
