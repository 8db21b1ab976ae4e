package translate

import (
	"cmp"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/hopguard/hopguard/controlplane/ir"
)

// loadAssignment is the EDS resource of an outbound cluster: endpoints
// grouped by locality, localities sorted (region, zone, subZone) and
// endpoints sorted by address within them. Each locality is weighted by the
// sum of its endpoints' weights: grpc-go drops localities without a weight.
func loadAssignment(cluster string, eps []ir.Endpoint) *endpointv3.ClusterLoadAssignment {
	sorted := slices.Clone(eps)
	slices.SortFunc(sorted, func(a, b ir.Endpoint) int {
		return cmp.Or(
			cmp.Compare(a.Region, b.Region), cmp.Compare(a.Zone, b.Zone), cmp.Compare(a.SubZone, b.SubZone),
			cmp.Compare(a.Host, b.Host), cmp.Compare(a.Port, b.Port),
		)
	})
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: cluster}
	var cur *endpointv3.LocalityLbEndpoints
	var weight uint32
	for i, e := range sorted {
		if i == 0 || e.Region != sorted[i-1].Region || e.Zone != sorted[i-1].Zone || e.SubZone != sorted[i-1].SubZone {
			if cur != nil {
				cur.LoadBalancingWeight = wrapperspb.UInt32(weight)
			}
			cur = &endpointv3.LocalityLbEndpoints{
				Locality: &corev3.Locality{Region: e.Region, Zone: e.Zone, SubZone: e.SubZone},
			}
			weight = 0
			cla.Endpoints = append(cla.Endpoints, cur)
		}
		cur.LbEndpoints = append(cur.LbEndpoints, lbEndpoint(e.Host, e.Port, e.Weight))
		weight = satAdd(weight, e.Weight)
	}
	if cur != nil {
		cur.LoadBalancingWeight = wrapperspb.UInt32(weight)
	}
	return cla
}

// satAdd adds without wrapping around.
func satAdd(a, b uint32) uint32 {
	if s := a + b; s >= a {
		return s
	}
	return ^uint32(0)
}

// lbEndpoint is one host:port endpoint; a zero weight leaves the weight unset.
func lbEndpoint(host string, port, weight uint32) *endpointv3.LbEndpoint {
	lb := &endpointv3.LbEndpoint{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address:       host,
				PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
			}}},
		}},
	}
	if weight > 0 {
		lb.LoadBalancingWeight = wrapperspb.UInt32(weight)
	}
	return lb
}
