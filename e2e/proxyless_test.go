package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

const unaryMethod = "grpc.testing.TestService/UnaryCall"

// meshYAML declares a checkout client that calls payments, ledger and
// inventory — three services served by one backend — with the retry
// authority of each service's UnaryCall route given by authorities.
func meshYAML(backendAddr, extProcAddr string, attempts map[string]int, authorities map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: hopguard.dev/v1alpha1
kind: MeshConfig
metadata: {name: default}
spec:
  environment: e2e
  extProc: {address: %q, timeout: 1s}
---
apiVersion: hopguard.dev/v1alpha1
kind: Service
metadata: {name: checkout, namespace: shop}
spec:
  port: 9000
  endpoints: [{address: 127.0.0.1:9000}]
  dependsOn: [payments, ledger, inventory]
`, extProcAddr)
	for _, svc := range []string{"payments", "ledger", "inventory"} {
		fmt.Fprintf(&b, `---
apiVersion: hopguard.dev/v1alpha1
kind: Service
metadata: {name: %s, namespace: shop}
spec:
  port: 9001
  endpoints: [{address: %q, locality: {region: eu-west-1, zone: a}}]
---
apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: %s-unary, namespace: shop}
spec:
  service: %s
  match: {grpcMethod: %s}
  deadline: {default: 2s, max: 4s}
  retry:
    authority: %s
    attempts: %d
    on: [unavailable]
    backoff: {base: 5ms, max: 20ms}
  sideEffects: false
`, svc, backendAddr, svc, svc, unaryMethod, authorities[svc], attempts[svc])
	}
	// A slow route: the route deadline (max 500ms) must cap a caller asking for 5s.
	b.WriteString(`---
apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: payments-slow, namespace: shop}
spec:
  service: payments
  match: {grpcMethod: grpc.testing.TestService/EmptyCall}
  deadline: {default: 300ms, max: 500ms}
  retry: {authority: none, attempts: 1}
  sideEffects: false
`)
	return b.String()
}

// callFailing makes one UnaryCall that the backend fails and returns the
// number of attempts the backend saw.
func callFailing(t *testing.T, b *backend, client testgrpc.TestServiceClient) int64 {
	t.Helper()
	b.fail.Store(true)
	before := b.attempts.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("UnaryCall: got %v, want UNAVAILABLE from the backend", err)
	}
	return b.attempts.Load() - before
}

// waitReady makes successful calls until the xDS config has arrived.
func waitReady(t *testing.T, b *backend, client testgrpc.TestServiceClient) {
	t.Helper()
	b.fail.Store(false)
	var last error
	eventually(t, 10*time.Second, "a first successful call through xDS", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, last = client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		return last == nil
	})
}

func TestProxylessRetryAuthority(t *testing.T) {
	b := startBackend(t)
	ep := startExtProc(t)
	m := startControlPlane(t, map[string]string{"mesh.yaml": meshYAML(b.addr, ep.addr,
		map[string]int{"payments": 3, "ledger": 3, "inventory": 3},
		map[string]string{"payments": "mesh", "ledger": "app", "inventory": "none"})})

	for _, tc := range []struct {
		target string
		want   int64
	}{
		{"payments", 3}, // mesh authority: the data plane makes every attempt
		{"ledger", 1},   // app authority: the mesh must not retry
		{"inventory", 1},
	} {
		t.Run(tc.target, func(t *testing.T) {
			client := testgrpc.NewTestServiceClient(m.dial(t, "checkout-"+tc.target, "checkout", tc.target, ep.addr))
			waitReady(t, b, client)
			if got := callFailing(t, b, client); got != tc.want {
				t.Errorf("backend saw %d attempts for one call to %s, want %d", got, tc.target, tc.want)
			}
		})
	}

	// Every call went through grpc-go's ext_proc filter carrying the
	// per-route metadata the control plane rendered.
	routes := ep.seen("x-hopguard-route")
	for _, want := range []string{"shop/payments-unary", "shop/ledger-unary", "shop/inventory-unary"} {
		if !slices.Contains(routes, want) {
			t.Errorf("ext_proc never saw x-hopguard-route=%s; saw %v", want, routes)
		}
	}
	if sides := ep.seen("x-hopguard-side"); len(sides) == 0 || sides[0] != "outbound" {
		t.Errorf("x-hopguard-side = %v, want outbound", sides)
	}
	policies := ep.seen("x-hopguard-policy")
	if len(policies) == 0 {
		t.Error("ext_proc never saw x-hopguard-policy")
	}
	for _, p := range policies {
		if len(p) < 8 {
			t.Errorf("x-hopguard-policy = %q, want a policy digest", p)
		}
	}
	for _, s := range ep.seen("x-hopguard-side") {
		if s != "outbound" {
			t.Errorf("x-hopguard-side = %q on a client-side filter, want outbound", s)
		}
	}
}

func TestProxylessRouteDeadlineCapsSlowBackend(t *testing.T) {
	b := startBackend(t)
	ep := startExtProc(t)
	m := startControlPlane(t, map[string]string{"mesh.yaml": meshYAML(b.addr, ep.addr,
		map[string]int{"payments": 1, "ledger": 1, "inventory": 1},
		map[string]string{"payments": "mesh", "ledger": "mesh", "inventory": "mesh"})})
	client := testgrpc.NewTestServiceClient(m.dial(t, "checkout-slow", "checkout", "payments", ep.addr))
	waitReady(t, b, client)

	b.delay.Store(int64(3 * time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := client.EmptyCall(ctx, &testgrpc.Empty{})
	elapsed := time.Since(start)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("EmptyCall: got %v, want DEADLINE_EXCEEDED from the route deadline", err)
	}
	// The caller asked for 5s; the route allows at most 500ms.
	if elapsed < 450*time.Millisecond || elapsed > 1500*time.Millisecond {
		t.Errorf("call ended after %v, want about 500ms (deadline.max)", elapsed)
	}
}

func TestProxylessConfigChangeAndInvalidChange(t *testing.T) {
	b := startBackend(t)
	ep := startExtProc(t)
	auth := map[string]string{"payments": "mesh", "ledger": "mesh", "inventory": "mesh"}
	m := startControlPlane(t, map[string]string{"mesh.yaml": meshYAML(b.addr, ep.addr,
		map[string]int{"payments": 3, "ledger": 1, "inventory": 1}, auth)})
	client := testgrpc.NewTestServiceClient(m.dial(t, "checkout-reload", "checkout", "payments", ep.addr))
	waitReady(t, b, client)
	if got := callFailing(t, b, client); got != 3 {
		t.Fatalf("before the change: backend saw %d attempts, want 3", got)
	}

	// A valid change (3 → 2 attempts) must reach the connected client within 1s.
	nodeVersion := func() string {
		var nodes []struct {
			ID       string            `json:"id"`
			Expected string            `json:"expected"`
			Acked    map[string]string `json:"acked"`
		}
		m.getJSON(t, "/nodes", &nodes)
		for _, n := range nodes {
			if n.ID == "checkout-reload" && n.Acked["route"] == n.Expected {
				return n.Expected
			}
		}
		return ""
	}
	before := nodeVersion()
	if before == "" {
		t.Fatal("the client's node has not acked its route config before the change")
	}
	writeFile(t, m.dir+"/mesh.yaml", meshYAML(b.addr, ep.addr,
		map[string]int{"payments": 2, "ledger": 1, "inventory": 1}, auth))
	took := eventually(t, 3*time.Second, "the client to ack the changed config", func() bool {
		v := nodeVersion()
		return v != "" && v != before
	})
	t.Logf("config change reached the client in %v", took)
	if got := callFailing(t, b, client); got != 2 {
		t.Errorf("after the change: backend saw %d attempts, want 2", got)
	}

	// An invalid change is refused whole: the client keeps the last good
	// config and the admin API shows why.
	writeFile(t, m.dir+"/mesh.yaml", strings.Replace(meshYAML(b.addr, ep.addr,
		map[string]int{"payments": 5, "ledger": 1, "inventory": 1}, auth), "attempts: 5", "attempts: five", 1))
	var cfg struct {
		LastError *struct {
			Message string `json:"message"`
		} `json:"lastError"`
	}
	eventually(t, 3*time.Second, "/config to report the refused change", func() bool {
		cfg.LastError = nil
		m.getJSON(t, "/config", &cfg)
		return cfg.LastError != nil
	})
	if !strings.Contains(cfg.LastError.Message, "spec.retry.attempts") {
		t.Errorf("/config lastError = %q, want it to name spec.retry.attempts", cfg.LastError.Message)
	}
	if got := callFailing(t, b, client); got != 2 {
		t.Errorf("after the invalid change: backend saw %d attempts, want the last good 2", got)
	}
	if v := nodeVersion(); v == "" {
		t.Error("the client's node is no longer acked at the expected version after the invalid change")
	}
}
