package lint

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hopguard/hopguard/api/v1alpha1"
)

// Every test document is exactly four lines (header, kind, metadata, spec in
// flow style) followed by "---", so document i's spec is line 5i+4 and
// expected positions can be read off the source text.
const docLines = 5

func svc(name string, deps ...string) string {
	d := ""
	if len(deps) > 0 {
		d = ", dependsOn: [" + strings.Join(deps, ", ") + "]"
	}
	return "apiVersion: hopguard.dev/v1alpha1\nkind: Service\nmetadata: {name: " + name +
		"}\nspec: {port: 8080, endpoints: [{address: 127.0.0.1:8080}]" + d + "}\n"
}

// rb declares route name of service s; spec is the rest of its flow-style spec.
func rb(name, s, spec string) string {
	return "apiVersion: hopguard.dev/v1alpha1\nkind: RouteBudget\nmetadata: {name: " + name +
		"}\nspec: {service: " + s + ", match: {grpcMethod: a." + s + "/" + name + "}, " + spec + "}\n"
}

// quiet is a route spec that triggers no rule on its own.
const quiet = "sideEffects: false, retry: {authority: none, attempts: 1}"

// loaded is a configuration written to one file and loaded.
type loaded struct {
	path string
	src  string
	cfg  *v1alpha1.Config
}

func load(t *testing.T, docs ...string) loaded {
	t.Helper()
	src := strings.Join(docs, "---\n")
	path := filepath.Join(t.TempDir(), "mesh.yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, vs, err := v1alpha1.Load(path)
	if err != nil || len(vs.Errors()) > 0 {
		t.Fatalf("load: %v\n%v", err, vs.Errors())
	}
	return loaded{path: path, src: src, cfg: cfg}
}

// valueAt is the position of the value of key in the last line of document
// doc (its metadata line when key is "name").
func (m loaded) valueAt(t *testing.T, doc int, key string) v1alpha1.Pos {
	t.Helper()
	p := m.keyAt(t, doc, key)
	p.Col += len(key) + len(": ")
	return p
}

// keyAt is the position of key in document doc.
func (m loaded) keyAt(t *testing.T, doc int, key string) v1alpha1.Pos {
	t.Helper()
	lines := strings.Split(m.src, "\n")
	line := doc*docLines + 4 // the spec line
	if key == "name" {
		line--
	}
	text := lines[line-1]
	i := strings.Index(text, key+": ")
	if i < 0 || strings.Count(text, key+": ") != 1 {
		t.Fatalf("key %q not once in line %d: %q", key, line, text)
	}
	return v1alpha1.Pos{File: m.path, Line: line, Col: i + 1}
}

type lintCase struct {
	name string
	docs []string
	// want builds the expected findings from the loaded mesh.
	want func(t *testing.T, m loaded) []Finding
}

func runLintCases(t *testing.T, cases []lintCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := load(t, tc.docs...)
			got := Lint(m.cfg)
			var want []Finding
			if tc.want != nil {
				want = tc.want(t, m)
			}
			if diff := cmp.Diff(got, want); diff != "" {
				t.Errorf("Lint (-got +want):\n%s", diff)
			}
		})
	}
}

const fixAmplification = "keep one retry authority per path: set retry.authority: none (or attempts: 1) on all these routes but one, usually all but the one nearest the root"

func TestRetryAmplification(t *testing.T) {
	runLintCases(t, []lintCase{{
		name: "mesh and app retries multiply on one path",
		docs: []string{svc("edge", "mid"), svc("mid", "leaf"), svc("leaf"),
			rb("m", "mid", "sideEffects: false, retry: {authority: mesh, attempts: 3}"),
			rb("l", "leaf", "sideEffects: false, retry: {authority: app, attempts: 2}")},
		want: func(t *testing.T, m loaded) []Finding {
			return []Finding{{
				Rule: RuleRetryAmplification, Severity: SeverityError, Pos: m.valueAt(t, 4, "attempts"),
				Path:    "edge → mid → leaf",
				Message: "2 hops may retry on this path: default/m (3 attempts, authority mesh), default/l (2 attempts, authority app); one failure at leaf can cost up to 6 calls",
				Fix:     fixAmplification,
			}}
		},
	}, {
		name: "the path is cut after its last retrying hop",
		docs: []string{svc("edge", "mid"), svc("mid", "leaf"), svc("leaf", "tail"), svc("tail"),
			rb("m", "mid", "sideEffects: false, retry: {authority: mesh, attempts: 2}"),
			rb("l", "leaf", "sideEffects: false, retry: {authority: mesh, attempts: 3}"),
			rb("t", "tail", quiet)},
		want: func(t *testing.T, m loaded) []Finding {
			return []Finding{{
				Rule: RuleRetryAmplification, Severity: SeverityError, Pos: m.valueAt(t, 5, "attempts"),
				Path:    "edge → mid → leaf",
				Message: "2 hops may retry on this path: default/m (2 attempts, authority mesh), default/l (3 attempts, authority mesh); one failure at leaf can cost up to 6 calls",
				Fix:     fixAmplification,
			}}
		},
	}, {
		name: "three retrying hops, the worst route of a service counts",
		docs: []string{svc("a", "b"), svc("b", "c"), svc("c", "d"), svc("d"),
			rb("b1", "b", "sideEffects: false, retry: {authority: mesh, attempts: 2}"),
			rb("b2", "b", "sideEffects: false, retry: {authority: mesh, attempts: 3}"),
			rb("c1", "c", "sideEffects: false, retry: {authority: mesh, attempts: 2}"),
			rb("d1", "d", "sideEffects: false, retry: {authority: app, attempts: 2}")},
		want: func(t *testing.T, m loaded) []Finding {
			return []Finding{{
				Rule: RuleRetryAmplification, Severity: SeverityError, Pos: m.valueAt(t, 7, "attempts"),
				Path:    "a → b → c → d",
				Message: "3 hops may retry on this path: default/b2 (3 attempts, authority mesh), default/c1 (2 attempts, authority mesh), default/d1 (2 attempts, authority app); one failure at d can cost up to 12 calls",
				Fix:     fixAmplification,
			}}
		},
	}, {
		name: "every root's path is its own finding",
		docs: []string{svc("r1", "a"), svc("r2", "a"), svc("a", "b"), svc("b"),
			rb("ra", "a", "sideEffects: false, retry: {authority: mesh, attempts: 2}"),
			rb("rb", "b", "sideEffects: false, retry: {authority: mesh, attempts: 2}")},
		want: func(t *testing.T, m loaded) []Finding {
			msg := "2 hops may retry on this path: default/ra (2 attempts, authority mesh), default/rb (2 attempts, authority mesh); one failure at b can cost up to 4 calls"
			return []Finding{
				{Rule: RuleRetryAmplification, Severity: SeverityError, Pos: m.valueAt(t, 5, "attempts"), Path: "r1 → a → b", Message: msg, Fix: fixAmplification},
				{Rule: RuleRetryAmplification, Severity: SeverityError, Pos: m.valueAt(t, 5, "attempts"), Path: "r2 → a → b", Message: msg, Fix: fixAmplification},
			}
		},
	}})
}

func TestTimeoutInversion(t *testing.T) {
	runLintCases(t, []lintCase{{
		name: "callee default longer than the caller can wait",
		docs: []string{svc("edge", "leaf"), svc("leaf"),
			rb("e", "edge", quiet+", deadline: {default: 500ms, max: 1s}"),
			rb("l", "leaf", quiet+", deadline: {default: 2s, max: 3s}")},
		want: func(t *testing.T, m loaded) []Finding {
			return []Finding{{
				Rule: RuleTimeoutInversion, Severity: SeverityError, Pos: m.valueAt(t, 3, "default"),
				Path:    "edge → leaf",
				Message: "default/l waits 2s by default, but edge's routes allow at most 1s: a call without a deadline keeps leaf working after its caller gave up",
				Fix:     "lower deadline.default of default/l to at most 1s, or raise the caller's deadline.max",
			}}
		},
	}, {
		name: "callee refuses everything the caller can send",
		docs: []string{svc("edge", "leaf"), svc("leaf"),
			rb("e", "edge", quiet+", deadline: {default: 100ms}"),
			rb("l", "leaf", quiet+", deadline: {default: 1s, minRemaining: 100ms}")},
		want: func(t *testing.T, m loaded) []Finding {
			return []Finding{{
				Rule: RuleTimeoutInversion, Severity: SeverityError, Pos: m.valueAt(t, 3, "minRemaining"),
				Path:    "edge → leaf",
				Message: "default/l refuses calls with 100ms or less left, but edge's routes allow at most 100ms: every call from edge is refused as deadline-exhausted",
				Fix:     "lower deadline.minRemaining of default/l below 100ms, or raise the caller's deadline.max",
			}}
		},
	}, {
		name: "callee max no caller can use",
		docs: []string{svc("edge", "leaf"), svc("leaf"),
			rb("e", "edge", quiet+", deadline: {default: 1s}"),
			rb("l", "leaf", quiet+", deadline: {default: 500ms, max: 5s}")},
		want: func(t *testing.T, m loaded) []Finding {
			return []Finding{{
				Rule: RuleTimeoutInversion, Severity: SeverityWarning, Pos: m.valueAt(t, 3, "max"),
				Path:    "edge → leaf",
				Message: "default/l allows deadlines up to 5s, but no caller can have more than 1s left (edge's longest deadline.max): the rest of the budget can never be used",
				Fix:     "lower deadline.max of default/l to 1s, or raise the callers' deadline.max",
			}}
		},
	}, {
		name: "a retry needs more than the caller can have",
		docs: []string{svc("edge", "leaf"), svc("leaf"),
			rb("e", "edge", quiet+", deadline: {default: 300ms}"),
			rb("l", "leaf", "sideEffects: false, deadline: {default: 200ms, max: 500ms}, retry: {authority: mesh, attempts: 2, minRemaining: 400ms}")},
		want: func(t *testing.T, m loaded) []Finding {
			return []Finding{{
				Rule: RuleTimeoutInversion, Severity: SeverityWarning, Pos: m.valueAt(t, 3, "max"),
				Path:    "edge → leaf",
				Message: "default/l allows deadlines up to 500ms, but no caller can have more than 300ms left (edge's longest deadline.max): the rest of the budget can never be used",
				Fix:     "lower deadline.max of default/l to 300ms, or raise the callers' deadline.max",
			}, {
				Rule: RuleTimeoutInversion, Severity: SeverityWarning, Pos: m.valueAt(t, 3, "minRemaining"),
				Path:    "edge → leaf",
				Message: "a retry of default/l needs 400ms left, but edge's routes allow at most 300ms: no retry of a call from edge is ever admitted",
				Fix:     "lower retry.minRemaining of default/l below 300ms (or use auto), or set attempts: 1",
			}}
		},
	}})
}

func TestSideEffectRetryWithoutIdempotency(t *testing.T) {
	const fix = "set idempotency.require: always, or retry.authority: none (or attempts: 1), or sideEffects: false if the route is in fact safe to repeat"
	runLintCases(t, []lintCase{{
		name: "mesh retries with a key on retries only",
		docs: []string{svc("pay"),
			rb("charge", "pay", "sideEffects: true, retry: {authority: mesh, attempts: 2}, idempotency: {require: retries}")},
		want: func(t *testing.T, m loaded) []Finding {
			return []Finding{{
				Rule: RuleSideEffectRetry, Severity: SeverityWarning, Pos: m.valueAt(t, 1, "require"),
				Message: "default/charge has side effects and 2 attempts (authority mesh) but idempotency.require is retries: a retry of a first attempt sent without a key cannot be recognised, so the side effect can run twice",
				Fix:     fix,
			}}
		},
	}, {
		name: "defaults: a gRPC method has side effects and is retried twice",
		docs: []string{svc("pay"), rb("charge", "pay", "retry: {authority: app}")},
		want: func(t *testing.T, m loaded) []Finding {
			return []Finding{{
				// require is not written: the finding points at spec.
				Rule: RuleSideEffectRetry, Severity: SeverityWarning, Pos: m.keyAt(t, 1, "spec"),
				Message: "default/charge has side effects and 2 attempts (authority app) but idempotency.require is retries: a retry of a first attempt sent without a key cannot be recognised, so the side effect can run twice",
				Fix:     fix,
			}}
		},
	}})
}

func TestConflictingRetryBudgets(t *testing.T) {
	runLintCases(t, []lintCase{{
		name: "routes of one service with different budgets",
		docs: []string{svc("pay"),
			rb("a", "pay", quiet+", deadline: {default: 1s}"),
			rb("b", "pay", "sideEffects: false, retry: {authority: none, attempts: 1, budget: {ratio: 0.1, minPerSecond: 20}}")},
		want: func(t *testing.T, m loaded) []Finding {
			return []Finding{{
				Rule: RuleConflictingBudgets, Severity: SeverityWarning, Pos: m.valueAt(t, 0, "name"),
				Path:    "pay",
				Message: "routes of one cluster declare different retry budgets: default/a (ratio 0.2, 5/s), default/b (ratio 0.1, 20/s); the cluster's circuit breaker takes the largest (ratio 0.2, 20/s), so only the ext_proc filter enforces the smaller ones",
				Fix:     "give all routes of the service the same retry.budget",
			}}
		},
	}})
}

func TestDependencyCycle(t *testing.T) {
	const (
		msg = "services call each other in a cycle: no hop is the edge, so retries and deadlines cannot be budgeted along it"
		fix = "break the cycle, or remove the dependsOn entry that is not a real call"
	)
	runLintCases(t, []lintCase{{
		name: "three services, reported once from the smallest",
		docs: []string{svc("b", "c"), svc("c", "a"), svc("a", "b")},
		want: func(t *testing.T, m loaded) []Finding {
			return []Finding{{Rule: RuleDependencyCycle, Severity: SeverityError, Pos: m.keyAt(t, 2, "dependsOn"), Path: "a → b → c → a", Message: msg, Fix: fix}}
		},
	}, {
		name: "two cycles through one service",
		docs: []string{svc("a", "b", "c"), svc("b", "a"), svc("c", "a"), svc("root", "a")},
		want: func(t *testing.T, m loaded) []Finding {
			return []Finding{
				{Rule: RuleDependencyCycle, Severity: SeverityError, Pos: m.keyAt(t, 0, "dependsOn"), Path: "a → b → a", Message: msg, Fix: fix},
				{Rule: RuleDependencyCycle, Severity: SeverityError, Pos: m.keyAt(t, 0, "dependsOn"), Path: "a → c → a", Message: msg, Fix: fix},
			}
		},
	}})
}

func TestLint_Clean(t *testing.T) {
	runLintCases(t, []lintCase{{
		name: "only the edge retries, deadlines shrink along the path",
		docs: []string{svc("edge", "mid"), svc("mid", "leaf"), svc("leaf"),
			rb("e", "edge", "sideEffects: false, deadline: {default: 1s, max: 2s}, retry: {authority: mesh, attempts: 3}"),
			rb("m", "mid", quiet+", deadline: {default: 800ms, max: 1s}"),
			rb("l", "leaf", quiet+", deadline: {default: 300ms, max: 500ms}")},
	}, {
		name: "a non-retrying hop between two retrying ones still counts once each path",
		docs: []string{svc("edge", "a", "b"), svc("a"), svc("b"),
			rb("ra", "a", "sideEffects: false, retry: {authority: mesh, attempts: 3}"),
			rb("rb", "b", "sideEffects: false, retry: {authority: app, attempts: 2}")},
	}, {
		name: "a callee max that one of several callers can use",
		docs: []string{svc("short", "leaf"), svc("long", "leaf"), svc("leaf"),
			rb("s", "short", quiet+", deadline: {default: 1s}"),
			rb("g", "long", quiet+", deadline: {default: 5s}"),
			rb("l", "leaf", quiet+", deadline: {default: 500ms, max: 3s}")},
	}, {
		name: "a caller without budgets is not compared",
		docs: []string{svc("edge", "leaf"), svc("leaf"), rb("l", "leaf", quiet+", deadline: {default: 5s, max: 9s}")},
	}, {
		name: "side effects retried with a key on every attempt, equal budgets",
		docs: []string{svc("pay"),
			rb("charge", "pay", "retry: {authority: mesh, attempts: 3}, idempotency: {require: always}"),
			rb("refund", "pay", "retry: {authority: app, attempts: 1}")},
	}})
}

func TestLintIsDeterministic(t *testing.T) {
	m := load(t, svc("c", "a"), svc("a", "b"), svc("b", "c"), svc("x", "y"), svc("y"),
		rb("r2", "y", "retry: {authority: mesh, attempts: 2}, deadline: {default: 3s}"),
		rb("r1", "y", "sideEffects: false, retry: {authority: none, attempts: 1, budget: {ratio: 0.5}}"))
	first := Lint(m.cfg)
	if len(first) < 3 {
		t.Fatalf("want at least a cycle, a side-effect and a budget finding, got %v", first)
	}
	for range 20 {
		if diff := cmp.Diff(Lint(m.cfg), first); diff != "" {
			t.Fatalf("a second run differs (-got +want):\n%s", diff)
		}
	}
}

func TestFindingString(t *testing.T) {
	for _, tc := range []struct {
		f    Finding
		want string
	}{
		{Finding{Rule: RuleRetryAmplification, Severity: SeverityError, Pos: v1alpha1.Pos{File: "m.yaml", Line: 3, Col: 7}, Path: "a → b", Message: "too many", Fix: "fewer"},
			"m.yaml:3:7: error: retry-amplification: a → b: too many (fix: fewer)"},
		{Finding{Rule: RuleSideEffectRetry, Severity: SeverityWarning, Message: "twice", Fix: "a key"},
			"warning: side-effect-retry-without-idempotency: twice (fix: a key)"},
	} {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

// The bundled example is clean of errors; its two warnings are intended
// teaching material and listed here so that a new one is noticed.
func TestBundledExample(t *testing.T) {
	cfg, vs, err := v1alpha1.Load("../../examples/shop/config")
	if err != nil || len(vs.Errors()) > 0 {
		t.Fatal(err, vs)
	}
	var got []string
	for _, f := range Lint(cfg) {
		got = append(got, string(f.Severity)+" "+f.Rule+" ["+f.Path+"] "+filepath.Base(f.Pos.File))
	}
	want := []string{
		"warning side-effect-retry-without-idempotency [] budgets.yaml",
		"warning conflicting-retry-budgets [payments] services.yaml",
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("findings on examples/shop/config (-got +want):\n%s", diff)
	}
}

// layered returns services in layers of width, each calling every service
// of the next layer: a dense graph with width^layers paths.
func layered(layers, width int) []string {
	var docs []string
	for l := 0; l < layers; l++ {
		for i := 0; i < width; i++ {
			var deps []string
			if l+1 < layers {
				for j := 0; j < width; j++ {
					deps = append(deps, fmt.Sprintf("l%dx%d", l+1, j))
				}
			}
			docs = append(docs, svc(fmt.Sprintf("l%dx%d", l, i), deps...))
		}
	}
	return docs
}

// TestDenseMeshLeavesNothingUnchecked: past the bounded path walk, a
// separate cycle and a separate retrying chain are still reported.
func TestDenseMeshLeavesNothingUnchecked(t *testing.T) {
	docs := append(layered(9, 6), svc("zz-a", "zz-b"), svc("zz-b", "zz-a"),
		svc("zgw", "zapi"), svc("zapi", "zdb"), svc("zdb"),
		rb("ra", "zapi", "sideEffects: false, retry: {authority: mesh, attempts: 3}"),
		rb("rd", "zdb", "sideEffects: false, retry: {authority: app, attempts: 3}"))
	m := load(t, docs...)
	var cycle, amp bool
	for _, f := range Lint(m.cfg) {
		cycle = cycle || (f.Rule == RuleDependencyCycle && f.Path == "zz-a → zz-b → zz-a")
		amp = amp || (f.Rule == RuleRetryAmplification && f.Path == "zgw → zapi → zdb" && strings.Contains(f.Message, "up to 9 calls"))
	}
	if !cycle || !amp {
		t.Errorf("in a dense mesh: cycle reported %v, amplification reported %v; want both", cycle, amp)
	}
}

// TestAmplificationWorstPathInDenseMesh: the worst path of a root is found
// even when it is deep in a graph too dense to list every path.
func TestAmplificationWorstPathInDenseMesh(t *testing.T) {
	docs := append(layered(8, 5), rb("deep", "l6x4", "sideEffects: false, retry: {authority: mesh, attempts: 4}"),
		rb("deeper", "l7x3", "sideEffects: false, retry: {authority: app, attempts: 5}"))
	m := load(t, docs...)
	found := map[string]bool{}
	for _, f := range Lint(m.cfg) {
		if f.Rule == RuleRetryAmplification && strings.HasSuffix(f.Path, "l6x4 → l7x3") && strings.Contains(f.Message, "up to 20 calls") {
			found[f.Path[:strings.Index(f.Path, " ")]] = true
		}
	}
	// Every root, not only the first ones the bounded walk reaches.
	for i := 0; i < 5; i++ {
		if root := fmt.Sprintf("l0x%d", i); !found[root] {
			t.Errorf("root %s: its worst path through l6x4 → l7x3 (20 calls) not reported", root)
		}
	}
}

// TestAmplificationDiamondIsOneFinding: the same retrying routes reached
// from one root through many non-retrying services are one finding.
func TestAmplificationDiamondIsOneFinding(t *testing.T) {
	var docs []string
	var xs []string
	for i := 0; i < 5; i++ {
		x := fmt.Sprintf("x%d", i)
		xs = append(xs, x)
		docs = append(docs, svc(x, "cache"))
	}
	docs = append(docs, svc("gw", xs...), svc("cache", "db"), svc("db"),
		rb("c", "cache", "sideEffects: false, retry: {authority: mesh, attempts: 3}"),
		rb("d", "db", "sideEffects: false, retry: {authority: mesh, attempts: 2}"))
	m := load(t, docs...)
	n := 0
	for _, f := range Lint(m.cfg) {
		if f.Rule == RuleRetryAmplification {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d amplification findings for one root and one pair of retrying routes, want 1", n)
	}
}

// TestAmplificationProductSaturates: 19 hops of 10 attempts do not
// overflow into a negative count.
func TestAmplificationProductSaturates(t *testing.T) {
	var docs []string
	const n = 20
	for i := 0; i < n; i++ {
		var deps []string
		if i+1 < n {
			deps = []string{fmt.Sprintf("s%02d", i+1)}
		}
		docs = append(docs, svc(fmt.Sprintf("s%02d", i), deps...))
	}
	for i := 1; i < n; i++ {
		docs = append(docs, rb(fmt.Sprintf("r%02d", i), fmt.Sprintf("s%02d", i), "sideEffects: false, retry: {authority: mesh, attempts: 10}"))
	}
	m := load(t, docs...)
	fs := Lint(m.cfg)
	if len(fs) == 0 {
		t.Fatal("no finding for 19 retrying hops")
	}
	for _, f := range fs {
		if f.Rule == RuleRetryAmplification && !strings.Contains(f.Message, "more calls than can be counted") {
			t.Errorf("message %q, want the saturated count", f.Message)
		}
	}
}
