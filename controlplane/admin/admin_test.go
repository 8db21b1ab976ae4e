package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/controlplane/metrics"
	"github.com/hopguard/hopguard/controlplane/xds"
	"github.com/hopguard/hopguard/policy/bundle"
)

type fakeSource struct {
	cfg   ConfigStatus
	nodes []xds.NodeStatus
	reg   *prometheus.Registry
}

func (f *fakeSource) Config() ConfigStatus          { return f.cfg }
func (f *fakeSource) Nodes() []xds.NodeStatus       { return f.nodes }
func (f *fakeSource) Gatherer() prometheus.Gatherer { return f.reg }

var (
	loadedAt = time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
	failedAt = loadedAt.Add(time.Minute)
)

func newSource(t *testing.T, loaded bool) *fakeSource {
	t.Helper()
	reg := prometheus.NewRegistry()
	if _, err := metrics.New(reg, metrics.BuildInfo{Version: "v0.0.1", Revision: "abc", GoVersion: "go1.26"}); err != nil {
		t.Fatal(err)
	}
	src := &fakeSource{reg: reg}
	if loaded {
		src.cfg = ConfigStatus{
			Mesh:    &ir.Mesh{Services: []*ir.Service{{Name: "payments", Namespace: "shop", Port: 8080}}},
			Version: "0123456789abcdef", PolicyHash: "fedcba9876543210",
			Files: []string{"mesh.yaml"}, LoadedAt: loadedAt,
			LastError: &LoadError{Message: "mesh.yaml:3:5: spec.retry.attempts: must be ≥ 1", At: failedAt},
		}
		src.nodes = []xds.NodeStatus{{ID: "p-1", Service: "payments", Flavor: "envoy", State: "acked",
			Expected: "0123456789abcdef", Acked: map[string]string{"listener": "0123456789abcdef"}}}
	}
	return src
}

func get(t *testing.T, h http.Handler, method, path string) (int, string, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	body, err := io.ReadAll(rec.Result().Body)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Code, rec.Header().Get("Content-Type"), string(body)
}

func decode(t *testing.T, body string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, body)
	}
	return v
}

func TestHandler_Success(t *testing.T) {
	h := Handler(newSource(t, true))
	tests := []struct {
		path     string
		wantCode int
		wantJSON any
	}{
		{"/readyz", http.StatusOK, map[string]any{
			"ready": true, "version": "0123456789abcdef", "loadedAt": "2025-03-04T10:00:00Z", "signing": "disabled",
			"lastError": map[string]any{"message": "mesh.yaml:3:5: spec.retry.attempts: must be ≥ 1", "at": "2025-03-04T10:01:00Z"},
		}},
		{"/nodes", http.StatusOK, []any{map[string]any{
			"id": "p-1", "service": "payments", "flavor": "envoy", "locality": map[string]any{},
			"connected": false, "drifted": false, "state": "acked", "expected": "0123456789abcdef",
			"acked":     map[string]any{"listener": "0123456789abcdef"},
			"firstSeen": "0001-01-01T00:00:00Z", "lastSeen": "0001-01-01T00:00:00Z",
		}}},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			code, ctype, body := get(t, h, http.MethodGet, tc.path)
			if code != tc.wantCode || ctype != "application/json" {
				t.Errorf("GET %s = %d %q, want %d application/json", tc.path, code, ctype, tc.wantCode)
			}
			if diff := cmp.Diff(decode(t, body), tc.wantJSON); diff != "" {
				t.Errorf("GET %s body (-got +want):\n%s", tc.path, diff)
			}
		})
	}
}

func TestHandlerConfigShowsMeshAndLastError(t *testing.T) {
	code, _, body := get(t, Handler(newSource(t, true)), http.MethodGet, "/config")
	if code != http.StatusOK {
		t.Fatalf("GET /config = %d, want 200", code)
	}
	got, ok := decode(t, body).(map[string]any)
	if !ok {
		t.Fatalf("GET /config body is not an object: %s", body)
	}
	for _, key := range []string{"mesh", "version", "policyHash", "files", "loadedAt", "lastError"} {
		if _, ok := got[key]; !ok {
			t.Errorf("GET /config lacks %q: %s", key, body)
		}
	}
	mesh, _ := got["mesh"].(map[string]any)
	services, _ := mesh["services"].([]any)
	if len(services) != 1 {
		t.Errorf("GET /config mesh.services = %v, want the one service", mesh["services"])
	}
	wantErr := map[string]any{"message": "mesh.yaml:3:5: spec.retry.attempts: must be ≥ 1", "at": "2025-03-04T10:01:00Z"}
	if diff := cmp.Diff(got["lastError"], any(wantErr)); diff != "" {
		t.Errorf("lastError (-got +want):\n%s", diff)
	}
}

func TestHandlerHealthzAndMetrics(t *testing.T) {
	h := Handler(newSource(t, false))
	code, _, body := get(t, h, http.MethodGet, "/healthz")
	if code != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz = %d %q, want 200 \"ok\\n\"", code, body)
	}
	code, _, body = get(t, h, http.MethodGet, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d, want 200", code)
	}
	for _, want := range []string{
		`hopguard_build_info{go_version="go1.26",revision="abc",version="v0.0.1"} 1`,
		`hopguard_xds_nodes{state="acked"} 0`,
		`hopguard_config_reloads_total{result="invalid"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /metrics lacks %q", want)
		}
	}
}

func TestHandler_Errors(t *testing.T) {
	h := Handler(newSource(t, false))
	tests := []struct {
		method, path string
		wantCode     int
	}{
		{http.MethodGet, "/readyz", http.StatusServiceUnavailable},
		{http.MethodPost, "/config", http.StatusMethodNotAllowed},
		{http.MethodGet, "/nope", http.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			if code, _, body := get(t, h, tc.method, tc.path); code != tc.wantCode {
				t.Errorf("%s %s = %d, want %d\n%s", tc.method, tc.path, code, tc.wantCode, body)
			}
		})
	}
	_, _, body := get(t, h, http.MethodGet, "/readyz")
	want := map[string]any{"ready": false, "signing": "disabled"}
	if diff := cmp.Diff(decode(t, body), any(want)); diff != "" {
		t.Errorf("GET /readyz before any config (-got +want):\n%s", diff)
	}
	_, _, body = get(t, h, http.MethodGet, "/nodes")
	if diff := cmp.Diff(decode(t, body), any([]any{})); diff != "" {
		t.Errorf("GET /nodes without nodes (-got +want):\n%s", diff)
	}
}

// erringOperator is a Source and Operator whose overrides fail with err.
type erringOperator struct {
	*fakeSource
	err error
}

func (o *erringOperator) Manifests() []bundle.Manifest        { return nil }
func (o *erringOperator) BundleJSON() []byte                  { return nil }
func (o *erringOperator) Quarantine() []xds.ServiceQuarantine { return nil }
func (o *erringOperator) Pin(uint64, string) (uint64, error)  { return 0, o.err }
func (o *erringOperator) Unpin(string) (uint64, error)        { return 0, o.err }
func (o *erringOperator) Freeze(bool, string) (uint64, error) { return 0, o.err }

// TestOverrideErrorStatus: an override's error kind picks the status, and
// an error of no kind is the server's (500), not the caller's conflict.
func TestOverrideErrorStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		path string
		want int
	}{
		{fmt.Errorf("unknown generation 7: %w", ErrNotFound), "/pin?generation=7", http.StatusNotFound},
		{fmt.Errorf("not pinned: %w", ErrConflict), "/unpin", http.StatusConflict},
		{fmt.Errorf("no audit log: %w", ErrUnsupported), "/pin?generation=7", http.StatusNotImplemented},
		{errors.New("disk full"), "/freeze", http.StatusInternalServerError},
		{nil, "/pin?generation=x", http.StatusBadRequest},
	} {
		h := Handler(&erringOperator{fakeSource: newSource(t, true), err: tc.err})
		code, ctype, body := get(t, h, http.MethodPost, tc.path)
		if code != tc.want || ctype != "application/json" || !strings.Contains(body, `"error"`) {
			t.Errorf("POST %s failing with %v: %d %s %q, want %d with a JSON error", tc.path, tc.err, code, ctype, body, tc.want)
		}
	}
}
