package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/controlplane/translate"
	"github.com/hopguard/hopguard/controlplane/xds"
	"github.com/hopguard/hopguard/controlplane/xds/xdstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const meshYAML = `apiVersion: hopguard.dev/v1alpha1
kind: MeshConfig
metadata: {name: default}
spec:
  environment: test-env
  extProc: {address: 127.0.0.1:18001, timeout: 200ms}
---
apiVersion: hopguard.dev/v1alpha1
kind: Service
metadata: {name: payments, namespace: shop}
spec:
  protocol: grpc
  port: 9102
  endpoints:
    - {address: 127.0.0.1:9102, locality: {region: eu-west-1, zone: a}}
  dependsOn: [ledger]
---
apiVersion: hopguard.dev/v1alpha1
kind: Service
metadata: {name: ledger, namespace: shop}
spec:
  protocol: grpc
  port: 9103
  endpoints:
    - {address: 127.0.0.1:9103}
`

// budgetYAML is a route budget of ledger with the given default deadline
// and attempts (attempts 0 is invalid).
func budgetYAML(deadline string, attempts int) string {
	return fmt.Sprintf(`apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: post-entry, namespace: shop}
spec:
  service: ledger
  match: {grpcMethod: shop.Ledger/PostEntry}
  deadline: {default: %s, max: 2s}
  retry: {authority: mesh, attempts: %d, perTryTimeout: 100ms}
  idempotency: {require: always}
`, deadline, attempts)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	// Write then rename, as editors do, so a reload never sees half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// configDir returns a directory holding a valid configuration.
func configDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "mesh.yaml"), meshYAML)
	writeFile(t, filepath.Join(dir, "budgets.yaml"), budgetYAML("500ms", 3))
	return dir
}

func start(t *testing.T, opts Options) *ControlPlane {
	t.Helper()
	opts.XDSAddr = "127.0.0.1:0"
	opts.AdminAddr = "127.0.0.1:0"
	if opts.Debounce == 0 {
		opts.Debounce = 50 * time.Millisecond
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	cp, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(cp.Stop)
	return cp
}

func dialNode(t *testing.T, cp *ControlPlane, id, service string) *xdstest.Client {
	t.Helper()
	node := &corev3.Node{Id: id, Cluster: service, UserAgentName: "envoy"}
	c, err := xdstest.Dial(context.Background(), cp.XDSAddr(), node, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	for _, typ := range []string{resourcev3.ListenerType, resourcev3.ClusterType} {
		if err := c.Subscribe(typ); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func waitResponse(t *testing.T, c *xdstest.Client, typeURL, version string) xdstest.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.WaitFor(ctx, typeURL, version)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func httpGet(t *testing.T, cp *ControlPlane, path string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + cp.AdminAddr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

type configJSON struct {
	Version   string          `json:"version"`
	Mesh      json.RawMessage `json:"mesh"`
	LastError *struct {
		Message string    `json:"message"`
		At      time.Time `json:"at"`
	} `json:"lastError"`
}

func getConfig(t *testing.T, cp *ControlPlane) configJSON {
	t.Helper()
	code, body := httpGet(t, cp, "/config")
	if code != http.StatusOK {
		t.Fatalf("GET /config = %d", code)
	}
	var c configJSON
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		t.Fatalf("GET /config: %v\n%s", err, body)
	}
	return c
}

func TestReloadRefusesInvalidConfigAndKeepsServing(t *testing.T) {
	dir := configDir(t)
	cp := start(t, Options{ConfigDir: dir})
	m := cp.metrics
	c := dialNode(t, cp, "ledger-1", "ledger")
	v1 := waitResponse(t, c, resourcev3.ListenerType, "").Version
	waitResponse(t, c, resourcev3.ClusterType, v1)

	// An invalid change is refused whole.
	writeFile(t, filepath.Join(dir, "budgets.yaml"), budgetYAML("700ms", 0))
	eventually(t, "refused reload", func() bool {
		return testutil.ToFloat64(m.ConfigReloads.WithLabelValues("invalid")) == 1
	})
	cfg := getConfig(t, cp)
	if cfg.LastError == nil || !strings.Contains(cfg.LastError.Message, "budgets.yaml") ||
		!strings.Contains(cfg.LastError.Message, "attempts") {
		t.Errorf("/config lastError = %+v, want the violation naming budgets.yaml and attempts", cfg.LastError)
	}
	time.Sleep(200 * time.Millisecond)
	if n := c.Count(resourcev3.ListenerType); n != 1 {
		t.Errorf("client received %d listener responses after a refused change, want 1", n)
	}
	if got := cp.Nodes()[0].Expected; got != v1 {
		t.Errorf("node expected %q after a refused change, want %q", got, v1)
	}
	if code, body := httpGet(t, cp, "/readyz"); code != http.StatusOK || !strings.Contains(body, `"signing": "disabled"`) {
		t.Errorf("GET /readyz with a refused change = %d %s, want 200 (the old config is served)", code, body)
	}

	// A fixed change is served.
	writeFile(t, filepath.Join(dir, "budgets.yaml"), budgetYAML("700ms", 2))
	eventually(t, "accepted reload", func() bool { return getConfig(t, cp).LastError == nil })
	v2 := cp.Nodes()[0].Expected
	if v2 == v1 {
		t.Fatalf("changed configuration kept version %s", v1)
	}
	waitResponse(t, c, resourcev3.ListenerType, v2)
	waitResponse(t, c, resourcev3.ClusterType, v2)
	if got := testutil.ToFloat64(m.ConfigReloads.WithLabelValues("ok")); got != 2 {
		t.Errorf("reloads{ok} = %v, want 2 (start and fix)", got)
	}
	// No change windows declared: every change is in window.
	if got := testutil.ToFloat64(m.ConfigChanges.WithLabelValues("true")); got != 1 {
		t.Errorf("changes{in_window=true} = %v, want 1", got)
	}
}

func TestStartRejectsInvalidConfig(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "mesh.yaml"), meshYAML)
	writeFile(t, filepath.Join(dir, "budgets.yaml"), budgetYAML("500ms", 0))
	cp, err := Start(context.Background(), Options{ConfigDir: dir, XDSAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"})
	if err == nil {
		cp.Stop()
		t.Fatal("Start succeeded with an invalid configuration")
	}
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "budgets.yaml:") {
		t.Errorf("Start = %v, want ErrInvalidConfig naming budgets.yaml:line:col", err)
	}
}

func TestStart_Errors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	for name, tc := range map[string]struct {
		opts Options
		want string
	}{
		"no directory":      {Options{}, "no configuration directory"},
		"missing directory": {Options{ConfigDir: missing}, missing},
		"bad address":       {Options{ConfigDir: configDir(t), XDSAddr: "256.0.0.1:bad", AdminAddr: "127.0.0.1:0"}, "xds listener"},
	} {
		t.Run(name, func(t *testing.T) {
			cp, err := Start(context.Background(), tc.opts)
			if err == nil {
				cp.Stop()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) || errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Start = %v, want an error naming %q that is not an invalid configuration", err, tc.want)
			}
		})
	}
}

func TestAdminEndpoints(t *testing.T) {
	cp := start(t, Options{ConfigDir: configDir(t), Build: BuildInfo{Version: "v1.2.3", Revision: "abc", GoVersion: "go1.26"}})
	c := dialNode(t, cp, "payments-1", "payments")
	waitResponse(t, c, resourcev3.ListenerType, "")

	if code, body := httpGet(t, cp, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz = %d %q", code, body)
	}
	code, body := httpGet(t, cp, "/readyz")
	var ready struct {
		Ready   bool   `json:"ready"`
		Signing string `json:"signing"`
		Version string `json:"version"`
	}
	if err := json.Unmarshal([]byte(body), &ready); err != nil || code != http.StatusOK || !ready.Ready ||
		ready.Signing != "disabled" || ready.Version == "" {
		t.Errorf("GET /readyz = %d %s (%v)", code, body, err)
	}
	cfg := getConfig(t, cp)
	var mesh ir.Mesh
	if err := json.Unmarshal(cfg.Mesh, &mesh); err != nil || len(mesh.Services) != 2 {
		t.Errorf("/config mesh = %s (%v), want 2 services", cfg.Mesh, err)
	}
	code, body = httpGet(t, cp, "/nodes")
	var nodes []xds.NodeStatus
	if err := json.Unmarshal([]byte(body), &nodes); err != nil || code != http.StatusOK || len(nodes) != 1 ||
		nodes[0].ID != "payments-1" || nodes[0].Service != "payments" || !nodes[0].Connected {
		t.Errorf("GET /nodes = %d %s (%v)", code, body, err)
	}
	_, body = httpGet(t, cp, "/metrics")
	for _, want := range []string{
		fmt.Sprintf(`hopguard_policy_info{environment="test-env",policy_hash=%q,schema_rev=%q} 1`, cp.Config().PolicyHash, SchemaRev),
		`hopguard_build_info{go_version="go1.26",revision="abc",version="v1.2.3"} 1`,
		`hopguard_config_reloads_total{result="ok"} 1`,
		`hopguard_xds_pushes_total{type="listener"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /metrics lacks %s", want)
		}
	}
}

// TestRenderFailureIsRefused uses an injected loader and renderer: a
// configuration that compiles but cannot be rendered is refused like an
// invalid one.
func TestRenderFailureIsRefused(t *testing.T) {
	meshes := make(chan *ir.Mesh, 2)
	meshes <- xdstest.Mesh(time.Second, "payments", "ledger")
	load := func(string) (*loaded, error) {
		select {
		case m := <-meshes:
			return &loaded{mesh: m}, nil
		default:
			return nil, fmt.Errorf("%w: test loader has nothing more", ErrInvalidConfig)
		}
	}
	render := func(m *ir.Mesh, service string, f translate.Flavor) (*translate.Resources, error) {
		return xdstest.Render(m, service, f)
	}
	cp := start(t, Options{ConfigDir: t.TempDir(), load: load, Render: render})
	c := dialNode(t, cp, "ledger-1", "ledger")
	v1 := waitResponse(t, c, resourcev3.ListenerType, "").Version

	// ledger is missing: its node's render fails, so the reload is refused.
	meshes <- xdstest.Mesh(2*time.Second, "payments")
	err := cp.Reload(context.Background())
	if !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, xdstest.ErrUnknownService) {
		t.Fatalf("Reload = %v, want ErrInvalidConfig wrapping the render error", err)
	}
	if got := cp.Nodes()[0].Expected; got != v1 {
		t.Errorf("node expected %q after a refused reload, want %q", got, v1)
	}
	if cfg := cp.Config(); cfg.LastError == nil || !strings.Contains(cfg.LastError.Message, "ledger") {
		t.Errorf("Config().LastError = %+v, want the render error", cfg.LastError)
	}
}

func TestStopEndsConnectedStreams(t *testing.T) {
	cp, err := Start(context.Background(), Options{ConfigDir: configDir(t), XDSAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	c := dialNode(t, cp, "ledger-1", "ledger")
	waitResponse(t, c, resourcev3.ListenerType, "")
	begin := time.Now()
	cp.Stop()
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("Stop took %v with a connected client, want < 2s", d)
	}
	if err := cp.Wait(); err != nil {
		t.Errorf("Wait after Stop = %v, want nil", err)
	}
}

func TestContextCancelStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cp, err := Start(ctx, Options{ConfigDir: configDir(t), XDSAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	done := make(chan error, 1)
	go func() { done <- cp.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Wait = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("control plane did not stop with its context")
	}
}

func TestInChangeWindow(t *testing.T) {
	weekdays := ir.ChangeWindow{Days: []time.Weekday{time.Monday, time.Tuesday}, From: 9 * 60, To: 17 * 60, Timezone: "UTC"}
	berlin := ir.ChangeWindow{Days: []time.Weekday{time.Monday}, From: 9 * 60, To: 10 * 60, Timezone: "Europe/Berlin"}
	tokyo := ir.ChangeWindow{Days: []time.Weekday{time.Monday}, From: 0, To: 2 * 60, Timezone: "Asia/Tokyo"}
	monday := func(h, m int) time.Time { return time.Date(2025, 3, 3, h, m, 0, 0, time.UTC) }
	tests := []struct {
		name    string
		t       time.Time
		windows []ir.ChangeWindow
		want    bool
	}{
		{"no windows", monday(3, 0), nil, true},
		{"inside", monday(12, 0), []ir.ChangeWindow{weekdays}, true},
		{"at start", monday(9, 0), []ir.ChangeWindow{weekdays}, true},
		{"at end", monday(17, 0), []ir.ChangeWindow{weekdays}, false},
		{"wrong day", monday(12, 0).AddDate(0, 0, 3), []ir.ChangeWindow{weekdays}, false},
		{"other zone", monday(8, 30), []ir.ChangeWindow{berlin}, true},
		{"other zone outside", monday(9, 30), []ir.ChangeWindow{berlin}, false},
		{"second window", monday(8, 30), []ir.ChangeWindow{weekdays, berlin}, true},
		// Berlin is UTC+2 in summer: 07:30Z on Monday 2025-06-02 is 09:30 local.
		{"other zone in summer time", time.Date(2025, 6, 2, 7, 30, 0, 0, time.UTC), []ir.ChangeWindow{berlin}, true},
		{"other zone in summer time, outside", time.Date(2025, 6, 2, 8, 30, 0, 0, time.UTC), []ir.ChangeWindow{berlin}, false},
		// Sunday 16:30Z is Monday 01:30 in Tokyo: the day is the local one.
		{"day is the local day", time.Date(2025, 3, 2, 16, 30, 0, 0, time.UTC), []ir.ChangeWindow{tokyo}, true},
		{"local day boundary", time.Date(2025, 3, 3, 1, 30, 0, 0, time.UTC), []ir.ChangeWindow{tokyo}, false},
		{"offset of t does not matter", time.Date(2025, 3, 3, 1, 30, 0, 0, time.FixedZone("JST", 9*3600)), []ir.ChangeWindow{tokyo}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := InChangeWindow(tc.t, tc.windows); got != tc.want {
				t.Errorf("InChangeWindow(%v) = %v, want %v", tc.t, got, tc.want)
			}
		})
	}
}

func TestPolicyHashIgnoresOrder(t *testing.T) {
	a := &ir.Mesh{Services: []*ir.Service{
		{Name: "a", Routes: []*ir.Route{{Digest: "1"}, {Digest: "2"}}},
		{Name: "b", Routes: []*ir.Route{{Digest: "3"}}},
	}}
	b := &ir.Mesh{Services: []*ir.Service{
		{Name: "b", Routes: []*ir.Route{{Digest: "2"}}},
		{Name: "a", Routes: []*ir.Route{{Digest: "3"}, {Digest: "1"}}},
	}}
	c := &ir.Mesh{Services: []*ir.Service{{Name: "a", Routes: []*ir.Route{{Digest: "1"}, {Digest: "4"}}}}}
	if PolicyHash(a) != PolicyHash(b) {
		t.Errorf("same digests in another order hash differently")
	}
	if PolicyHash(a) == PolicyHash(c) {
		t.Errorf("different digests hash the same")
	}
}

func TestOnApplySeesEveryAcceptedConfigOnly(t *testing.T) {
	dir := configDir(t)
	var mu sync.Mutex
	var attempts []int
	cp := start(t, Options{ConfigDir: dir, OnApply: func(m *ir.Mesh) {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, m.Bundle().Routes[0].Retry.Attempts)
	}})
	seen := func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(attempts)
	}
	if got := seen(); !slices.Equal(got, []int{3}) {
		t.Fatalf("after Start OnApply saw attempts %v, want [3]", got)
	}
	writeFile(t, filepath.Join(dir, "budgets.yaml"), budgetYAML("500ms", 0)) // invalid
	eventually(t, "refused reload", func() bool { return getConfig(t, cp).LastError != nil })
	writeFile(t, filepath.Join(dir, "budgets.yaml"), budgetYAML("500ms", 2))
	eventually(t, "accepted reload", func() bool { return len(seen()) == 2 })
	if got := seen(); !slices.Equal(got, []int{3, 2}) {
		t.Errorf("OnApply saw attempts %v, want [3 2] (the refused change never reaches it)", got)
	}
}
