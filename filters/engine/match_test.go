package engine

import (
	"testing"

	"github.com/hopguard/hopguard/policy"
)

func TestMatch(t *testing.T) {
	routes := []policy.Route{
		testRoute("Create"),
		testRoute("all", func(r *policy.Route) { r.Match = policy.Match{GRPCService: "shop.Orders", GRPCMethod: "*"} }),
		testRoute("api", func(r *policy.Route) { r.Match = policy.Match{PathPrefix: "/api/"} }),
		testRoute("api-v1", func(r *policy.Route) { r.Match = policy.Match{PathPrefix: "/api/v1/"} }),
		testRoute("charge-post", func(r *policy.Route) {
			r.Match = policy.Match{Path: "/api/v1/charges", Methods: []string{"POST"}}
		}),
		testRoute("charge-any", func(r *policy.Route) { r.Match = policy.Match{Path: "/api/v1/charges"} }),
		testRoute("refund-put", func(r *policy.Route) {
			r.Match = policy.Match{Path: "/api/v1/refunds", Methods: []string{"PUT"}}
		}),
	}
	e, _, _ := testEngine(t, routes...)
	tests := []struct {
		method, path, want string
	}{
		{"POST", "/shop.Orders/Create", "shop/Create"},
		{"POST", "/shop.Orders/Cancel", "shop/all"},
		{"POST", "/api/v1/charges", "shop/charge-post"},
		{"post", "/api/v1/charges", "shop/charge-post"},
		{"GET", "/api/v1/charges", "shop/charge-any"},
		{"PUT", "/api/v1/refunds", "shop/refund-put"},
		{"GET", "/api/v1/refunds", "shop/api-v1"},
		{"GET", "/api/v1/other", "shop/api-v1"},
		{"GET", "/api/v2/other", "shop/api"},
		{"GET", "/other", ""},
		{"POST", "/shop.Orders", ""},
	}
	for _, tt := range tests {
		got := ""
		if r := e.Match(tt.method, tt.path); r != nil {
			got = r.Policy.ID
		}
		if got != tt.want {
			t.Errorf("Match(%q, %q) = %q, want %q", tt.method, tt.path, got, tt.want)
		}
	}
}
