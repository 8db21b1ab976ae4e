package ir

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hopguard/hopguard/policy"
)

// validMesh is a small mesh that passes Validate.
func validMesh() *Mesh {
	return defaultMesh(
		&Service{Name: "ledger", Namespace: "shop", GRPC: true, Port: 9100,
			Endpoints: []Endpoint{{Host: "10.0.0.9", Port: 9100, Weight: 1}},
			Routes:    []*Route{compiled(defaultRoute("shop/post", "ledger", policy.Match{GRPCService: "l.L", GRPCMethod: "Post"}))}},
		&Service{Name: "payments", Namespace: "shop", GRPC: true, Port: 9000, DependsOn: []string{"ledger"},
			DNSHost: "payments", DNSPort: 9000},
	)
}

func TestMeshValidate_Success(t *testing.T) {
	if err := validMesh().Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	m := validMesh()
	m.ExtProc = ExtProc{} // disabled: address and timeout are not needed
	if err := m.Validate(); err != nil {
		t.Fatalf("Validate with ext_proc disabled: %v", err)
	}
}

func TestMeshValidate_Errors(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(m *Mesh)
		wantErr []string
	}{
		{"duplicate names", func(m *Mesh) { m.Services[1].Name = "ledger" }, []string{`service name "ledger" used twice`}},
		{"unsorted", func(m *Mesh) { m.Services[0], m.Services[1] = m.Services[1], m.Services[0] }, []string{"not sorted"}},
		{"zero ports", func(m *Mesh) {
			m.Services[0].Port = 0
			m.Services[0].Endpoints[0].Port = 0
			m.Services[1].DNSPort = 0
		}, []string{`"ledger": port 0`, "endpoints[0]: needs host, port and weight", "dns port 0"}},
		{"endpoints and dns", func(m *Mesh) { m.Services[0].DNSHost, m.Services[0].DNSPort = "x", 1 }, []string{"both endpoints and dns"}},
		{"unknown dependency", func(m *Mesh) { m.Services[1].DependsOn = []string{"ghost"} }, []string{`unknown service "ghost"`}},
		{"invalid policy", func(m *Mesh) {
			p := &m.Services[0].Routes[0].Policy
			p.Retry.Attempts = 0
			m.Services[0].Routes[0].Digest = p.Digest()
		}, []string{"attempts 0 < 1"}},
		{"stale digest", func(m *Mesh) { m.Services[0].Routes[0].Policy.Deadline.Max = time.Hour }, []string{"stale digest"}},
		{"route of other service", func(m *Mesh) {
			m.Services[1].Routes = []*Route{compiled(defaultRoute("shop/x", "ledger", policy.Match{Path: "/x"}))}
		}, []string{`route "shop/x" belongs to service "ledger"`}},
		{"duplicate route id", func(m *Mesh) {
			m.Services[1].Routes = []*Route{compiled(defaultRoute("shop/post", "payments", policy.Match{Path: "/x"}))}
		}, []string{`route id "shop/post" also used`}},
		{"ext_proc", func(m *Mesh) { m.ExtProc.Address, m.ExtProc.Timeout = "nope", 0 }, []string{`extProc address "nope"`, "extProc timeout 0s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validMesh()
			tt.mutate(m)
			err := m.Validate()
			if err == nil {
				t.Fatal("Validate: got nil error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Validate error %v does not wrap ErrInvalid", err)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate error %q\ndoes not contain %q", err, want)
				}
			}
		})
	}
	var nilMesh *Mesh
	if err := nilMesh.Validate(); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil Mesh: got %v, want ErrInvalid", err)
	}
}

func TestMeshService(t *testing.T) {
	m := validMesh()
	if got := m.Service("payments"); got != m.Services[1] {
		t.Errorf("Service(payments) = %v, want the payments service", got)
	}
	if got := m.Service("nope"); got != nil {
		t.Errorf("Service(nope) = %v, want nil", got)
	}
}
