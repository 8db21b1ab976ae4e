package v1alpha1

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSetDefaults(t *testing.T) {
	ms := func(n int) Duration { return Duration(time.Duration(n) * time.Millisecond) }
	mesh := func() *MeshConfig {
		return &MeshConfig{
			TypeMeta: TypeMeta{APIVersion: APIVersion, Kind: KindMeshConfig},
			Metadata: ObjectMeta{Name: "default", Namespace: "default"},
			Spec: MeshConfigSpec{
				ClockSkew:       ms(10),
				PrincipalHeader: "x-forwarded-client-cert",
				Drift:           Drift{Action: DriftAlert, MaxQuarantinePercent: new(20)},
				ExtProc:         ExtProc{Address: "127.0.0.1:18001", Timeout: ms(200)},
			},
		}
	}
	// route returns a fully defaulted spec for a route on a gRPC service.
	route := func(m Match, sideEffects bool, require IdempotencyRequire) RouteBudgetSpec {
		onStoreFailure := StoreFailureOpen
		if sideEffects {
			onStoreFailure = StoreFailureClosed
		}
		return RouteBudgetSpec{
			Service:  "s",
			Match:    m,
			Deadline: Deadline{Default: ms(1000), Max: ms(1000), MinRemaining: ms(5)},
			Retry: Retry{
				Authority:    AuthorityMesh,
				Attempts:     2,
				On:           []string{"unavailable", "reset", "connect-failure"},
				Backoff:      Backoff{Base: ms(25), Max: ms(250)},
				MinRemaining: MinRemaining{Auto: true},
				Budget:       Budget{Ratio: new(0.2), MinPerSecond: new(5)},
			},
			SideEffects: new(sideEffects),
			Idempotency: Idempotency{Require: require, Header: "Idempotency-Key", TTL: Duration(24 * time.Hour), OnDuplicate: DuplicateReject, OnStoreFailure: onStoreFailure,
				Fingerprint: Fingerprint{Body: new(true)}},
			Mode: ModeEnforce,
		}
	}
	rbs := func(specs ...RouteBudgetSpec) []*RouteBudget {
		var out []*RouteBudget
		for _, s := range specs {
			out = append(out, &RouteBudget{Metadata: ObjectMeta{Name: "r", Namespace: "default"}, Spec: s})
		}
		return out
	}
	grpcSvc := func() []*Service {
		return []*Service{{Metadata: ObjectMeta{Name: "s", Namespace: "default"}, Spec: ServiceSpec{Protocol: ProtocolGRPC, Port: 1, DNS: "s:1"}}}
	}
	tests := []struct {
		name string
		in   *Config
		want *Config
	}{
		{
			name: "empty config gets a default mesh",
			in:   &Config{},
			want: &Config{Mesh: mesh()},
		},
		{
			name: "service protocol, namespace and weights",
			in: &Config{Services: []*Service{{Metadata: ObjectMeta{Name: "s"}, Spec: ServiceSpec{Port: 1, Endpoints: []Endpoint{{Address: "a"}, {Address: "b", Weight: 3}}}}},
				Mesh: &MeshConfig{Metadata: ObjectMeta{Name: "m", Namespace: "ops"}, Spec: MeshConfigSpec{ClockSkew: ms(1), ChangeWindows: []ChangeWindow{{Days: []string{"Mon"}}}, Drift: Drift{MaxQuarantinePercent: new(0)}}}},
			want: &Config{Services: []*Service{{Metadata: ObjectMeta{Name: "s", Namespace: "default"}, Spec: ServiceSpec{Protocol: ProtocolGRPC, Port: 1, Endpoints: []Endpoint{{Address: "a", Weight: 1}, {Address: "b", Weight: 3}}}}},
				Mesh: &MeshConfig{Metadata: ObjectMeta{Name: "m", Namespace: "ops"}, Spec: MeshConfigSpec{
					ClockSkew: ms(1), PrincipalHeader: "x-forwarded-client-cert",
					ChangeWindows: []ChangeWindow{{Days: []string{"Mon"}, Timezone: "UTC"}},
					Drift:         Drift{Action: DriftAlert, MaxQuarantinePercent: new(0)},
					ExtProc:       ExtProc{Address: "127.0.0.1:18001", Timeout: ms(200)},
				}}},
		},
		{
			name: "side effects by match",
			in: &Config{Services: grpcSvc(), RouteBudgets: rbs(
				RouteBudgetSpec{Service: "s", Match: Match{GRPCMethod: "a.B/C"}},
				RouteBudgetSpec{Service: "s", Match: Match{Path: "/a"}},
				RouteBudgetSpec{Service: "s", Match: Match{Path: "/a", Methods: []string{"GET", "PATCH"}}},
				RouteBudgetSpec{Service: "s", Match: Match{PathPrefix: "/a", Methods: []string{"GET", "PUT"}}},
				RouteBudgetSpec{Service: "s", Match: Match{Path: "/b", Methods: []string{"POST"}}, SideEffects: new(false)},
			)},
			want: &Config{Services: grpcSvc(), Mesh: mesh(), RouteBudgets: rbs(
				route(Match{GRPCMethod: "a.B/C"}, true, RequireRetries),
				route(Match{Path: "/a"}, true, RequireRetries),
				route(Match{Path: "/a", Methods: []string{"GET", "PATCH"}}, true, RequireRetries),
				route(Match{PathPrefix: "/a", Methods: []string{"GET", "PUT"}}, false, RequireNever),
				route(Match{Path: "/b", Methods: []string{"POST"}}, false, RequireNever),
			)},
		},
		{
			name: "deadline max follows default, backoff max follows base, set values stay",
			in: &Config{Services: grpcSvc(), RouteBudgets: rbs(RouteBudgetSpec{
				Service:  "s",
				Match:    Match{GRPCMethod: "a.B/C"},
				Deadline: Deadline{Default: ms(300)},
				Retry:    Retry{Attempts: 1, Backoff: Backoff{Base: ms(40)}, MinRemaining: MinRemaining{Value: ms(7), Set: true}, Budget: Budget{Ratio: new(0.0)}},
				Mode:     ModeDryRun,
			})},
			want: &Config{Services: grpcSvc(), Mesh: mesh(), RouteBudgets: rbs(func() RouteBudgetSpec {
				s := route(Match{GRPCMethod: "a.B/C"}, true, RequireRetries)
				s.Deadline = Deadline{Default: ms(300), Max: ms(300), MinRemaining: ms(5)}
				s.Retry.Attempts = 1
				s.Retry.Backoff = Backoff{Base: ms(40), Max: ms(400)}
				s.Retry.MinRemaining = MinRemaining{Value: ms(7), Set: true}
				s.Retry.Budget.Ratio = new(0.0)
				s.Mode = ModeDryRun
				return s
			}())},
		},
		{
			name: "http services default to HTTP retry conditions",
			in: &Config{
				Services:     []*Service{{Metadata: ObjectMeta{Name: "h", Namespace: "web"}, Spec: ServiceSpec{Protocol: ProtocolHTTP}}},
				RouteBudgets: []*RouteBudget{{Metadata: ObjectMeta{Name: "r", Namespace: "web"}, Spec: RouteBudgetSpec{Service: "h", Match: Match{Path: "/"}}}},
			},
			want: &Config{
				Services: []*Service{{Metadata: ObjectMeta{Name: "h", Namespace: "web"}, Spec: ServiceSpec{Protocol: ProtocolHTTP}}},
				RouteBudgets: []*RouteBudget{{Metadata: ObjectMeta{Name: "r", Namespace: "web"}, Spec: func() RouteBudgetSpec {
					s := route(Match{Path: "/"}, true, RequireRetries)
					s.Service = "h"
					s.Retry.On = []string{"gateway-error", "reset", "connect-failure"}
					return s
				}()}},
				Mesh: mesh(),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			SetDefaults(tc.in)
			if diff := cmp.Diff(tc.in, tc.want); diff != "" {
				t.Errorf("SetDefaults() (-got +want):\n%s", diff)
			}
			SetDefaults(tc.in) // idempotent
			if diff := cmp.Diff(tc.in, tc.want); diff != "" {
				t.Errorf("second SetDefaults() (-got +want):\n%s", diff)
			}
		})
	}
	SetDefaults(nil) // must not panic
}
