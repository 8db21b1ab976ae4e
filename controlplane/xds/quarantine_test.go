package xds

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/controlplane/metrics"
	"github.com/hopguard/hopguard/controlplane/translate"
	"github.com/hopguard/hopguard/controlplane/xds/xdstest"
)

// endpointsOnly renders one load assignment per service, with every
// declared endpoint: enough for quarantine, which only touches EDS.
func endpointsOnly(m *ir.Mesh, _ string, _ translate.Flavor) (*translate.Resources, error) {
	res := &translate.Resources{}
	for _, s := range m.Services {
		cla := &endpointv3.ClusterLoadAssignment{ClusterName: s.Name}
		loc := &endpointv3.LocalityLbEndpoints{}
		for _, e := range s.Endpoints {
			loc.LbEndpoints = append(loc.LbEndpoints, &endpointv3.LbEndpoint{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{
					Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Address: e.Host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: e.Port},
					}},
				}}},
			})
		}
		cla.Endpoints = []*endpointv3.LocalityLbEndpoints{loc}
		res.Endpoints = append(res.Endpoints, types.Resource(cla))
	}
	return res, nil
}

func quarantineMesh(percent int) *ir.Mesh {
	ledger := &ir.Service{Name: "ledger", Namespace: "shop", Port: 9000}
	for i := 1; i <= 5; i++ {
		ledger.Endpoints = append(ledger.Endpoints, ir.Endpoint{Host: fmt.Sprintf("10.0.0.%d", i), Port: 9000, Weight: 1})
	}
	return &ir.Mesh{
		Drift:    ir.Drift{Quarantine: true, MaxQuarantinePercent: percent},
		Services: []*ir.Service{{Name: "checkout", Namespace: "shop", Port: 9001}, ledger},
	}
}

// ledgerNode is a proxyless node of ledger serving endpoint.
func ledgerNode(id, endpoint string) *corev3.Node {
	md, _ := structpb.NewStruct(map[string]any{FlavorMetadataKey: FlavorProxyless, EndpointMetadataKey: endpoint})
	return &corev3.Node{Id: id, Cluster: "ledger", Metadata: md, Locality: &corev3.Locality{Region: "eu-west-1"}}
}

// draining returns the DRAINING endpoints of ledger in c's latest EDS response.
func draining(t *testing.T, c *xdstest.Client) (version string, addrs []string) {
	t.Helper()
	rs := c.Responses()
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].TypeURL != resourcev3.EndpointType {
			continue
		}
		for _, a := range rs[i].Resources {
			var cla endpointv3.ClusterLoadAssignment
			if err := a.UnmarshalTo(&cla); err != nil {
				t.Fatal(err)
			}
			if cla.GetClusterName() != "ledger" {
				continue
			}
			for _, loc := range cla.GetEndpoints() {
				for _, lb := range loc.GetLbEndpoints() {
					if lb.GetHealthStatus() == corev3.HealthStatus_DRAINING {
						addrs = append(addrs, lbAddr(lb))
					}
				}
			}
		}
		slices.Sort(addrs)
		return rs[i].Version, addrs
	}
	return "", nil
}

// waitDraining waits until observer's latest EDS drains exactly want.
func waitDraining(t *testing.T, observer *xdstest.Client, want []string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, got := draining(t, observer)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("observer's EDS drains %v, want %v", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestQuarantine_DrainsDriftedNodesUpToTheCap(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.BuildInfo{})
	if err != nil {
		t.Fatal(err)
	}
	s, addr := startServer(t, Options{Render: endpointsOnly, Metrics: m, DriftGrace: time.Hour})
	if err := s.Update(quarantineMesh(20)); err != nil {
		t.Fatal(err)
	}
	dial := func(node *corev3.Node, nack bool) *xdstest.Client {
		t.Helper()
		c, err := xdstest.Dial(ctx, addr, node, nack)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if err := c.Subscribe(resourcev3.EndpointType, "checkout", "ledger"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.WaitFor(ctx, resourcev3.EndpointType, ""); err != nil {
			t.Fatal(err)
		}
		return c
	}
	md, _ := structpb.NewStruct(map[string]any{FlavorMetadataKey: FlavorProxyless})
	observer := dial(&corev3.Node{Id: "checkout-1", Cluster: "checkout", Metadata: md}, false)
	evaluate := func() {
		t.Helper()
		if err := s.EvaluateQuarantine(); err != nil {
			t.Fatal(err)
		}
	}
	evaluate()
	waitDraining(t, observer, nil)

	// One drifted node (it NACKs): its endpoint is drained for the observer.
	bad1 := dial(ledgerNode("ledger-1", "10.0.0.1:9000"), true)
	eventually(t, "ledger-1 drifted", func() bool { return nodeDrifted(s, "ledger-1") })
	evaluate()
	waitDraining(t, observer, []string{"10.0.0.1:9000"})
	if got := gaugeValue(t, reg, "hopguard_quarantined_endpoints", "ledger"); got != 1 {
		t.Errorf("hopguard_quarantined_endpoints{service=ledger} = %v, want 1", got)
	}

	// A second drifted node: 20% of 5 endpoints is 1, so it stays in
	// rotation, and the cap is reported.
	bad2 := dial(ledgerNode("ledger-2", "10.0.0.2:9000"), true)
	eventually(t, "ledger-2 drifted", func() bool { return nodeDrifted(s, "ledger-2") })
	evaluate()
	waitDraining(t, observer, []string{"10.0.0.1:9000"})
	want := []ServiceQuarantine{{Service: "ledger", Endpoints: 5, MaxQuarantined: 1,
		Drifted:     []string{"10.0.0.1:9000", "10.0.0.2:9000"},
		Quarantined: []string{"10.0.0.1:9000"}, Capped: []string{"10.0.0.2:9000"}}}
	if diff := cmp.Diff(s.Quarantine(), want); diff != "" {
		t.Errorf("Quarantine (-got +want):\n%s", diff)
	}
	if got := gaugeValue(t, reg, "hopguard_quarantine_capped_endpoints", "ledger"); got != 1 {
		t.Errorf("hopguard_quarantine_capped_endpoints{service=ledger} = %v, want 1", got)
	}
	quarantined := map[string]bool{}
	for _, n := range s.Nodes() {
		quarantined[n.ID] = n.Quarantined
	}
	if !quarantined["ledger-1"] || quarantined["ledger-2"] || quarantined["checkout-1"] {
		t.Errorf("Nodes quarantined flags = %v, want only ledger-1", quarantined)
	}

	// ledger-1 comes back healthy: its quarantine lifts and the capped
	// ledger-2 takes its place.
	if err := bad1.Close(); err != nil {
		t.Fatal(err)
	}
	dial(ledgerNode("ledger-1", "10.0.0.1:9000"), false)
	eventually(t, "ledger-1 in sync", func() bool { return !nodeDrifted(s, "ledger-1") })
	evaluate()
	waitDraining(t, observer, []string{"10.0.0.2:9000"})

	// ledger-2 leaves: nothing is drained any more.
	if err := bad2.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ledger-2 gone", func() bool { return !nodeConnected(s, "ledger-2") })
	evaluate()
	waitDraining(t, observer, nil)
	if got := s.Quarantine(); len(got) != 0 {
		t.Errorf("Quarantine after recovery = %+v, want none", got)
	}
}

func TestQuarantine_AlertOnlyDrainsNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, addr := startServer(t, Options{Render: endpointsOnly, DriftGrace: time.Hour})
	m := quarantineMesh(100)
	m.Drift.Quarantine = false
	if err := s.Update(m); err != nil {
		t.Fatal(err)
	}
	bad, err := xdstest.Dial(ctx, addr, ledgerNode("ledger-1", "10.0.0.1:9000"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if err := bad.Subscribe(resourcev3.EndpointType, "ledger"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ledger-1 drifted", func() bool { return nodeDrifted(s, "ledger-1") })
	if err := s.EvaluateQuarantine(); err != nil {
		t.Fatal(err)
	}
	if got := s.Quarantine(); len(got) != 0 {
		t.Errorf("Quarantine under drift.action alert = %+v, want none", got)
	}
}

func nodeDrifted(s *Server, id string) bool {
	for _, n := range s.Nodes() {
		if n.ID == id {
			return n.Drifted
		}
	}
	return false
}

func nodeConnected(s *Server, id string) bool {
	for _, n := range s.Nodes() {
		if n.ID == id {
			return n.Connected
		}
	}
	return false
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, name, service string) float64 {
	t.Helper()
	for _, line := range scrape(t, reg, name) {
		var v float64
		if _, err := fmt.Sscanf(line, "service="+service+" %g", &v); err == nil {
			return v
		}
	}
	t.Fatalf("no %s{service=%q}", name, service)
	return 0
}

// addDriftedNode adds a connected node of service serving endpoint that
// NACKed its expected version, so it is drifted; since is when it fell behind.
func addDriftedNode(s *Server, id, service, endpoint string, since time.Time) {
	n := newNode(identity{id: id, key: renderKey{service: service}, endpoint: endpoint}, since)
	n.status.Service, n.endpoint, n.streams = service, endpoint, 1
	n.status.Expected, n.expectedSince = "v1", since
	n.requested[resourcev3.ListenerType] = true
	n.rejected[resourcev3.ListenerType] = "v1"
	s.nodes[id] = n
}

// TestQuarantine_EndpointOfSeveralNodesIsOneCandidate: two drifted nodes
// serving one endpoint (an old and a new pod of one address, or an Envoy
// and a proxyless client in one pod), with another drifted endpoint
// between them in time, make one candidate, which drifted when the
// earliest of them did.
func TestQuarantine_EndpointOfSeveralNodesIsOneCandidate(t *testing.T) {
	t0 := time.Date(2027, 1, 15, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		percent int // of ledger's 5 endpoints
		want    ServiceQuarantine
	}{
		{"room for both", 40, ServiceQuarantine{Service: "ledger", Endpoints: 5, MaxQuarantined: 2,
			Drifted:     []string{"10.0.0.1:9000", "10.0.0.2:9000"},
			Quarantined: []string{"10.0.0.1:9000", "10.0.0.2:9000"}, Capped: []string{}}},
		// 10.0.0.1 drifted first, through ledger-1a.
		{"room for one", 20, ServiceQuarantine{Service: "ledger", Endpoints: 5, MaxQuarantined: 1,
			Drifted:     []string{"10.0.0.1:9000", "10.0.0.2:9000"},
			Quarantined: []string{"10.0.0.1:9000"}, Capped: []string{"10.0.0.2:9000"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{DriftGrace: time.Hour})
			s.mesh = quarantineMesh(tt.percent)
			addDriftedNode(s, "ledger-1a", "ledger", "10.0.0.1:9000", t0)
			addDriftedNode(s, "ledger-2", "ledger", "10.0.0.2:9000", t0.Add(time.Second))
			addDriftedNode(s, "ledger-1b", "ledger", "10.0.0.1:9000", t0.Add(2*time.Second))
			q := s.planQuarantineLocked(t0.Add(time.Minute))
			if diff := cmp.Diff(q.services, []ServiceQuarantine{tt.want}); diff != "" {
				t.Errorf("report (-got +want):\n%s", diff)
			}
			if len(q.drained) != len(tt.want.Quarantined) {
				t.Errorf("drained %v, want %v of ledger", q.drained, tt.want.Quarantined)
			}
		})
	}
}

// sharedAddressMesh is quarantineMesh(20) plus refunds, whose first
// endpoint is ledger's (one process serves both): ledger may drain 1 of
// its 5 endpoints, refunds none of its 2.
func sharedAddressMesh() *ir.Mesh {
	m := quarantineMesh(20)
	m.Services = append(m.Services, &ir.Service{Name: "refunds", Namespace: "shop", Port: 9000,
		Endpoints: []ir.Endpoint{{Host: "10.0.0.1", Port: 9000, Weight: 1}, {Host: "10.0.0.9", Port: 9000, Weight: 1}}})
	return m
}

// drainedByService returns the DRAINING addresses of res's load
// assignments by cluster name.
func drainedByService(res *translate.Resources) map[string][]string {
	out := map[string][]string{}
	for _, r := range res.Endpoints {
		cla := r.(*endpointv3.ClusterLoadAssignment)
		for _, loc := range cla.GetEndpoints() {
			for _, lb := range loc.GetLbEndpoints() {
				if lb.GetHealthStatus() == corev3.HealthStatus_DRAINING {
					out[cla.GetClusterName()] = append(out[cla.GetClusterName()], lbAddr(lb))
				}
			}
		}
	}
	return out
}

// TestQuarantine_SharedAddressIsDrainedOnlyInItsService: when two services
// share an address, a drifted node of one drains it in that service's load
// assignment only, within that service's cap; the other service's drifted
// node on the address is capped (refunds may drain nothing) and reported
// so, and its status says it is not quarantined.
func TestQuarantine_SharedAddressIsDrainedOnlyInItsService(t *testing.T) {
	translated := func(m *ir.Mesh, service string, flavor translate.Flavor) (*translate.Resources, error) {
		return translate.Translate(m, service, flavor, translate.Options{})
	}
	tests := []struct {
		name           string
		render         RenderFunc
		ledger, refund string // cluster names of the services' load assignments
	}{
		{"clusters named after services", endpointsOnly, "ledger", "refunds"},
		{"translate's cluster names", translated, translate.ClusterOutbound("ledger"), translate.ClusterOutbound("refunds")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Date(2027, 1, 15, 12, 0, 0, 0, time.UTC)
			s := New(Options{DriftGrace: time.Hour, Render: tt.render, Now: func() time.Time { return now }})
			m := sharedAddressMesh()
			s.mesh = m
			addDriftedNode(s, "ledger-1", "ledger", "10.0.0.1:9000", now)
			addDriftedNode(s, "refunds-1", "refunds", "10.0.0.1:9000", now)
			q := s.planQuarantineLocked(now)
			s.quarantine.Store(q)

			want := []ServiceQuarantine{
				{Service: "ledger", Endpoints: 5, MaxQuarantined: 1, Drifted: []string{"10.0.0.1:9000"},
					Quarantined: []string{"10.0.0.1:9000"}, Capped: []string{}},
				{Service: "refunds", Endpoints: 2, MaxQuarantined: 0, Drifted: []string{"10.0.0.1:9000"},
					Quarantined: []string{}, Capped: []string{"10.0.0.1:9000"}},
			}
			if diff := cmp.Diff(s.Quarantine(), want); diff != "" {
				t.Errorf("report (-got +want):\n%s", diff)
			}
			// An undeclared caller sees every service's endpoints.
			res, err := tt.render(m, "observer", translate.Envoy)
			if err != nil {
				t.Fatal(err)
			}
			got := drainedByService(applyQuarantine(res, q.drained))
			if diff := cmp.Diff(got, map[string][]string{tt.ledger: {"10.0.0.1:9000"}}); diff != "" {
				t.Errorf("DRAINING endpoints by cluster (-got +want):\n%s", diff)
			}
			quarantined := map[string]bool{}
			for _, n := range s.Nodes() {
				quarantined[n.ID] = n.Quarantined
			}
			if diff := cmp.Diff(quarantined, map[string]bool{"ledger-1": true, "refunds-1": false}); diff != "" {
				t.Errorf("NodeStatus.Quarantined (-got +want):\n%s", diff)
			}
		})
	}
}
