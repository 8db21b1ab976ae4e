package cli

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/controlplane/configdump"
	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/controlplane/translate"
	"github.com/hopguard/hopguard/controlplane/xds"
)

const shopConfig = "../../examples/shop/config"

// shopDump is the config dump of a checkout sidecar running what the
// control plane serves, after change (nil: unchanged).
func shopDump(t *testing.T, change func(*translate.Resources)) []byte {
	t.Helper()
	return shopDumpAs(t, "checkout", "checkout-7", "checkout", change)
}

// shopDumpAs is the config dump of a node running what the control plane
// serves service, with the node id and node.cluster its bootstrap reports.
// (checkout is not declared in the example: it gets what an undeclared
// caller gets.)
func shopDumpAs(t *testing.T, service, nodeID, cluster string, change func(*translate.Resources)) []byte {
	t.Helper()
	cfg, _, err := v1alpha1.Load(shopConfig)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ir.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := translate.Translate(m, service, translate.Envoy, translate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	version, err := xds.Version(res)
	if err != nil {
		t.Fatal(err)
	}
	if change != nil {
		change(res)
	}
	raw, err := configdump.Encode(nodeID, cluster, res, version)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestDriftCommand(t *testing.T) {
	dir := t.TempDir()
	same := filepath.Join(dir, "same.json")
	if err := os.WriteFile(same, shopDump(t, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, context.Background(), "drift", "--config", shopConfig, "--envoy-config-dump", same)
	if code != ExitOK || !strings.Contains(out, "no drift") || !strings.Contains(out, "checkout-7") {
		t.Fatalf("unchanged dump: %d\n%s%s", code, out, errOut)
	}

	changed := shopDump(t, func(r *translate.Resources) {
		rc := r.Routes[0].(*routev3.RouteConfiguration)
		rc.VirtualHosts = rc.VirtualHosts[:len(rc.VirtualHosts)-1]
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/config_dump" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(changed)
	}))
	defer srv.Close()
	code, out, _ = run(t, context.Background(), "drift", "--config", shopConfig, "--envoy-config-dump", srv.URL+"/config_dump?include_eds")
	if code != ExitFindings || !strings.Contains(out, "DIFFERENT route") || !strings.Contains(out, "virtual_hosts") {
		t.Errorf("changed dump over HTTP: exit %d\n%s", code, out)
	}
	code, out, _ = run(t, context.Background(), "drift", "--config", shopConfig, "--envoy-config-dump", srv.URL+"/config_dump", "--format", "json")
	if code != ExitFindings || !strings.Contains(out, `"status": "different"`) {
		t.Errorf("json format: exit %d\n%s", code, out)
	}

	for name, args := range map[string][]string{
		"missing file": {"drift", "--config", shopConfig, "--envoy-config-dump", filepath.Join(dir, "nope.json")},
		"bad url":      {"drift", "--config", shopConfig, "--envoy-config-dump", srv.URL + "/missing"},
		"bad format":   {"drift", "--config", shopConfig, "--envoy-config-dump", same, "--format", "xml"},
	} {
		if code, _, _ := run(t, context.Background(), args...); code != ExitError {
			t.Errorf("%s: exit %d, want 2", name, code)
		}
	}
}

// TestDriftCommand_NodeAndServiceOverrides: --service picks the service to
// compare with (needed when the dump's bootstrap names none, and drift
// when it names another), --node only relabels the report.
func TestDriftCommand_NodeAndServiceOverrides(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, raw []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	anonymous := write("anonymous.json", shopDumpAs(t, "payments", "", "", nil))
	code, _, errOut := run(t, context.Background(), "drift", "--config", shopConfig, "--envoy-config-dump", anonymous)
	if code != ExitError || !strings.Contains(errOut, "--service") {
		t.Errorf("dump without node.cluster: exit %d, want 2 and a hint at --service\n%s", code, errOut)
	}
	code, out, errOut := run(t, context.Background(), "drift", "--config", shopConfig, "--envoy-config-dump", anonymous,
		"--service", "payments", "--node", "payments-from-flag")
	if code != ExitOK || !strings.Contains(out, "no drift") || !strings.Contains(out, "node payments-from-flag (service payments)") {
		t.Errorf("--service payments --node payments-from-flag: exit %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(errOut, "not declared") {
		t.Errorf("declared service noted as undeclared:\n%s", errOut)
	}
	// payments' resources compared with what orders would be served.
	same := write("same.json", shopDumpAs(t, "payments", "payments-1", "payments", nil))
	code, out, _ = run(t, context.Background(), "drift", "--config", shopConfig, "--envoy-config-dump", same, "--service", "orders")
	if code != ExitFindings || !strings.Contains(out, "(service orders)") {
		t.Errorf("--service orders on a payments dump: exit %d, want 1\n%s", code, out)
	}
	// An undeclared service is legitimate (a caller the mesh does not
	// declare gets outbound routes to everyone), but likely a typo: said.
	code, _, errOut = run(t, context.Background(), "drift", "--config", shopConfig, "--envoy-config-dump", same, "--service", "no-such-service")
	if code != ExitFindings || !strings.Contains(errOut, `service "no-such-service" is not declared`) {
		t.Errorf("undeclared --service: exit %d, want 1 and a note\n%s", code, errOut)
	}
}

// TestDriftCommand_URLTimeout: an admin endpoint that never answers is
// given up after --timeout, with exit 2. (Without the timeout the handler
// would hold the request until the test ends: the test would hang.)
func TestDriftCommand_URLTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	code, _, errOut := run(t, context.Background(), "drift", "--config", shopConfig,
		"--envoy-config-dump", srv.URL+"/config_dump", "--timeout", "200ms")
	if code != ExitError || !strings.Contains(errOut, "deadline exceeded") {
		t.Errorf("hanging admin endpoint: exit %d, want 2 and a deadline error\n%s", code, errOut)
	}
}
