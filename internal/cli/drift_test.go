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
	cfg, _, err := v1alpha1.Load(shopConfig)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ir.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := translate.Translate(m, "checkout", translate.Envoy, translate.Options{})
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
	raw, err := configdump.Encode("checkout-7", "checkout", res, version)
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
