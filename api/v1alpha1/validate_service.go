package v1alpha1

// Validation of Service documents: addresses, ports, weights and their sums,
// DNS names and dependencies.

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

func (v *validator) service(d docRef, s *Service, services map[string]*Service) {
	v.typeMeta(d, s.TypeMeta, KindService)
	v.meta(d, s.Metadata)
	sp := s.Spec
	if sp.Protocol != ProtocolGRPC && sp.Protocol != ProtocolHTTP {
		v.errorf(d, "spec.protocol", "unknown protocol %q (want grpc or http)", sp.Protocol)
	}
	if _, written := d.positions["spec.port"]; !written && sp.Port == 0 {
		v.errorf(d, "spec.port", "required (1–65535)")
	} else if sp.Port < 1 || sp.Port > 65535 {
		v.errorf(d, "spec.port", "must be between 1 and 65535, got %d", sp.Port)
	}
	switch {
	case len(sp.Endpoints) > 0 && sp.DNS != "":
		v.errorf(d, "spec.dns", "endpoints and dns are mutually exclusive")
	case len(sp.Endpoints) == 0 && sp.DNS == "":
		v.errorf(d, "spec", "one of endpoints and dns is required")
	}
	addrs := map[string]int{}
	for i, e := range sp.Endpoints {
		p := fmt.Sprintf("spec.endpoints[%d]", i)
		if msg := checkHostPort(e.Address, true); msg != "" {
			v.errorf(d, p+".address", "invalid address %q: %s", e.Address, msg)
		} else if key := canonicalAddr(e.Address); key != "" {
			// One address twice in a load assignment is NACKed by grpc-go
			// ("duplicate endpoint with the same address").
			if first, dup := addrs[key]; dup {
				v.errorf(d, p+".address", "duplicate endpoint %q (first at spec.endpoints[%d])", e.Address, first)
			} else {
				addrs[key] = i
			}
		}
		if e.Weight < 1 {
			v.errorf(d, p+".weight", "must be at least 1, got %d", e.Weight)
		} else if uint64(e.Weight) > maxWeight {
			v.errorf(d, p+".weight", "must be at most %d, got %d", uint64(maxWeight), e.Weight)
		}
	}
	v.weightSums(d, sp.Endpoints)
	if sp.DNS != "" {
		if msg := checkHostPort(sp.DNS, false); msg != "" {
			v.errorf(d, "spec.dns", "invalid dns %q: %s", sp.DNS, msg)
		}
	}
	ns := s.Metadata.NamespaceOrDefault()
	seen := map[string]int{}
	for i, dep := range sp.DependsOn {
		p := fmt.Sprintf("spec.dependsOn[%d]", i)
		if first, dup := seen[dep]; dup {
			v.errorf(d, p, "duplicate entry %q (first at dependsOn[%d])", dep, first)
			continue
		}
		seen[dep] = i
		switch {
		case dep == s.Metadata.Name:
			v.errorf(d, p, "a service cannot depend on itself")
		case services[ns+"/"+dep] == nil:
			v.errorf(d, p, "unknown service %q in namespace %q", dep, ns)
		}
	}
}

// canonicalAddr returns host:port with an IP host in its canonical form
// (so 10.0.0.1 and ::ffff:10.0.0.1, or two spellings of one IPv6 address,
// compare equal), "" when addr does not split.
func canonicalAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.Unmap().String()
	}
	return net.JoinHostPort(strings.ToLower(host), port)
}

// maxWeight bounds an endpoint's weight and the sums data planes compute
// from weights: they are uint32 in xDS.
const maxWeight = math.MaxUint32

// weightSums checks the weight sums of a service's endpoints the way the
// translator groups them (controlplane/translate/endpoints.go): endpoints
// with the same region, zone and subZone form a locality weighted by the sum
// of their weights, and every locality has priority 0. Envoy and grpc-go
// reject (NACK) the endpoints when the weights of one locality, or the
// weights of the localities of one priority, add up to more than maxWeight.
// A violation points at the endpoint where the sum, in the order written,
// passes the limit. Weights out of range are left out (already reported).
func (v *validator) weightSums(d docRef, eps []Endpoint) {
	valid := func(e Endpoint) bool { return e.Weight >= 1 && uint64(e.Weight) <= maxWeight }
	locTotal := map[Locality]uint64{}
	var total uint64
	for _, e := range eps {
		if valid(e) {
			locTotal[e.Locality] += uint64(e.Weight)
			total += uint64(e.Weight)
		}
	}
	if total <= maxWeight {
		return
	}
	locSum := map[Locality]uint64{}
	var sum uint64
	for i, e := range eps {
		if !valid(e) {
			continue
		}
		w := uint64(e.Weight)
		p := fmt.Sprintf("spec.endpoints[%d].weight", i)
		before := locSum[e.Locality]
		locSum[e.Locality] += w
		sum += w
		switch {
		case before <= maxWeight && before+w > maxWeight:
			v.errorf(d, p, "the weights of the endpoints in %s add up to %d, more than %d: Envoy and grpc-go would reject the endpoints (the sum passes the limit at this endpoint)",
				describeLocality(e.Locality), locTotal[e.Locality], uint64(maxWeight))
		case sum-w <= maxWeight && sum > maxWeight:
			v.errorf(d, p, "the weights of all endpoints add up to %d, more than %d: Envoy and grpc-go would reject the endpoints, as each locality weighs the sum of its endpoints' weights and all localities share one priority (the sum passes the limit at this endpoint)",
				total, uint64(maxWeight))
		}
	}
}

// describeLocality names a locality in messages.
func describeLocality(l Locality) string {
	var parts []string
	for _, f := range []struct{ name, value string }{{"region", l.Region}, {"zone", l.Zone}, {"subZone", l.SubZone}} {
		if f.value != "" {
			parts = append(parts, fmt.Sprintf("%s %q", f.name, f.value))
		}
	}
	if len(parts) == 0 {
		return "the locality without region, zone and subZone"
	}
	return "locality " + strings.Join(parts, ", ")
}

// checkHostPort returns why s is not host:port ("" when it is). With ipOnly
// the host must be an IP literal, else an IP or a DNS name.
func checkHostPort(s string, ipOnly bool) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "want host:port"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "port must be a number between 1 and 65535"
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	if ipOnly {
		return "host must be an IP address"
	}
	if !isDNSName(host) {
		return "host must be an IP address or a DNS name"
	}
	return ""
}

func isDNSName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if !isLabel(strings.ToLower(label)) {
			return false
		}
	}
	return true
}
