package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/hopguard/hopguard/controlplane/xds/xdstest"
)

const exampleConfig = "../examples/shop/config"

// requireBinary returns the path of a binary the integration test needs. A
// missing binary fails the test in CI (CI=true) and skips it elsewhere.
func requireBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	const install = "apt-get update && apt-get install -y --no-install-recommends prometheus"
	// Fail, never skip: a missing server must not pass as tested.
	t.Fatalf("%s not found (%v); install it with: %s", name, err, install)
	return ""
}

// freeAddr returns a loopback address with a port free at the time of the call.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// syncBuffer is an io.Writer safe for a process's output and a test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs a process whose output is kept for failure messages, and stops
// it (SIGTERM, then SIGKILL after 10s) when the test ends.
func start(t *testing.T, name string, args ...string) *syncBuffer {
	t.Helper()
	out, _ := startStoppable(t, name, args...)
	return out
}

// startStoppable is start that also returns a func stopping the process
// before the test ends; calling it more than once is harmless.
func startStoppable(t *testing.T, name string, args ...string) (*syncBuffer, func()) {
	t.Helper()
	out := &syncBuffer{}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Logf("signal %s: %v", name, err)
			}
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Errorf("%s did not stop within 10s of SIGTERM; killing it", filepath.Base(name))
				if err := cmd.Process.Kill(); err != nil {
					t.Logf("kill %s: %v", name, err)
				}
				<-done
			}
		})
	}
	t.Cleanup(stop)
	return out, stop
}

// waitFor polls cond every 100ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func httpGet(u string) (int, string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// metricSum adds up the samples of name whose label set contains every
// pair of match in the text exposition of body.
func metricSum(body, name string, match ...string) float64 {
	sum := 0.0
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for i := 0; i+1 < len(match); i += 2 {
			ok = ok && strings.Contains(line, fmt.Sprintf("%s=%q", match[i], match[i+1]))
		}
		fields := strings.Fields(line)
		if v, err := strconv.ParseFloat(fields[len(fields)-1], 64); ok && err == nil {
			sum += v
		}
	}
	return sum
}

// copyConfig copies the bundled example into a temporary directory, with
// create-charge's retry.minRemaining fixed at 100ms so a retry can be
// refused as retry-deadline-insufficient without latency history.
func copyConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(exampleConfig, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "budgets.yaml" {
			fixed := strings.Replace(string(b), "minRemaining: auto", "minRemaining: 100ms", 1)
			if fixed == string(b) {
				t.Fatal("budgets.yaml no longer has create-charge's `minRemaining: auto`; update copyConfig")
			}
			b = []byte(fixed)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// promQuery is the answer of Prometheus's /api/v1/query.
type promQuery struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Data   struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

// instant runs expr on the Prometheus at base and returns the number of
// samples of its result (1 for a scalar).
func instant(base, expr string) (int, []map[string]string, error) {
	code, body, err := httpGet(base + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return 0, nil, err
	}
	var q promQuery
	if err := json.Unmarshal([]byte(body), &q); err != nil {
		return 0, nil, fmt.Errorf("HTTP %d %q: %w", code, body, err)
	}
	if q.Status != "success" {
		return 0, nil, fmt.Errorf("HTTP %d: %s", code, q.Error)
	}
	switch q.Data.ResultType {
	case "scalar":
		return 1, nil, nil
	case "vector":
		var v []struct {
			Metric map[string]string `json:"metric"`
		}
		if err := json.Unmarshal(q.Data.Result, &v); err != nil {
			return 0, nil, err
		}
		var ms []map[string]string
		for _, s := range v {
			ms = append(ms, s.Metric)
		}
		return len(v), ms, nil
	}
	return 0, nil, fmt.Errorf("result type %q", q.Data.ResultType)
}

// TestPrometheusScrapesEveryPanel runs `hopguard run` on the bundled
// example with generated traffic, xDS nodes and config reloads, lets a real
// Prometheus scrape it and evaluate rules.yaml, and requires every
// dashboard query to return data.
func TestPrometheusScrapesEveryPanel(t *testing.T) {
	promBin := requireBinary(t, "prometheus")
	promtool := requireBinary(t, "promtool")
	goBin := requireBinary(t, "go")
	began := time.Now()

	rulesAbs, err := filepath.Abs(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	rulesTest, err := filepath.Abs(filepath.Join(filepath.Dir(rulesPath), "rules_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check", "rules", rulesAbs}, {"check", "config", promConfPath}, {"test", "rules", rulesTest}} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	// Build and start hopguard run.
	bin := filepath.Join(t.TempDir(), "hopguard")
	buildCtx, cancelBuild := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancelBuild()
	if out, err := exec.CommandContext(buildCtx, goBin, "build", "-o", bin, "../cmd/hopguard").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("hopguard built in %s", time.Since(began).Round(time.Millisecond))
	began = time.Now()
	cfg := copyConfig(t)
	keys := filepath.Join(t.TempDir(), "keys")
	if out, err := exec.Command(bin, "keygen", "--out", keys).CombinedOutput(); err != nil {
		t.Fatalf("hopguard keygen: %v\n%s", err, out)
	}
	xdsAddr, adminAddr, extProcAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	hgOut := start(t, bin, "run", "--config", cfg, "--xds-addr", xdsAddr, "--admin-addr", adminAddr, "--extproc-addr", extProcAddr,
		"--signing-key", filepath.Join(keys, "hopguard-signing.key"))
	admin := "http://" + adminAddr
	defer func() {
		if t.Failed() {
			t.Logf("hopguard output:\n%s", hgOut.String())
		}
	}()
	waitFor(t, 15*time.Second, "hopguard /readyz", func() (bool, string) {
		code, body, err := httpGet(admin + "/readyz")
		return err == nil && code == http.StatusOK, fmt.Sprintf("%d %s %v", code, body, err)
	})

	// Two xDS nodes: one acks, one nacks everything.
	// The nodes stay connected until the test ends; each wait is bounded.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i, nack := range []bool{false, true} {
		node := &corev3.Node{Id: fmt.Sprintf("orders-%d", i), Cluster: "orders", UserAgentName: "envoy",
			Locality: &corev3.Locality{Region: "eu-west-1", Zone: "a"}}
		c, err := xdstest.Dial(ctx, xdsAddr, node, nack)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, typ := range []string{resource.ListenerType, resource.ClusterType} {
			if err := c.Subscribe(typ); err != nil {
				t.Fatal(err)
			}
		}
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = c.WaitFor(wctx, resource.ListenerType, "")
		wcancel()
		if err != nil {
			t.Fatal(err)
		}
	}

	// A standalone filter following the control plane's signed bundles, as
	// the Kubernetes sidecar example runs it.
	filterAddr, filterMetrics := freeAddr(t), freeAddr(t)
	filterOut, stopFilter := startStoppable(t, bin, "extproc", "--control-plane", xdsAddr,
		"--verify-key", filepath.Join(keys, "hopguard-signing.pub"), "--environment", loadConfig(t, cfg).Mesh.Spec.Environment,
		"--addr", filterAddr, "--metrics-addr", filterMetrics)
	defer func() {
		if t.Failed() {
			t.Logf("hopguard extproc output:\n%s", filterOut.String())
		}
	}()
	waitFor(t, 15*time.Second, "hopguard extproc /readyz", func() (bool, string) {
		code, body, err := httpGet("http://" + filterMetrics + "/readyz")
		return err == nil && code == http.StatusOK, fmt.Sprintf("%d %s %v", code, body, err)
	})

	reasons := generateTraffic(t, extProcAddr)

	// One valid change, then one invalid.
	budgets := filepath.Join(cfg, "budgets.yaml")
	b, err := os.ReadFile(budgets)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(b), "deadline: {default: 300ms, max: 1s}\n  retry: {authority: mesh", "deadline: {default: 300ms, max: 2s}\n  retry: {authority: mesh", 1)
	if changed == string(b) {
		t.Fatal("budgets.yaml no longer has get-charge's deadline line; update the test's valid change")
	}
	if err := os.WriteFile(budgets, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the valid change to be applied", func() (bool, string) {
		_, body, err := httpGet(admin + "/metrics")
		return err == nil && metricSum(body, "hopguard_config_changes_total") >= 1, fmt.Sprint(err)
	})
	if err := os.WriteFile(filepath.Join(cfg, "broken.yaml"), []byte("apiVersion: hopguard.dev/v1alpha1\nkind: RouteBudget\nspec: {nope: 1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the invalid change to be refused", func() (bool, string) {
		_, body, err := httpGet(admin + "/metrics")
		return err == nil && metricSum(body, "hopguard_config_reloads_total", "result", "invalid") >= 1, fmt.Sprint(err)
	})

	// Prometheus scraping the admin address and the filter every second
	// and evaluating the repository's rules. The filter's job is not named
	// after hopguard: the rules know it by its metrics.
	promDir := t.TempDir()
	promConf := filepath.Join(promDir, "prometheus.yaml")
	conf := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: hopguard
    static_configs: [{targets: [%q]}]
  - job_name: sidecars
    static_configs: [{targets: [%q]}]
`, rulesAbs, adminAddr, filterMetrics)
	if err := os.WriteFile(promConf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	promAddr := freeAddr(t)
	promOut := start(t, promBin, "--config.file="+promConf, "--storage.tsdb.path="+filepath.Join(promDir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	prom := "http://" + promAddr
	defer func() {
		if t.Failed() {
			t.Logf("prometheus output:\n%s", promOut.String())
		}
	}()
	waitFor(t, 20*time.Second, "the hopguard targets to be up", func() (bool, string) {
		n, _, err := instant(prom, `up == 1`)
		return err == nil && n == 2, fmt.Sprint(err)
	})

	queries := dashboardQueries(t, loadDashboard(t))
	// Rates need two scrapes and the rules an evaluation: poll until every
	// query answers, then report all that never did.
	var failing []string
	for deadline := time.Now().Add(25 * time.Second); ; {
		failing = failing[:0]
		for _, q := range queries {
			expr := grafanaVars.Replace(q.expr)
			n, _, err := instant(prom, expr)
			if err != nil || n == 0 {
				failing = append(failing, fmt.Sprintf("%s: %s: %d samples, err %v", q.where, expr, n, err))
			}
		}
		if len(failing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(failing) > 0 {
		t.Errorf("%d of %d dashboard queries returned no data:\n%s", len(failing), len(queries), strings.Join(failing, "\n"))
	}

	// The filters (hopguard run's and the subscribed one) and the control
	// plane name the same policies by the same hash, so
	// HopguardFilterPolicyMismatch's expression is empty, and the match it
	// relies on is not. Likewise the other alerts on a healthy deployment:
	// what they select is there, and they are empty.
	// (In order: the match first, so the empty alert is not the emptiness
	// of a Prometheus that has not scraped everything yet.)
	alerts := map[string]string{}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				alerts[r.Alert] = r.Expr
			}
		}
	}
	for _, q := range []struct {
		expr string
		want int
	}{
		{`hopguard_filter_policy_info and on (policy_hash, environment) hopguard_policy_info`, 2},
		{`max by (instance, policy_hash, environment) (hopguard_filter_policy_info) unless on (policy_hash, environment) hopguard_policy_info`, 0},
		{`hopguard_filter_bundle_stream_up == 1`, 1},
		{alerts["HopguardFilterBundleStreamDown"], 0},
		{`up == 1 and on (job, instance) (group by (job, instance) (last_over_time(hopguard_build_info[1h])) or group by (job, instance) (last_over_time(hopguard_decision_duration_seconds_count[1h])))`, 2},
		{alerts["HopguardTargetDown"], 0},
		{`hopguard_build_info`, 1},
		{alerts["HopguardControlPlaneAbsent"], 0},
		{`count by (environment, policy_hash) (hopguard_policy_info)`, 1},
		{alerts["HopguardControlPlanePolicyDivergence"], 0},
	} {
		waitFor(t, 10*time.Second, q.expr, func() (bool, string) {
			n, _, err := instant(prom, q.expr)
			return err == nil && n == q.want, fmt.Sprintf("%d samples (want %d), err %v", n, q.want, err)
		})
	}

	// The subscribed filter stops: its target is down, under a job not
	// named after hopguard, and HopguardTargetDown's expression names it.
	stopFilter()
	waitFor(t, 10*time.Second, "HopguardTargetDown's expression to name the stopped filter", func() (bool, string) {
		n, series, err := instant(prom, alerts["HopguardTargetDown"])
		return err == nil && n == 1 && series[0]["instance"] == filterMetrics && series[0]["job"] == "sidecars", fmt.Sprintf("%v, err %v", series, err)
	})

	// The traffic reached Prometheus as the rejections it provoked.
	_, series, err := instant(prom, `count by (reason) (hopguard_decisions_total{decision="reject"})`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range series {
		got = append(got, m["reason"])
	}
	sort.Strings(got)
	for _, r := range reasons {
		if !slices.Contains(got, r) {
			t.Errorf("Prometheus has no rejection with reason %s; it has %v", r, got)
		}
	}
	t.Logf("scraped and queried in %s", time.Since(began).Round(time.Millisecond))
}
