package ir

import (
	"testing"

	"github.com/hopguard/hopguard/policy"
)

func TestMeshBundle(t *testing.T) {
	route := func(id string) *Route {
		p := policy.Route{ID: id, Retry: policy.Retry{On: []string{"unavailable"}}}
		return &Route{Policy: p, Digest: p.Digest()}
	}
	m := &Mesh{
		Policy: policy.Mesh{Environment: "prod", PrincipalHeader: "x-caller"},
		Services: []*Service{
			{Name: "a", Routes: []*Route{route("shop/zeta"), route("shop/alpha")}},
			{Name: "b", Routes: []*Route{route("shop/mid")}},
		},
	}
	b := m.Bundle()
	if b.Mesh != m.Policy {
		t.Errorf("bundle mesh = %+v, want %+v", b.Mesh, m.Policy)
	}
	var ids []string
	for _, r := range b.Routes {
		ids = append(ids, r.ID)
	}
	if got, want := len(ids), 3; got != want || ids[0] != "shop/alpha" || ids[1] != "shop/mid" || ids[2] != "shop/zeta" {
		t.Fatalf("bundle routes = %v, want sorted [shop/alpha shop/mid shop/zeta]", ids)
	}
	b.Routes[0].Retry.On[0] = "changed"
	if m.Services[0].Routes[1].Policy.Retry.On[0] != "unavailable" {
		t.Error("changing the bundle changed the mesh: Bundle must not share slices")
	}
}
