package ir

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/policy"
)

// svc is a Service document for tests.
func svc(name string, proto v1alpha1.Protocol, port int, deps []string, eps ...string) *v1alpha1.Service {
	s := &v1alpha1.Service{
		TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindService},
		Metadata: v1alpha1.ObjectMeta{Name: name, Namespace: "shop"},
		Spec:     v1alpha1.ServiceSpec{Protocol: proto, Port: port, DependsOn: deps},
	}
	for _, e := range eps {
		s.Spec.Endpoints = append(s.Spec.Endpoints, v1alpha1.Endpoint{Address: e})
	}
	return s
}

// budget is a RouteBudget document for tests.
func budget(name, service string, match v1alpha1.Match) *v1alpha1.RouteBudget {
	return &v1alpha1.RouteBudget{
		TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindRouteBudget},
		Metadata: v1alpha1.ObjectMeta{Name: name, Namespace: "shop"},
		Spec:     v1alpha1.RouteBudgetSpec{Service: service, Match: match},
	}
}

// defaulted returns cfg after the api defaults, as Load would hand it over.
func defaulted(t *testing.T, cfg *v1alpha1.Config) *v1alpha1.Config {
	t.Helper()
	v1alpha1.SetDefaults(cfg)
	return cfg
}

// defaultRoute is the compiled policy of a fully defaulted gRPC route.
func defaultRoute(id, service string, m policy.Match) policy.Route {
	return policy.Route{
		ID: id, Service: service, Match: m,
		Deadline: policy.Deadline{Default: time.Second, Max: time.Second, MinRemaining: 5 * time.Millisecond},
		Retry: policy.Retry{
			Authority: policy.AuthorityMesh, Attempts: 2,
			On:          []string{"unavailable", "reset", "connect-failure"},
			BackoffBase: 25 * time.Millisecond, BackoffMax: 250 * time.Millisecond,
			MinRemainingAuto: true, BudgetRatio: 0.2, BudgetMinPerSecond: 5,
		},
		SideEffects: true,
		Idempotency: policy.Idempotency{Require: policy.RequireRetries, Header: "idempotency-key", TTL: 24 * time.Hour,
			OnStoreFailure: policy.StoreFailureClosed, FingerprintBody: true},
	}
}

// compiled wraps a policy with its digest.
func compiled(p policy.Route) *Route { return &Route{Policy: p, Digest: p.Digest()} }

// defaultMesh is the IR of a defaulted MeshConfig plus services.
func defaultMesh(services ...*Service) *Mesh {
	return &Mesh{
		Policy:   policy.Mesh{ClockSkew: 10 * time.Millisecond, PrincipalHeader: "x-forwarded-client-cert"},
		ExtProc:  ExtProc{Enabled: true, Address: "127.0.0.1:18001", Timeout: 200 * time.Millisecond, FailureMode: FailureAuto},
		Drift:    Drift{MaxQuarantinePercent: 20},
		Services: services,
	}
}

func TestBuild_Success(t *testing.T) {
	tests := []struct {
		name string
		cfg  func() *v1alpha1.Config
		want *Mesh
	}{
		{
			name: "services sorted, endpoints and dns parsed, dependsOn sorted",
			cfg: func() *v1alpha1.Config {
				orders := svc("orders", v1alpha1.ProtocolHTTP, 8080, []string{"payments", "ledger", "payments"})
				orders.Spec.DNS = "orders.shop.svc:8080"
				payments := svc("payments", v1alpha1.ProtocolGRPC, 9000, nil, "10.0.0.2:9000", "[::1]:9001")
				payments.Spec.Endpoints[0].Locality = v1alpha1.Locality{Region: "eu", Zone: "a"}
				payments.Spec.Endpoints[0].Weight = 3
				return &v1alpha1.Config{Services: []*v1alpha1.Service{
					payments, orders, svc("ledger", v1alpha1.ProtocolGRPC, 9100, nil, "10.0.0.9:9100"),
				}}
			},
			want: defaultMesh(
				&Service{Name: "ledger", Namespace: "shop", GRPC: true, Port: 9100,
					Endpoints: []Endpoint{{Host: "10.0.0.9", Port: 9100, Weight: 1}}},
				&Service{Name: "orders", Namespace: "shop", Port: 8080, DNSHost: "orders.shop.svc", DNSPort: 8080,
					DependsOn: []string{"ledger", "payments"}},
				&Service{Name: "payments", Namespace: "shop", GRPC: true, Port: 9000, Endpoints: []Endpoint{
					{Host: "10.0.0.2", Port: 9000, Region: "eu", Zone: "a", Weight: 3},
					{Host: "::1", Port: 9001, Weight: 1},
				}},
			),
		},
		{
			name: "routes compiled and ordered most specific first",
			cfg: func() *v1alpha1.Config {
				all := budget("all", "payments", v1alpha1.Match{GRPCMethod: "shop.Payments/*"})
				charge := budget("charge", "payments", v1alpha1.Match{GRPCMethod: "shop.Payments/Charge"})
				charge.Spec.Retry = v1alpha1.Retry{Authority: v1alpha1.AuthorityApp, Attempts: 3, On: []string{"unavailable", "503"},
					PerTryTimeout: v1alpha1.Duration(200 * time.Millisecond)}
				charge.Spec.Deadline = v1alpha1.Deadline{Default: v1alpha1.Duration(800 * time.Millisecond), Max: v1alpha1.Duration(2 * time.Second)}
				charge.Spec.Idempotency = v1alpha1.Idempotency{Header: "X-Request-Key", OnDuplicate: v1alpha1.DuplicateReplay, Require: v1alpha1.RequireAlways}
				charge.Spec.Mode = v1alpha1.ModeDryRun
				short := budget("short", "payments", v1alpha1.Match{GRPCMethod: "shop.P/*"})
				return &v1alpha1.Config{
					Services:     []*v1alpha1.Service{svc("payments", v1alpha1.ProtocolGRPC, 9000, nil, "10.0.0.2:9000")},
					RouteBudgets: []*v1alpha1.RouteBudget{short, all, charge},
				}
			},
			want: func() *Mesh {
				charge := defaultRoute("shop/charge", "payments", policy.Match{GRPCService: "shop.Payments", GRPCMethod: "Charge"})
				charge.Deadline.Default, charge.Deadline.Max = 800*time.Millisecond, 2*time.Second
				charge.Retry.Authority, charge.Retry.Attempts = policy.AuthorityApp, 3
				charge.Retry.On = []string{"unavailable", "503"}
				charge.Retry.PerTryTimeout = 200 * time.Millisecond
				charge.Idempotency = policy.Idempotency{Require: policy.RequireAlways, Header: "x-request-key", TTL: 24 * time.Hour, Replay: true,
					OnStoreFailure: policy.StoreFailureClosed, FingerprintBody: true}
				charge.DryRun = true
				return defaultMesh(&Service{
					Name: "payments", Namespace: "shop", GRPC: true, Port: 9000,
					Endpoints: []Endpoint{{Host: "10.0.0.2", Port: 9000, Weight: 1}},
					Routes: []*Route{
						compiled(charge),
						compiled(defaultRoute("shop/all", "payments", policy.Match{GRPCService: "shop.Payments", GRPCMethod: "*"})),
						compiled(defaultRoute("shop/short", "payments", policy.Match{GRPCService: "shop.P", GRPCMethod: "*"})),
					},
				})
			}(),
		},
		{
			name: "mesh config compiled",
			cfg: func() *v1alpha1.Config {
				q := 30
				return &v1alpha1.Config{Mesh: &v1alpha1.MeshConfig{Spec: v1alpha1.MeshConfigSpec{
					Environment:     "prod-eu-1",
					PrincipalHeader: "X-Caller",
					ChangeWindows:   []v1alpha1.ChangeWindow{{Days: []string{"Fri", "Mon", "Mon"}, From: "09:00", To: "17:30"}},
					Drift:           v1alpha1.Drift{Action: v1alpha1.DriftQuarantine, MaxQuarantinePercent: &q},
					ExtProc:         v1alpha1.ExtProc{Address: "extproc:9000", Timeout: v1alpha1.Duration(time.Second), FailOpen: ptr(true), Disabled: true},
				}}}
			},
			want: &Mesh{
				Policy:  policy.Mesh{Environment: "prod-eu-1", ClockSkew: 10 * time.Millisecond, PrincipalHeader: "x-caller", DriftQuarantine: true},
				ExtProc: ExtProc{Address: "extproc:9000", Timeout: time.Second, FailureMode: FailureOpen},
				Drift:   Drift{Quarantine: true, MaxQuarantinePercent: 30},
				ChangeWindows: []ChangeWindow{{
					Days: []time.Weekday{time.Monday, time.Friday}, From: 9 * 60, To: 17*60 + 30,
					FromText: "09:00", ToText: "17:30", Timezone: "UTC",
				}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Build(defaulted(t, tt.cfg()))
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("Build mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

func TestBuild_Errors(t *testing.T) {
	tests := []struct {
		name    string
		cfg     func() *v1alpha1.Config
		wantErr []string
		is      error
	}{
		{
			name: "route of unknown service",
			cfg: func() *v1alpha1.Config {
				return &v1alpha1.Config{RouteBudgets: []*v1alpha1.RouteBudget{budget("r", "ghost", v1alpha1.Match{Path: "/x"})}}
			},
			wantErr: []string{`ir: route shop/r: unknown service "ghost"`},
		},
		{
			name: "bad addresses and ports, all reported",
			cfg: func() *v1alpha1.Config {
				a := svc("a", v1alpha1.ProtocolGRPC, 0, nil, "host-name:80", "10.0.0.1:0")
				b := svc("b", v1alpha1.ProtocolHTTP, 80, nil)
				b.Spec.DNS = "no-port"
				return &v1alpha1.Config{Services: []*v1alpha1.Service{a, b}}
			},
			wantErr: []string{`service shop/a: port: ir: port "0"`, `endpoints[0]: ir: address "host-name:80"`, `endpoints[1]: ir: address "10.0.0.1:0": port 0`, `service shop/b: dns "no-port"`},
		},
		{
			name: "malformed grpc method and grpc method on http service",
			cfg: func() *v1alpha1.Config {
				return &v1alpha1.Config{
					Services: []*v1alpha1.Service{svc("g", v1alpha1.ProtocolGRPC, 80, nil), svc("h", v1alpha1.ProtocolHTTP, 80, nil)},
					RouteBudgets: []*v1alpha1.RouteBudget{
						budget("bad", "g", v1alpha1.Match{GRPCMethod: "NoSlash"}),
						budget("onhttp", "h", v1alpha1.Match{GRPCMethod: "a.B/C"}),
					},
				}
			},
			wantErr: []string{`route shop/bad: ir: grpcMethod "NoSlash"`, `route shop/onhttp: ir: grpcMethod "a.B/C" on an http service`},
		},
		{
			name: "dependsOn unknown service fails Validate",
			cfg: func() *v1alpha1.Config {
				return &v1alpha1.Config{Services: []*v1alpha1.Service{svc("a", v1alpha1.ProtocolGRPC, 80, []string{"zzz"})}}
			},
			wantErr: []string{`dependsOn names unknown service "zzz"`},
			is:      ErrInvalid,
		},
		{
			name: "duplicate service",
			cfg: func() *v1alpha1.Config {
				return &v1alpha1.Config{Services: []*v1alpha1.Service{svc("a", v1alpha1.ProtocolGRPC, 80, nil), svc("a", v1alpha1.ProtocolGRPC, 81, nil)}}
			},
			wantErr: []string{"ir: service shop/a declared twice"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build(defaulted(t, tt.cfg()))
			if err == nil {
				t.Fatal("Build: got nil error")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Build error %q\ndoes not contain %q", err, want)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Build error does not wrap %v", tt.is)
			}
		})
	}
}

func TestBuild_ErrorsNotDefaulted(t *testing.T) {
	cfg := &v1alpha1.Config{
		Services:     []*v1alpha1.Service{svc("a", v1alpha1.ProtocolGRPC, 80, nil)},
		RouteBudgets: []*v1alpha1.RouteBudget{budget("r", "a", v1alpha1.Match{GRPCMethod: "a.A/B"})},
	}
	_, err := Build(cfg)
	if !errors.Is(err, ErrNotDefaulted) {
		t.Fatalf("Build of an undefaulted config: got %v, want an error wrapping ErrNotDefaulted", err)
	}
	for _, want := range []string{"no MeshConfig", "retry.budget.ratio unset", "sideEffects unset"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := Build(nil); err == nil {
		t.Error("Build(nil): got nil error")
	}
}

func TestSortRoutes(t *testing.T) {
	r := func(id string, m policy.Match) *Route { return &Route{Policy: policy.Route{ID: id, Match: m}} }
	routes := []*Route{
		r("p/short", policy.Match{PathPrefix: "/a"}),
		r("p/any-method", policy.Match{Path: "/x"}),
		r("p/long", policy.Match{PathPrefix: "/a/b/c"}),
		r("p/post", policy.Match{Path: "/x", Methods: []string{"POST"}}),
		r("p/grpc-all", policy.Match{GRPCService: "s.S", GRPCMethod: "*"}),
		r("p/grpc-one", policy.Match{GRPCService: "s.S", GRPCMethod: "M"}),
		r("b/same-prefix", policy.Match{PathPrefix: "/zz"}),
		r("a/same-prefix", policy.Match{PathPrefix: "/yy"}),
	}
	SortRoutes(routes)
	var got []string
	for _, r := range routes {
		got = append(got, r.Policy.ID)
	}
	want := []string{"p/grpc-one", "p/post", "p/any-method", "p/long", "p/grpc-all", "a/same-prefix", "b/same-prefix", "p/short"}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("SortRoutes order (-got +want):\n%s", diff)
	}
}

func ptr[T any](v T) *T { return &v }
