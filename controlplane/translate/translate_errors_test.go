package translate

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	"github.com/hopguard/hopguard/controlplane/ir"
)

func TestTranslate_Errors(t *testing.T) {
	tests := []struct {
		name    string
		mesh    func(t *testing.T) *ir.Mesh
		node    string
		flavor  Flavor
		wantErr []string
	}{
		{"nil mesh", func(*testing.T) *ir.Mesh { return nil }, "a", Envoy, []string{"translate: nil mesh"}},
		{"empty service", testMesh, "", Envoy, []string{"translate: empty service name"}},
		{"unknown flavor", testMesh, "payments", Flavor(7), []string{"translate: unknown flavor Flavor(7)"}},
		{"unknown dependency", func(t *testing.T) *ir.Mesh {
			m := testMesh(t)
			m.Services[1].DependsOn = []string{"ghost"}
			return m
		}, "payments", Envoy, []string{`translate: service "payments" depends on unknown service "ghost"`}},
		{"bad retry conditions, all reported", func(t *testing.T) *ir.Mesh {
			m := testMesh(t)
			m.Services[1].Routes[0].Policy.Retry.On = []string{"bogus"}
			m.Services[2].Routes[0].Policy.Retry.On = []string{"777"}
			return m
		}, "stranger", Proxyless, []string{
			`translate: route "shop/mesh": unknown retry condition "bogus"`,
			`translate: route "shop/web": retry condition "777" is not an HTTP status code`,
		}},
		{"resources failing ValidateAll", func(t *testing.T) *ir.Mesh {
			m := testMesh(t)
			m.Services[0].Endpoints[0].Host = ""
			m.Services[1].Routes[0].Policy.Retry.BackoffBase = 0
			return m
		}, "stranger", Envoy, []string{
			`translate: cluster load assignment "outbound|ledger": invalid ClusterLoadAssignment.Endpoints[0]`,
			`translate: route configuration "outbound|stranger": invalid RouteConfiguration.VirtualHosts[1]`,
		}},
		{"bad ext_proc address", func(t *testing.T) *ir.Mesh {
			m := testMesh(t)
			m.ExtProc.Address = "no-port"
			return m
		}, "payments", Envoy, []string{`translate: ext_proc address "no-port"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Translate(tt.mesh(t), tt.node, tt.flavor, Options{})
			if err == nil {
				t.Fatalf("Translate: got nil error and %d listeners", len(res.Listeners))
			}
			if res != nil {
				t.Errorf("Translate returned resources with an error")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q\ndoes not contain %q", err, want)
				}
			}
		})
	}
}

func TestRetryOn_Success(t *testing.T) {
	tests := []struct {
		in        []string
		wantOn    string
		wantCodes []uint32
	}{
		{[]string{"unavailable"}, "unavailable", nil},
		{[]string{"Unavailable", "reset", "connect-failure", "refused-stream"}, "unavailable,reset,connect-failure,refused-stream", nil},
		{[]string{"5xx", "gateway-error", "retriable-4xx", "cancelled", "deadline-exceeded", "internal", "resource-exhausted"},
			"5xx,gateway-error,retriable-4xx,cancelled,deadline-exceeded,internal,resource-exhausted", nil},
		{[]string{"503", "reset", "429", "503"}, "retriable-status-codes,reset", []uint32{503, 429}},
	}
	for _, tt := range tests {
		on, codes, err := retryOn(tt.in)
		if err != nil {
			t.Errorf("retryOn(%v): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff([]any{on, codes}, []any{tt.wantOn, tt.wantCodes}); diff != "" {
			t.Errorf("retryOn(%v) (-got +want):\n%s", tt.in, diff)
		}
	}
}

func TestRetryOn_Errors(t *testing.T) {
	for _, in := range [][]string{nil, {"bogus"}, {"99"}, {"600"}, {"unavailable", "retry-everything"}} {
		if on, _, err := retryOn(in); err == nil {
			t.Errorf("retryOn(%v) = %q, want an error", in, on)
		}
	}
}

// TestTranslate_Deterministic: the same IR gives byte-identical
// deterministic marshals, so snapshot versions are stable.
func TestTranslate_Deterministic(t *testing.T) {
	marshalAll := func(res *Resources) [][]byte {
		var out [][]byte
		for _, sec := range res.Sections() {
			for _, r := range sec.Resources {
				b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, b)
			}
		}
		return out
	}
	for _, f := range []Flavor{Envoy, Proxyless} {
		first := marshalAll(translate(t, testMesh(t), "stranger", f))
		for range 5 {
			if diff := cmp.Diff(marshalAll(translate(t, testMesh(t), "stranger", f)), first); diff != "" {
				t.Fatalf("%v: output differs between runs (-got +want):\n%s", f, diff)
			}
		}
	}
}

func TestResourcesYAML(t *testing.T) {
	res := translate(t, testMesh(t), "payments", Envoy)
	b, err := res.YAML()
	if err != nil {
		t.Fatal(err)
	}
	var tops []string
	for _, line := range strings.Split(string(b), "\n") {
		if line != "" && line[0] != ' ' && line[0] != '-' {
			tops = append(tops, line)
		}
	}
	if diff := cmp.Diff(tops, []string{"listeners:", "routes:", "clusters:", "endpoints:"}); diff != "" {
		t.Errorf("top-level keys (-got +want):\n%s", diff)
	}
	for _, want := range []string{"allow_envoy: true", "x-hopguard-route", "include_request_attempt_count: true", "'@type': type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("YAML lacks %q", want)
		}
	}
	empty, err := (&Resources{}).YAML()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(empty), "listeners: []\nroutes: []\nclusters: []\nendpoints: []\n"); diff != "" {
		t.Errorf("empty YAML (-got +want):\n%s", diff)
	}
}
