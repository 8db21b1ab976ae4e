package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	cpmetrics "github.com/hopguard/hopguard/controlplane/metrics"
	filtermetrics "github.com/hopguard/hopguard/filters/metrics"
	"github.com/hopguard/hopguard/filters/subscribe"
)

const (
	dashboardPath = "grafana/hopguard.json"
	rulesPath     = "prometheus/rules.yaml"
	promConfPath  = "prometheus/prometheus.yaml"
)

// dashboard is the part of Grafana's dashboard JSON model the tests check.
type dashboard struct {
	Inputs        []input `json:"__inputs"`
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Time          struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"time"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

// input is an entry of __inputs: what Grafana asks for on import.
type input struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	PluginID string `json:"pluginId"`
}

// panel is one Grafana panel; rows are panels of type "row".
type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	GridPos    gridPos     `json:"gridPos"`
	Datasource *datasource `json:"datasource"`
	Targets    []target    `json:"targets"`
	// Panels are those of a collapsed row.
	Panels []panel `json:"panels"`
}

type gridPos struct {
	H int `json:"h"`
	W int `json:"w"`
	X int `json:"x"`
	Y int `json:"y"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Datasource *datasource `json:"datasource"`
}

// variable is a templating variable. Query is a string in older models
// and an object {query, refId} in newer ones.
type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *datasource     `json:"datasource"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
}

// queryText returns the variable's query, whichever shape it has.
func (v variable) queryText() (string, error) {
	var s string
	if err := json.Unmarshal(v.Query, &s); err == nil {
		return s, nil
	}
	var o struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(v.Query, &o); err != nil {
		return "", fmt.Errorf("variable %s: query is neither a string nor {query}: %w", v.Name, err)
	}
	return o.Query, nil
}

// query is one PromQL expression and where it was found.
type query struct {
	where string
	expr  string
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	var d dashboard
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return d
}

// allPanels returns the panels of d, those inside collapsed rows included.
func (d dashboard) allPanels() []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// templateQuery matches the Grafana Prometheus variable functions whose
// first argument is a PromQL expression.
var templateQuery = regexp.MustCompile(`^\s*(?:label_values|query_result)\((.*?)(?:,\s*[a-zA-Z_][a-zA-Z0-9_]*)?\)\s*$`)

// dashboardQueries returns every PromQL expression of d: panel targets and
// the inner expressions of query variables.
func dashboardQueries(t *testing.T, d dashboard) []query {
	t.Helper()
	var qs []query
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			qs = append(qs, query{fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID), tg.Expr})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, err := v.queryText()
		if err != nil {
			t.Fatal(err)
		}
		m := templateQuery.FindStringSubmatch(q)
		if m == nil {
			t.Fatalf("variable %s: query %q is not label_values(expr, label) or query_result(expr)", v.Name, q)
		}
		qs = append(qs, query{"variable " + v.Name, m[1]})
	}
	return qs
}

// ruleFile is the part of a Prometheus rule file the tests check.
type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", rulesPath, err)
	}
	return f
}

func ruleQueries(f ruleFile) []query {
	var qs []query
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			qs = append(qs, query{fmt.Sprintf("rules group %s rule %s%s", g.Name, r.Record, r.Alert), r.Expr})
		}
	}
	return qs
}

// recordedNames returns the names of the recording rules of f.
func recordedNames(f ruleFile) map[string]bool {
	out := map[string]bool{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				out[r.Record] = true
			}
		}
	}
	return out
}

// grafanaVars are Grafana's built-in and this dashboard's variables, and
// what stands in for them when a query is parsed or run.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "1m",
	"$__interval", "1m",
	"$__range", "1h",
	"$route", ".*",
	"$service", ".*",
)

// selectors parses expr (after substituting the dashboard variables) and
// returns the vector selectors it contains.
func selectors(expr string) ([]*parser.VectorSelector, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVars.Replace(expr))
	if err != nil {
		return nil, err
	}
	var out []*parser.VectorSelector
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			out = append(out, vs)
		}
		return nil
	})
	return out, nil
}

// selectorName is the metric name a selector selects: its name, or an
// equality matcher on __name__.
func selectorName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

// registeredMetrics creates the control-plane and filter metrics on a fresh
// registry, makes one observation on every vector so each has a series, and
// returns every exposed metric name (histograms as _bucket, _sum and _count)
// with its label names.
func registeredMetrics(t *testing.T) map[string]map[string]bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	counted := &countingRegisterer{Registerer: reg}
	cp, err := cpmetrics.New(counted, cpmetrics.BuildInfo{Version: "v", Revision: "r", GoVersion: "go"})
	if err != nil {
		t.Fatal(err)
	}
	fm, err := filtermetrics.New(counted)
	if err != nil {
		t.Fatal(err)
	}
	observeAll(cp, fm)
	sm, err := subscribe.NewMetrics(counted)
	if err != nil {
		t.Fatal(err)
	}
	sm.Refusals.WithLabelValues("signature").Inc()

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) != counted.descs {
		t.Fatalf("%d metrics registered but %d gathered: observe every vector in observeAll so each has a series", counted.descs, len(families))
	}
	out := map[string]map[string]bool{}
	add := func(name string, lbls map[string]bool) {
		if out[name] == nil {
			out[name] = map[string]bool{}
		}
		for l := range lbls {
			out[name][l] = true
		}
	}
	for _, f := range families {
		lbls := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				lbls[l.GetName()] = true
			}
		}
		name := f.GetName()
		if f.GetType().String() == "HISTOGRAM" {
			add(name+"_bucket", lbls)
			add(name+"_sum", lbls)
			add(name+"_count", lbls)
			out[name+"_bucket"]["le"] = true
			continue
		}
		add(name, lbls)
	}
	return out
}

// countingRegisterer counts the metric descriptors registered through it.
type countingRegisterer struct {
	prometheus.Registerer
	descs int
}

func (c *countingRegisterer) Register(col prometheus.Collector) error {
	if err := c.Registerer.Register(col); err != nil {
		return err
	}
	ch := make(chan *prometheus.Desc)
	go func() {
		col.Describe(ch)
		close(ch)
	}()
	for range ch {
		c.descs++
	}
	return nil
}

// observeAll gives every vector of cp and fm one series.
func observeAll(cp *cpmetrics.ControlPlane, fm *filtermetrics.Filter) {
	cp.SetPolicy("hash", "rev", "env")
	fm.Decisions("r", "inbound", filtermetrics.DecisionReject, "deadline-exhausted").Inc()
	fm.DecisionDuration().Observe(1e-5)
	fm.DeadlineRemaining("r").Observe(0.1)
	fm.RetryAttempts("r", "mesh").Inc()
	fm.PolicyDrift("r").Inc()
	fm.StoreErrors("r", "claim", "rejected").Inc()
	fm.StoreDuration("claim").Observe(1e-4)
	fm.SetPolicy("0123456789abcdef", "prod")
	fm.Completions("r", filtermetrics.OutcomeWithinDeadline).Inc()
	fm.HeaderParseError("grpc-timeout")
	fm.RecordState("in_flight", 1)
	fm.Transition("absent", "in_flight")
	fm.TransitionRejected("absent", "completed")
	fm.Evicted("in_flight")
	fm.Expired("in_flight")
	cp.Quarantined.WithLabelValues("s").Set(1)
	cp.ManualOverrides.WithLabelValues(cpmetrics.OverridePin).Inc()
	cp.QuarantineCapped.WithLabelValues("s").Set(1)
	cp.SetDriftSource(func() []cpmetrics.NodeDrift {
		return []cpmetrics.NodeDrift{{Node: "n", Service: "s", Region: "r"}}
	})
}

// usesDatasource reports whether ds is the Prometheus datasource input or
// the dashboard's datasource variable.
func usesDatasource(ds *datasource) bool {
	if ds == nil {
		return false
	}
	switch ds.UID {
	case "${DS_PROMETHEUS}", "${datasource}", "$datasource":
		return ds.Type == "" || ds.Type == "prometheus"
	}
	return false
}
