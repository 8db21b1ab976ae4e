package cli

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/hopguard/hopguard/internal/testutil/testcerts"
	"github.com/hopguard/hopguard/policy/signing"
)

const exampleDir = "../../examples/shop/config"

func run(t *testing.T, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(ctx, Env{Args: args, Stdout: &out, Stderr: &errb, Version: "test"})
	return code, out.String(), errb.String()
}

func TestValidateBundledExample(t *testing.T) {
	code, out, errOut := run(t, context.Background(), "validate", exampleDir)
	if code != ExitOK {
		t.Fatalf("validate %s: exit %d\nstdout:\n%s\nstderr:\n%s", exampleDir, code, out, errOut)
	}
	if !strings.Contains(errOut, "valid: 5 services, 6 route budgets") {
		t.Errorf("stderr = %q, want the summary line", errOut)
	}
}

func TestValidateReportsEveryViolationWithPosition(t *testing.T) {
	dir := t.TempDir()
	bad := `apiVersion: hopguard.dev/v1alpha1
kind: Service
metadata: {name: payments}
spec:
  port: 8080
  endpoints: [{address: 127.0.0.1:9000}]
---
apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: create}
spec:
  service: payments
  match: {grpcMethod: shop.Payments/Create}
  retry:
    attempts: three
    backof: {base: 10ms}
`
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := run(t, context.Background(), "validate", dir)
	if code != ExitFindings {
		t.Fatalf("exit %d, want %d; stdout:\n%s", code, ExitFindings, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 violation lines, got %d:\n%s", len(lines), out)
	}
	file := filepath.Join(dir, "bad.yaml")
	for i, want := range []string{file + ":15:15: spec.retry.attempts: ", file + ":16:5: spec.retry.backof: "} {
		if !strings.HasPrefix(lines[i], want) {
			t.Errorf("line %d = %q, want prefix %q", i+1, lines[i], want)
		}
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"validate"},
		{"render", "--config", exampleDir},
		{"no-such-command"},
		{"validate", "--no-such-flag", exampleDir},
		{"validate", filepath.Join(t.TempDir(), "missing")},
		{"controlplane", "--config", exampleDir, "--tls-cert", "cert.pem", "--xds-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"},
		{"extproc", "--control-plane", "127.0.0.1:1", "--allow-unsigned", "--environment", "e", "--control-plane-cert", "c.pem",
			"--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"},
		{"bootstrap", "--service", "s", "--xds-addr", "cp:18000", "--xds-cert", "c.pem", "--xds-key", "k.pem"},
	} {
		if code, _, _ := run(t, context.Background(), args...); code != ExitError {
			t.Errorf("hopguard %v: exit %d, want %d", args, code, ExitError)
		}
	}
}

func TestRenderPrintsNodeResources(t *testing.T) {
	code, out, errOut := run(t, context.Background(), "render", "--config", exampleDir, "--service", "orders")
	if code != ExitOK {
		t.Fatalf("render: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"listeners:", "routes:", "clusters:", "endpoints:", "outbound|payments", "x-hopguard-route", "include_request_attempt_count"} {
		if !strings.Contains(out, want) {
			t.Errorf("render output lacks %q", want)
		}
	}
	code, out, errOut = run(t, context.Background(), "render", "--config", exampleDir, "--service", "orders", "--proxyless")
	if code != ExitOK {
		t.Fatalf("render --proxyless: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "api_listener") || !strings.Contains(out, "google_grpc") {
		t.Errorf("proxyless render lacks api_listener or google_grpc:\n%s", out)
	}
	if strings.Contains(errOut, "note:") {
		t.Errorf("render of a declared service printed a note: %s", errOut)
	}
	// A service the directory does not declare renders (an undeclared
	// caller is valid) with a note, since it is most often a typo.
	code, out, errOut = run(t, context.Background(), "render", "--config", exampleDir, "--service", "ordres")
	if code != ExitOK || !strings.Contains(out, "listeners:") || !strings.Contains(errOut, `note: service "ordres" is not declared`) {
		t.Errorf("render of an undeclared service: exit %d, stderr %q", code, errOut)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestRunServesAndStopsCleanly(t *testing.T) {
	admin, xdsAddr, extProcAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- Main(ctx, Env{
			Args:   []string{"run", "--config", exampleDir, "--xds-addr", xdsAddr, "--admin-addr", admin, "--extproc-addr", extProcAddr},
			Stdout: &bytes.Buffer{}, Stderr: &stderr, Version: "test",
		})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("/readyz never answered 200 (last error %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The in-process filter enforces what the control plane serves.
	if reason := processCharge(t, extProcAddr); reason != "idempotency-key-missing" {
		t.Errorf("a keyless CreateCharge through the run ext_proc got reason %q, want idempotency-key-missing", reason)
	}
	cancel() // as SIGINT/SIGTERM would
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("run exited %d after cancellation, want 0; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop within 10s of cancellation")
	}
}

// processCharge sends one keyless shop.Payments/CreateCharge request, as
// Envoy would, to the ext_proc server at addr and returns the
// x-hopguard-reason of its answer ("" when the request was let through).
func processCharge(t *testing.T, addr string) string {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "x-hopguard-route", "shop/create-charge", "x-hopguard-side", "inbound")
	stream, err := extprocv3.NewExternalProcessorClient(cc).Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hdr := func(k, v string) *corev3.HeaderValue { return &corev3.HeaderValue{Key: k, RawValue: []byte(v)} }
	err = stream.Send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			hdr(":method", "POST"), hdr(":path", "/shop.Payments/CreateCharge"),
			hdr(":authority", "payments"), hdr("content-type", "application/grpc"),
		}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("ext_proc answer: %v", err)
	}
	for _, h := range resp.GetImmediateResponse().GetHeaders().GetSetHeaders() {
		if h.GetHeader().GetKey() == "x-hopguard-reason" {
			return h.GetHeader().GetValue() + string(h.GetHeader().GetRawValue())
		}
	}
	return ""
}

func TestExtProcCommandServesPolicies(t *testing.T) {
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- Main(ctx, Env{
			Args:   []string{"extproc", "--config", exampleDir, "--addr", addr, "--metrics-addr", metricsAddr},
			Stdout: &bytes.Buffer{}, Stderr: &stderr, Version: "test",
		})
	}()
	waitStatus(t, "http://"+metricsAddr+"/readyz", http.StatusOK)
	if reason := processCharge(t, addr); reason != "idempotency-key-missing" {
		t.Errorf("keyless CreateCharge got reason %q, want idempotency-key-missing", reason)
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `hopguard_decisions_total{decision="reject",reason="idempotency-key-missing",route="shop/create-charge",side="inbound"} 1`) {
		t.Errorf("/metrics lacks the rejection:\n%s", body)
	}
	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("extproc exited %d, want 0; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("extproc did not stop within 10s")
	}
}

// TestInvalidConfigAtStartExitsOne: a long-running command refusing its
// configuration at start reports invalid input (1), not a runtime error
// (2), so scripts can tell a bad config from, say, a port in use.
func TestInvalidConfigAtStartExitsOne(t *testing.T) {
	dir := t.TempDir()
	bad := `apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: x}
spec:
  service: payments
  retry: {attempts: 0}
`
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"controlplane", "--config", dir, "--xds-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"},
		{"extproc", "--config", dir, "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"},
	} {
		code, _, errOut := run(t, context.Background(), args...)
		if code != ExitFindings || !strings.Contains(errOut, "attempts") {
			t.Errorf("hopguard %s with an invalid config: exit %d, stderr %q; want %d naming the violation", args[0], code, errOut, ExitFindings)
		}
	}
	// A runtime error stays 2: the listen address is taken.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	if code, _, _ := run(t, context.Background(), "controlplane", "--config", exampleDir, "--xds-addr", lis.Addr().String(), "--admin-addr", "127.0.0.1:0"); code != ExitError {
		t.Errorf("controlplane on a taken address: exit %d, want %d", code, ExitError)
	}
}

// waitStatus polls url until it answers with status (10 s at most).
func waitStatus(t *testing.T, url string, status int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == status {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered %d (last: %v)", url, status, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestExtProcWaitingForPoliciesIsAliveNotReady: following a control plane
// that cannot be reached, the filter answers /healthz (a liveness probe
// must not restart it) and /readyz 503, and serves no ext_proc yet.
func TestExtProcWaitingForPoliciesIsAliveNotReady(t *testing.T) {
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, Env{
			Args: []string{"extproc", "--control-plane", freeAddr(t), "--allow-unsigned", "--environment", "test",
				"--addr", addr, "--metrics-addr", metricsAddr},
			Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}, Version: "test",
		})
	}()
	waitStatus(t, "http://"+metricsAddr+"/healthz", http.StatusOK)
	resp, err := http.Get("http://" + metricsAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "waiting for the first policies") {
		t.Errorf("/readyz before the first bundle = %d %q, want 503", resp.StatusCode, body)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("the ext_proc port accepts connections before the first bundle")
	}
	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("extproc exited %d when stopped while waiting, want %d (a clean stop)", code, ExitOK)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("extproc did not stop within 10s of cancel while waiting")
	}
}

// TestExtProcConfigFlags: a directory without route budgets is refused
// (exit 1) unless --allow-empty-config; subscription flags with --config
// are a usage error (exit 2).
func TestExtProcConfigFlags(t *testing.T) {
	empty := t.TempDir()
	code, _, errOut := run(t, context.Background(), "extproc", "--config", empty, "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0")
	if code != ExitFindings || !strings.Contains(errOut, "--allow-empty-config") {
		t.Errorf("extproc on an empty directory: exit %d, stderr %q; want %d naming --allow-empty-config", code, errOut, ExitFindings)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if code, _, errOut := run(t, ctx, "extproc", "--config", empty, "--allow-empty-config", "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"); code != ExitOK {
		t.Errorf("extproc --allow-empty-config on an empty directory: exit %d, stderr %q; want it to serve until stopped", code, errOut)
	}
	for _, extra := range [][]string{{"--verify-key", "k.pem"}, {"--environment", "prod"}, {"--allow-unsigned"}} {
		args := append([]string{"extproc", "--config", exampleDir, "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"}, extra...)
		if code, _, errOut := run(t, context.Background(), args...); code != ExitError || !strings.Contains(errOut, "apply to --control-plane") {
			t.Errorf("extproc --config with %v: exit %d, stderr %q; want a usage error", extra, code, errOut)
		}
	}
}

// TestTLSBetweenFilterAndControlPlane: a control plane serving mutual TLS
// and a filter following it with the CA and its own certificate; the
// filter becomes ready on a verified bundle. A filter without a client
// certificate never does.
func TestTLSBetweenFilterAndControlPlane(t *testing.T) {
	dir := t.TempDir()
	certs := testcerts.Write(t, dir, "hg")
	priv, pub, _, err := signing.WriteKeyPair(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	xdsAddr, adminAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	start := func(args ...string) *bytes.Buffer {
		var stderr bytes.Buffer
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code := Main(ctx, Env{Args: args, Stdout: &bytes.Buffer{}, Stderr: &stderr, Version: "test"}); code != ExitOK {
				t.Errorf("hopguard %s exited %d", args[0], code)
			}
		}()
		return &stderr
	}
	start("controlplane", "--config", exampleDir, "--xds-addr", xdsAddr, "--admin-addr", adminAddr,
		"--signing-key", priv, "--tls-cert", certs.ServerCert, "--tls-key", certs.ServerKey, "--tls-client-ca", certs.CA)
	waitStatus(t, "http://"+adminAddr+"/readyz", http.StatusOK)

	follow := func(extra ...string) string {
		metrics := freeAddr(t)
		start(append([]string{"extproc", "--control-plane", xdsAddr, "--verify-key", pub, "--environment", "dev-local",
			"--addr", freeAddr(t), "--metrics-addr", metrics, "--control-plane-ca", certs.CA}, extra...)...)
		return "http://" + metrics + "/readyz"
	}
	waitStatus(t, follow("--control-plane-cert", certs.ClientCert, "--control-plane-key", certs.ClientKey), http.StatusOK)

	noCert := follow()
	waitStatus(t, noCert, http.StatusServiceUnavailable)
	time.Sleep(500 * time.Millisecond) // a few connection attempts
	if resp, err := http.Get(noCert); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("a filter without a client certificate is ready (%d)", resp.StatusCode)
		}
	}
}
