package engine

import (
	"testing"
	"time"
)

func TestAttemptsOf(t *testing.T) {
	tests := []struct {
		name      string
		facts     Facts
		wantN     int
		wantLayer Layer
		wantMesh  bool
		wantApp   bool
	}{
		{"first attempt", Facts{}, 1, LayerFirst, false, false},
		{"explicit first attempts", Facts{EnvoyAttemptCount: 1, HopguardAttempt: 1}, 1, LayerFirst, false, false},
		{"envoy retry is mesh", Facts{EnvoyAttemptCount: 2}, 2, LayerMesh, true, false},
		{"proxyless grpc retry is mesh", Facts{Proxyless: true, GRPCPreviousAttempts: 1}, 2, LayerMesh, true, false},
		{"grpc retry behind sidecar is app", Facts{GRPCPreviousAttempts: 2}, 3, LayerApp, false, true},
		{"grpc retry behind both sidecars is app", Facts{GRPCPreviousAttempts: 1, EnvoyAttemptCount: 1, HopguardDeadline: time.Unix(1_800_000_000, 0)}, 2, LayerApp, false, true},
		// A proxyless client of the mesh calling a callee behind a sidecar:
		// its filter stamped the deadline, no caller-side Envoy counted.
		{"proxyless caller's xds retry at a sidecar is mesh", Facts{GRPCPreviousAttempts: 1, HopguardDeadline: time.Unix(1_800_000_000, 0)}, 2, LayerMesh, true, false},
		{"hopguard attempt is app", Facts{HopguardAttempt: 2}, 2, LayerApp, false, true},
		{"largest wins: app", Facts{EnvoyAttemptCount: 2, HopguardAttempt: 3}, 3, LayerApp, true, true},
		{"largest wins: mesh", Facts{EnvoyAttemptCount: 3, HopguardAttempt: 2}, 3, LayerMesh, true, true},
		{"tie reports mesh", Facts{EnvoyAttemptCount: 2, HopguardAttempt: 2}, 2, LayerMesh, true, true},
		{"absurd previous attempts capped", Facts{Proxyless: true, GRPCPreviousAttempts: 1 << 40}, MaxAttempt, LayerMesh, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := attemptsOf(&tt.facts)
			if got := a.number(); got != tt.wantN {
				t.Errorf("number() = %d, want %d", got, tt.wantN)
			}
			if got := a.layer(); got != tt.wantLayer {
				t.Errorf("layer() = %v, want %v", got, tt.wantLayer)
			}
			if got := a.retried(LayerMesh); got != tt.wantMesh {
				t.Errorf("retried(mesh) = %v, want %v", got, tt.wantMesh)
			}
			if got := a.retried(LayerApp); got != tt.wantApp {
				t.Errorf("retried(app) = %v, want %v", got, tt.wantApp)
			}
			if a.retried(LayerFirst) {
				t.Error("retried(first) = true")
			}
		})
	}
}
